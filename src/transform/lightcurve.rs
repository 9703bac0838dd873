//! ATLAS forced-photometry light curves (docs/archives.md 2.8) -> sample fields. The result text is
//! parsed strictly: the exact 19-column `###MJD` header, 19 fields on every row, numbers where
//! numbers belong (`nan` allowed where the server writes it), one filter letter, and an `Obs` name.
//! A malformed file fails its sample with the line number. Integers are 64-bit: a bright star's
//! `uJy`/`duJy` reach 5e11, beyond 32 bits.
//!
//! Fields: `npy`, a structured array with one record per row (see [`COLUMNS`] for names, dtypes
//! and units); `json`, the target, the columns with units, rows per filter, the MJD range and the
//! task URL; `txt`, the original bytes.

use std::collections::BTreeMap;

use arrayvec::ArrayVec;
use npyz::{DType, Field, TypeStr, WriterBuilder};
use serde_json::{json, Value};

use super::{Fields, SampleError};

/// The result file's header, column by column (the `#` belongs to the first name).
pub const HEADER: [&str; 19] = [
    "###MJD", "m", "dm", "uJy", "duJy", "F", "err", "chi/N", "RA", "Dec", "x", "y", "maj", "min", "phi", "apfit",
    "mag5sig", "Sky", "Obs",
];

/// Longest exposure name the `obs` field holds (real names are 14 characters, e.g. `01a59101o0618o`).
pub const OBS_LEN: usize = 20;

/// (field name in the npy, numpy dtype, unit, meaning), in file order.
pub const COLUMNS: [(&str, &str, &str, &str); 19] = [
    ("mjd", "<f8", "d", "MJD at the start of the 30 s exposure (UTC, not barycentric)"),
    ("m", "<f4", "mag", "AB magnitude; negative when the flux is negative; 0 when the flux is 0"),
    ("dm", "<f4", "mag", "magnitude uncertainty"),
    ("ujy", "<i8", "uJy", "flux density (beyond 32 bits for bright stars)"),
    ("dujy", "<i8", "uJy", "flux density uncertainty"),
    ("filter", "|S1", "", "ATLAS filter: c (cyan), o (orange), H (H-alpha), i, r, w, ..."),
    ("err", "<i4", "", "tphot error code (0 normally)"),
    ("chi_n", "<f4", "", "reduced chi-squared of the PSF fit"),
    ("ra", "<f8", "deg", "right ascension of the forced position"),
    ("dec", "<f8", "deg", "declination of the forced position"),
    ("x", "<f4", "pix", "x position on the detector"),
    ("y", "<f4", "pix", "y position on the detector"),
    ("maj", "<f4", "pix", "PSF major axis (1.86 arcsec per pixel)"),
    ("min", "<f4", "pix", "PSF minor axis"),
    ("phi", "<f4", "deg", "PSF position angle"),
    ("apfit", "<f4", "mag", "aperture correction"),
    ("mag5sig", "<f4", "mag", "5-sigma limiting magnitude"),
    ("sky", "<f4", "mag/arcsec2", "sky brightness"),
    ("obs", "|S20", "", "exposure name, e.g. 01a59101o0618o"),
];

/// One row of a result file.
#[derive(Debug, Clone, PartialEq, npyz::Serialize)]
pub struct Row {
    pub mjd: f64,
    pub m: f32,
    pub dm: f32,
    pub ujy: i64,
    pub dujy: i64,
    pub filter: ArrayVec<u8, 1>,
    pub err: i32,
    pub chi_n: f32,
    pub ra: f64,
    pub dec: f64,
    pub x: f32,
    pub y: f32,
    pub maj: f32,
    pub min: f32,
    pub phi: f32,
    pub apfit: f32,
    pub mag5sig: f32,
    pub sky: f32,
    pub obs: ArrayVec<u8, OBS_LEN>,
}

impl Row {
    pub fn filter(&self) -> char {
        self.filter.first().map(|&b| char::from(b)).unwrap_or('?')
    }

    /// The exposure name.
    pub fn obs(&self) -> &str {
        std::str::from_utf8(&self.obs).unwrap_or("")
    }

