//! The `ps1filenames.py` answer (docs/archives.md 1.3): a whitespace-separated table with one header
//! line, `projcell subcell ra dec filter mjd type filename shortname badflag` (older servers omit
//! `badflag`). A header-only answer means the position has no PS1 coverage. Parsed strictly: any
//! other header, a short row, a bad number or an unknown filter is an error naming the line.

/// One image covering the position.
#[derive(Debug, Clone, PartialEq)]
pub struct Ps1Image {
    pub projcell: u32,
    pub subcell: u32,
    pub ra: f64,
    pub dec: f64,
    pub filter: char,
    pub mjd: f64,
    pub image_type: String,
    /// Server path, e.g. `/rings.v3.skycell/1268/000/rings.v3.skycell.1268.000.stk.r.unconv.fits`.
    pub filename: String,
    pub shortname: String,
    pub badflag: Option<i64>,
}

const HEADER: [&str; 9] = ["projcell", "subcell", "ra", "dec", "filter", "mjd", "type", "filename", "shortname"];

/// Parse a `ps1filenames.py` answer. `Ok(vec![])` is a header-only answer: no coverage.
pub fn parse(text: &str) -> Result<Vec<Ps1Image>, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err("line 1: empty (expected at least the header line)".into());
    };
    let cols: Vec<&str> = header.split_whitespace().collect();
    let with_badflag = match cols.len() {
        9 if cols == HEADER => false,
        10 if cols[..9] == HEADER && cols[9] == "badflag" => true,
        _ => return Err(format!("line 1: unexpected header `{}`", header.trim())),
    };
    let mut rows = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != cols.len() {
            return Err(format!("line {n}: {} fields, expected {}", f.len(), cols.len()));
        }
        let int =
            |k: usize| f[k].parse::<u32>().map_err(|_| format!("line {n}: {} `{}` is not an integer", cols[k], f[k]));
        let num = |k: usize| {
            f[k].parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("line {n}: {} `{}` is not a number", cols[k], f[k]))
        };
        let filter = match f[4] {
            "g" | "r" | "i" | "z" | "y" => f[4].chars().next().unwrap_or('g'),
            other => return Err(format!("line {n}: unknown filter `{other}`")),
        };
        if !f[7].starts_with('/') || !f[7].ends_with(f[8]) {
            return Err(format!("line {n}: filename `{}` does not match shortname `{}`", f[7], f[8]));
        }
        let badflag = if with_badflag {
            Some(f[9].parse::<i64>().map_err(|_| format!("line {n}: badflag `{}` is not an integer", f[9]))?)
        } else {
            None
        };
        rows.push(Ps1Image {
            projcell: int(0)?,
            subcell: int(1)?,
            ra: num(2)?,
            dec: num(3)?,
            filter,
            mjd: num(5)?,
            image_type: f[6].to_string(),
            filename: f[7].to_string(),
            shortname: f[8].to_string(),
            badflag,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "projcell subcell ra dec filter mjd type filename shortname badflag\n\
        635 0 2.128573126861541 -31.790888721856746 i 0.0 stack /rings.v3.skycell/0635/000/rings.v3.skycell.0635.000.stk.i.unconv.fits rings.v3.skycell.0635.000.stk.i.unconv.fits 0\n";

    #[test]
    fn real_row_with_and_without_badflag() {
        let rows = parse(REAL).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.projcell, r.subcell, r.filter, r.badflag), (635, 0, 'i', Some(0)));
        assert_eq!(r.shortname, "rings.v3.skycell.0635.000.stk.i.unconv.fits");
        let old = REAL.replace(" badflag", "").replace(".fits 0\n", ".fits\n");
        assert_eq!(parse(&old).unwrap()[0].badflag, None);
    }

    #[test]
    fn header_only_is_no_coverage_and_garbage_is_an_error() {
        assert_eq!(parse("projcell subcell ra dec filter mjd type filename shortname badflag\n").unwrap(), vec![]);
        assert!(parse("").is_err());
        assert!(parse("<html>Service unavailable</html>").unwrap_err().contains("line 1"));
        let short = REAL.replace(" 0\n", "\n");
        assert!(parse(&short).unwrap_err().contains("line 2: 9 fields"));
        assert!(parse(&REAL.replace(" i 0.0", " q 0.0")).unwrap_err().contains("unknown filter"));
        assert!(parse(&REAL.replace("2.128573126861541", "nan")).is_err());
    }
}