    /// The ATLAS FAQ's "common sense" cuts (docs/archives.md 2.8): `duJy < 10000, err == 0,
    /// 100 < x < 10460, 100 < y < 10460, 1.6 < maj < 5, 1.6 < min < 5, -1 < apfit < -0.1,
    /// mag5sig > 17, sky > 17`. NaN fails every comparison, so it fails the cuts.
    pub fn passes_faq_cuts(&self) -> bool {
        self.dujy < 10_000
            && self.err == 0
            && self.x > 100.0
            && self.x < 10_460.0
            && self.y > 100.0
            && self.y < 10_460.0
            && self.maj > 1.6
            && self.maj < 5.0
            && self.min > 1.6
            && self.min < 5.0
            && self.apfit > -1.0
            && self.apfit < -0.1
            && self.mag5sig > 17.0
            && self.sky > 17.0
    }
}

/// Which rows a sample keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quality {
    /// Every row.
    All,
    /// Rows passing the FAQ's cuts.
    FaqCuts,
}

/// Parse a result file's bytes: UTF-8 text (else the line of the first bad byte), then [`parse`].
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<Row>, String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            Err(format!("line {line}: not UTF-8 text (byte {} of the file)", e.valid_up_to() + 1))
        }
    }
}

/// Parse a result file. Errors start with the 1-based line: `line 17: uJy `12x` is not an integer`.
pub fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err("line 1: empty (expected the `###MJD ...` header)".into());
    };
    let cols: Vec<&str> = header.split_whitespace().collect();
    if cols != HEADER {
        return Err(format!("line 1: expected the header `{}`, found `{}`", HEADER.join(" "), header.trim()));
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != HEADER.len() {
            return Err(format!("line {n}: {} fields, expected {}", f.len(), HEADER.len()));
        }
        let float = |k: usize| -> Result<f64, String> {
            let v: f64 = f[k].parse().map_err(|_| format!("line {n}: {} `{}` is not a number", HEADER[k], f[k]))?;
            if v.is_infinite() {
                return Err(format!("line {n}: {} `{}` is not finite", HEADER[k], f[k]));
            }
            Ok(v)
        };
        let finite = |k: usize| -> Result<f64, String> {
            float(k).and_then(|v| if v.is_nan() { Err(format!("line {n}: {} is `nan`", HEADER[k])) } else { Ok(v) })
        };
        let int = |k: usize| -> Result<i64, String> {
            f[k].parse().map_err(|_| format!("line {n}: {} `{}` is not an integer", HEADER[k], f[k]))
        };
        let code = |k: usize| -> Result<i32, String> {
            int(k)?.try_into().map_err(|_| format!("line {n}: {} `{}` is out of range", HEADER[k], f[k]))
        };
        let filter = match f[5].as_bytes() {
            [b] if b.is_ascii_alphabetic() => *b,
            _ => return Err(format!("line {n}: filter `{}` is not one letter", f[5])),
        };
        let obs = f[18].as_bytes();
        if obs.len() > OBS_LEN || !obs.iter().all(|b| b.is_ascii_graphic()) {
            return Err(format!("line {n}: exposure name `{}` is not up to {OBS_LEN} ASCII characters", f[18]));
        }
        let obs: ArrayVec<u8, OBS_LEN> = obs.iter().copied().collect();
        rows.push(Row {
            mjd: finite(0)?,
            m: float(1)? as f32,
            dm: float(2)? as f32,
            ujy: int(3)?,
            dujy: int(4)?,
            filter: [filter].into_iter().collect(),
            err: code(6)?,
            chi_n: float(7)? as f32,
            ra: finite(8)?,
            dec: finite(9)?,
            x: float(10)? as f32,
            y: float(11)? as f32,
            maj: float(12)? as f32,
            min: float(13)? as f32,
            phi: float(14)? as f32,
            apfit: float(15)? as f32,
            mag5sig: float(16)? as f32,
            sky: float(17)? as f32,
            obs,
        });
    }
    Ok(rows)
}

/// The structured dtype of the `npy` field.
pub fn dtype() -> DType {
    DType::Record(
        COLUMNS
            .iter()
            .map(|(name, ty, _, _)| Field {
                name: name.to_string(),
                dtype: DType::Plain(ty.parse::<TypeStr>().expect("valid numpy type strings")),
            })
            .collect(),
    )
}

/// Serialise rows as a 1-d structured `.npy`.
pub fn npy(rows: &[Row]) -> Result<Vec<u8>, SampleError> {
    let mut out = Vec::with_capacity(rows.len() * 100 + 512);
    let err = |e: std::io::Error| SampleError(format!("npy: {e}"));
    let mut writer = npyz::WriteOptions::new()
        .dtype(dtype())
        .shape(&[rows.len() as u64])
        .writer(&mut out)
        .begin_nd()
        .map_err(err)?;
    for row in rows {
        writer.push(row).map_err(err)?;
    }
    writer.finish().map_err(err)?;
    Ok(out)
}

/// What the json field says about the sample besides its rows.
pub struct LightCurveMeta<'a> {
    /// The target row (id, ra, dec, label).
    pub target: Value,
    /// The server's task URL (no credentials: task reads are public).
    pub task_url: Option<&'a str>,
    pub result_url: Option<&'a str>,
    pub sha256: &'a str,
    pub use_reduced: bool,
}

/// Which fields to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LightCurveOutputs {
    pub npy: bool,
    pub json: bool,
    pub txt: bool,
}

impl LightCurveOutputs {
    /// The fields these outputs make: `npy`, `json`, `txt` in that order.
    pub fn fields(self) -> Vec<&'static str> {
        [("npy", self.npy), ("json", self.json), ("txt", self.txt)]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(f, _)| *f)
            .collect()
    }
}

/// Make a sample's fields from a result file's bytes.
pub fn lightcurve_fields(
    bytes: &[u8],
    quality: Quality,
    outputs: LightCurveOutputs,
    meta: &LightCurveMeta,
) -> Result<Fields, SampleError> {
    let all =
        parse_bytes(bytes).map_err(|e| SampleError(format!("result {} {e}", meta.result_url.unwrap_or("file"))))?;
    let rows: Vec<Row> = match quality {
        Quality::All => all.clone(),
        Quality::FaqCuts => all.iter().filter(|r| r.passes_faq_cuts()).cloned().collect(),
    };
    let mut fields = Fields::new();
    if outputs.npy {
        fields.push(("npy".into(), npy(&rows)?));
    }
    if outputs.json {
        let mut per_filter: BTreeMap<String, usize> = BTreeMap::new();
        for r in &rows {
            *per_filter.entry(r.filter().to_string()).or_default() += 1;
        }
        let mjd = |f: fn(f64, f64) -> f64| rows.iter().map(|r| r.mjd).reduce(f);
        let doc = json!({
            "target": meta.target,
            "source": "atlas-fp",
            "task_url": meta.task_url,
            "result_url": meta.result_url,
            "sha256": meta.sha256,
            "images": if meta.use_reduced { "reduced" } else { "difference" },
            "quality": quality,
            "rows": rows.len(),
            "rows_in_file": all.len(),
            "rows_per_filter": per_filter,
            "mjd_min": mjd(f64::min),
            "mjd_max": mjd(f64::max),
            "columns": COLUMNS.iter().zip(HEADER).map(|((name, ty, unit, meaning), original)| json!({
                "name": name, "dtype": ty, "unit": unit, "original": original, "meaning": meaning,
            })).collect::<Vec<_>>(),
        });
        let mut bytes = serde_json::to_vec(&doc).map_err(|e| SampleError(e.to_string()))?;
        bytes.push(b'\n');
        fields.push(("json".into(), bytes));
    }
    if outputs.txt {
        fields.push(("txt".into(), bytes.to_vec()));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(fields)
}

/// `transform.lightcurve`.
#[derive(Debug, Clone, PartialEq)]
pub struct LightCurveTransform {
    pub quality: Quality,
    pub outputs: LightCurveOutputs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(job: &str) -> String {
        etd_emulators::fixtures::text(&etd_emulators::fixtures::atlas_result(job)).unwrap().to_string()
    }

    #[test]
    fn real_files_parse_with_their_edge_cases() {
        etd_emulators::require_fixtures!();
        let rows = parse(&fixture("job01088")).unwrap();
        assert_eq!(rows.len(), 147);
        let first = &rows[0];
        // `59101.519211 -21.740  1.398    -7   10 o  0   7.69  29.86137  30.72672 ...`
        assert_eq!(first.mjd, 59101.519211);
        assert_eq!(first.m, -21.74);
        assert_eq!((first.ujy, first.dujy, first.filter(), first.err), (-7, 10, 'o', 0));
        assert_eq!(first.obs(), "01a59101o0618o");
        assert!(rows.windows(2).all(|w| w[0].mjd <= w[1].mjd), "rows come sorted by MJD");
        for job in ["job00128", "job01064"] {
            let text = fixture(job);
            let rows = parse(&text).unwrap();
            assert_eq!(rows.len(), text.lines().count() - 1, "{job}");
        }
    }

    #[test]
    fn every_real_file_parses_over_the_whole_range_the_archive_sends() {
        etd_emulators::require_fixtures!();
        for job in etd_emulators::fixtures::ATLAS_RESULTS {
            let text = fixture(job);
            let rows = parse(&text).unwrap_or_else(|e| panic!("{job}: {e}"));
            assert_eq!(rows.len(), text.lines().skip(1).filter(|l| !l.trim().is_empty()).count(), "{job}");
        }
        // A bright star: fluxes beyond 32-bit integers, kept exactly.
        let rows = parse(&fixture("job01381")).unwrap();
        let max = rows.iter().map(|r| r.ujy).max().unwrap();
        let min = rows.iter().map(|r| r.ujy).min().unwrap();
        assert_eq!((min, max), (-479_469_138_389, 529_808_083_386));
        assert_eq!(rows.iter().map(|r| r.dujy).max(), Some(400_484_850_433));
        let filters: std::collections::BTreeSet<char> = rows.iter().map(Row::filter).collect();
        assert_eq!(filters.into_iter().collect::<String>(), "Hcior");
        let south = parse(&fixture("job-south-2024")).unwrap();
        assert!(south.iter().any(|r| r.obs().starts_with("03a")) && south.iter().any(|r| r.obs().starts_with("04a")));
        // One past i64 is refused with the line and the value.
        let mut lines: Vec<String> = fixture("job00128").lines().map(str::to_string).collect();
        lines[2] = lines[2].replacen("  -131 ", "  9223372036854775808 ", 1);
        assert_eq!(parse(&lines.join("\n")).unwrap_err(), "line 3: uJy `9223372036854775808` is not an integer");
    }

    #[test]
    fn bytes_that_are_not_text_name_the_line() {
        let mut bytes = format!("{}\n", HEADER.join(" ")).into_bytes();
        bytes.extend_from_slice(b"57500.5 \xff\n");
        assert_eq!(
            parse_bytes(&bytes).unwrap_err(),
            format!("line 2: not UTF-8 text (byte {} of the file)", bytes.len() - 1)
        );
        assert_eq!(parse_bytes(b"").unwrap_err(), "line 1: empty (expected the `###MJD ...` header)");
    }

    #[test]
    fn nan_zero_and_other_filters() {
        let text = format!(
            "{}\n57500.567506   0.000  0.000     0    0 o  0    nan 272.40281  -9.97095  7290.56 10067.88  nan 1.39 -87.1 -0.427 -3.23 -2.22 02a57500o0671o\n\
             58167.556855   0.000 21.689    -0    8 H  0   1.00 272.40281  -9.97095  7290.56 10067.88 2.00 1.90 -87.1 -0.427 19.00 20.00 05r61130o1427w\n",
            HEADER.join(" ")
        );
        let rows = parse(&text).unwrap();
        assert!(rows[0].chi_n.is_nan() && rows[0].maj.is_nan());
        assert_eq!(rows[0].mag5sig, -3.23);
        assert!(!rows[0].passes_faq_cuts());
        assert_eq!((rows[1].ujy, rows[1].filter()), (0, 'H'));
        assert!(rows[1].passes_faq_cuts());
    }

    #[test]
    fn malformed_files_name_the_line() {
        etd_emulators::require_fixtures!();
        let good = fixture("job00128");
        let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
        lines[3].push_str(" extra");
        assert!(parse(&lines.join("\n")).unwrap_err().starts_with("line 4: 20 fields"));
        let bad_header = good.replacen("###MJD", "MJD", 1);
        assert!(parse(&bad_header).unwrap_err().starts_with("line 1: expected the header"));
        let bad_number = good.replacen("  0   ", "  x   ", 1);
        assert!(parse(&bad_number).unwrap_err().contains("is not"), "{}", parse(&bad_number).unwrap_err());
        assert!(parse("").is_err());
        assert_eq!(parse(&format!("{}\n", HEADER.join("  "))).unwrap(), vec![]);
    }

    #[test]
    fn npy_is_a_structured_array() {
        etd_emulators::require_fixtures!();
        let rows = parse(&fixture("job00128")).unwrap();
        let bytes = npy(&rows).unwrap();
        let file = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(file.shape(), &[rows.len() as u64]);
        let DType::Record(fields) = file.dtype() else { panic!("not a record dtype") };
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, COLUMNS.iter().map(|c| c.0).collect::<Vec<_>>());
        // mjd m dm ujy dujy filter err chi_n ra dec (8 4 4 8 8 1 4 4 8 8), 8 floats, obs 20: 109 bytes
        let header_len = bytes.len() - rows.len() * 109;
        assert_eq!(bytes[header_len + 16..header_len + 24], rows[0].ujy.to_le_bytes());
        assert_eq!(bytes[header_len..header_len + 8], rows[0].mjd.to_le_bytes());
    }
}
