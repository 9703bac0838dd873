//! The ATLAS-VAR object catalog (`hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits`, a
//! FITS binary table of 4.7 million rows; docs/archives.md 3.1, 3.2), read with fitsio in chunks of
//! rows so memory does not grow with the table, and filtered by the recipe's selection as it is
//! read. Only the selected objects are kept.

use std::path::Path;

use fitsio::hdu::HduInfo;
use fitsio::FitsFile;
use serde::Serialize;

use super::{AtlasVarConfig, CLASSES};
use crate::hash::{unit_hash, HashDomain};

/// Bytes of table rows read at once. cfitsio reads a column row by row through its own buffers
/// (40 records of 2880 bytes); a chunk that fits in them is read from the file once for all its
/// columns, where a larger one was read again for every column: 65,536 rows a chunk made 111,000
/// read calls for a 16 MB catalog, 96 KiB chunks make 150.
const CHUNK_BYTES: usize = 96 * 1024;

/// One selected object: the catalog columns a sample's `json` carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Object {
    #[serde(rename = "ATO_ID")]
    pub ato_id: String,
    pub ra: f64,
    pub dec: f64,
    #[serde(rename = "CLASS")]
    pub class: String,
    /// `prob_<CLASS>` in the order of [`CLASSES`].
    #[serde(skip)]
    pub probs: [f32; 14],
    /// Other numeric columns present in the table (periods, magnitudes), by name.
    #[serde(skip)]
    pub extra: Vec<(&'static str, Number)>,
}

/// A catalog value as the table stores it: float32 (`E`) columns stay float32, so they are
/// written as stored (0.0838, not 0.08380000293254852), and float64 (`D`) columns keep every
/// digit (337.765625, even where it happens to fit a float32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    F32(f32),
    F64(f64),
}

impl Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            // The float32's shortest digits, written as a float64 (serde_json's float32 writer
            // picks exponent notation for other magnitudes than its float64 writer does).
            Number::F32(v) if v.is_finite() => {
                use std::fmt::Write;
                let mut digits = arrayvec::ArrayString::<64>::new();
                write!(digits, "{v}").map_err(serde::ser::Error::custom)?;
                s.serialize_f64(digits.parse().map_err(serde::ser::Error::custom)?)
            }
            Number::F32(v) => s.serialize_f32(v),
            Number::F64(v) => s.serialize_f64(v),
        }
    }
}

impl Object {
    /// The index of its class in [`CLASSES`].
    pub fn class_index(&self) -> Option<usize> {
        CLASSES.iter().position(|c| *c == self.class)
    }

    /// Its own class's probability.
    pub fn own_probability(&self) -> Option<f32> {
        self.class_index().map(|i| self.probs[i])
    }
}

/// Numeric columns copied into each object's metadata when the table has them.
const EXTRA: [&str; 11] = [
    "fp_LSperiod",
    "fp_period",
    "ls_Pday",
    "fp_lngfitper",
    "gmag",
    "rmag",
    "imag",
    "zmag",
    "ymag",
    "vf_c_med",
    "vf_o_med",
];

/// Whether the recipe's selection keeps an object (all but `limit`, applied after reading).
pub fn selected(cfg: &AtlasVarConfig, o: &Object) -> bool {
    if !cfg.classes.is_empty() && !cfg.classes.contains(&o.class) {
        return false;
    }
    if let Some(p) = cfg.min_probability {
        if o.own_probability().is_none_or(|own| f64::from(own) < p) {
            return false;
        }
    }
    if let Some(((ra0, ra1), (dec0, dec1))) = cfg.region {
        if !(o.ra >= ra0 && o.ra <= ra1 && o.dec >= dec0 && o.dec <= dec1) {
            return false;
        }
    }
    if let Some((fraction, seed)) = cfg.sample {
        if unit_hash(HashDomain::Sample, seed, &o.ato_id) >= fraction {
            return false;
        }
    }
    true
}

fn fits_err(path: &Path, e: fitsio::errors::Error) -> anyhow::Error {
    anyhow::anyhow!("{}: cannot read the ATLAS-VAR catalog: {e}", path.display())
}

/// The widest text column read (ATLAS-VAR's `ATO_ID` is 21 characters, `CLASS` at most 7).
pub const MAX_TEXT_WIDTH: i64 = 1024;

/// The values of text column `name` for the rows in `range` (0-based), trailing blanks removed.
///
/// Not fitsio's `read_col_range::<String>`: that gives cfitsio a buffer of the column's display
/// width per value, and cfitsio writes the value and a terminating NUL, one byte past the buffer
/// when a value fills its column (found by fuzzing; a heap overflow). Here each value has
/// `width + 1` bytes, and a column that is not text, holds several strings per row or is wider
/// than [`MAX_TEXT_WIDTH`] is refused.
fn read_text_col(
    fits: &mut FitsFile,
    hdu: &fitsio::hdu::FitsHdu,
    path: &Path,
    names: &[String],
    name: &str,
    range: &std::ops::Range<usize>,
) -> anyhow::Result<Vec<String>> {
    let refuse =
        |why: String| anyhow::anyhow!("{}: cannot read the ATLAS-VAR catalog: column `{name}` {why}", path.display());
    let col = names.iter().position(|n| n == name).ok_or_else(|| refuse("is missing".into()))?;
    let colnum = i32::try_from(col + 1).map_err(|_| refuse("is past the last column cfitsio reads".into()))?;
    let (mut typecode, mut repeat, mut width, mut status) = (0i32, 0i64, 0i64, 0i32);
    let hdu_number = i32::try_from(hdu.number + 1).map_err(|_| refuse("is in an HDU past cfitsio's count".into()))?;
    // Make the table current (the calls below go to cfitsio directly); not `fits.hdu(..)`, which
    // also re-reads every column description (a sixth of the catalog's read time, per chunk).
    // SAFETY: the file is open; cfitsio writes the integers passed by pointer.
    unsafe {
        let mut hdu_type = 0;
        fitsio::sys::ffmahd(fits.as_raw(), hdu_number, &mut hdu_type, &mut status);
        fitsio::sys::ffgtclll(fits.as_raw(), colnum, &mut typecode, &mut repeat, &mut width, &mut status);
    }
    fitsio::errors::check_status(status).map_err(|e| fits_err(path, e))?;
    if typecode != fitsio::sys::TSTRING as i32 {
        return Err(refuse("is not a text column (TFORM `<n>A`)".into()));
    }
    if width < 1 || width != repeat || width > MAX_TEXT_WIDTH {
        return Err(refuse(format!(
            "must hold one text value of 1 to {MAX_TEXT_WIDTH} characters per row (it holds {repeat} characters in values of {width})"
        )));
    }
    let rows = range.len();
    if rows == 0 {
        return Ok(Vec::new());
    }
    let stride = width as usize + 1;
    let mut buf = vec![0u8; rows * stride];
    let mut ptrs: Vec<*mut std::ffi::c_char> =
        buf.chunks_exact_mut(stride).map(|c| c.as_mut_ptr() as *mut std::ffi::c_char).collect();
    let mut nulval = [0 as std::ffi::c_char; 1];
    let mut anynul = 0;
    // SAFETY: the table is the current HDU and column `colnum` holds one string of `width`
    // characters per row; cfitsio writes at most `width` characters and a NUL to each of the
    // `rows` pointers, each the start of its own `width + 1` bytes of `buf`, which outlives the call.
    unsafe {
        fitsio::sys::ffgcvs(
            fits.as_raw(),
            colnum,
            range.start as i64 + 1,
            1,
            rows as i64,
            nulval.as_mut_ptr(),
            ptrs.as_mut_ptr(),
            &mut anynul,
            &mut status,
        );
    }
    fitsio::errors::check_status(status).map_err(|e| fits_err(path, e))?;
    buf.chunks_exact(stride)
        .enumerate()
        .map(|(k, c)| {
            let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
            let text = std::str::from_utf8(&c[..end])
                .map_err(|_| refuse(format!("row {} is not UTF-8 text", range.start + k + 1)))?;
            Ok(text.trim_end().to_string())
        })
        .collect()
}

/// Read the catalog's first binary table and keep the selected objects, sorted by `ATO_ID`, at
/// most `limit` of them.
pub fn read(path: &Path, cfg: &AtlasVarConfig) -> anyhow::Result<Vec<Object>> {
    let mut fits = FitsFile::open(path).map_err(|e| fits_err(path, e))?;
    let n_hdus = fits.num_hdus().map_err(|e| fits_err(path, e))?;
    let mut table = None;
    for i in 0..n_hdus {
        let hdu = crate::transform::image::fitsio_hdu(&mut fits, i)
            .map_err(|e| anyhow::anyhow!("{}: cannot read the ATLAS-VAR catalog: {e}", path.display()))?;
        let found = match &hdu.info {
            HduInfo::TableInfo { column_descriptions, num_rows } => {
                let float32: Vec<String> = column_descriptions
                    .iter()
                    .filter(|c| c.data_type.typ == fitsio::tables::ColumnDataType::Float)
                    .map(|c| c.name.clone())
                    .collect();
                Some((column_descriptions.iter().map(|c| c.name.clone()).collect::<Vec<String>>(), *num_rows, float32))
            }
            _ => None,
        };
        if let Some((names, rows, float32)) = found {
            table = Some((hdu, names, rows, float32));
            break;
        }
    }
    let Some((hdu, names, rows, float32)) = table else {
        anyhow::bail!("{}: no binary table in the file (expected the ATLAS-VAR object table)", path.display());
    };
    for need in ["ATO_ID", "ra", "dec", "CLASS"] {
        anyhow::ensure!(
            names.iter().any(|n| n == need),
            "{}: the table has no `{need}` column (columns: {})",
            path.display(),
            names.join(", ")
        );
    }
    let prob_cols: Vec<Option<String>> = CLASSES
        .iter()
        .map(|c| {
            let name = format!("prob_{c}");
            names.contains(&name).then_some(name)
        })
        .collect();
    let extra: Vec<&str> = EXTRA.iter().copied().filter(|c| names.iter().any(|n| n == c)).collect();
    let row_bytes: i64 = hdu.read_key(&mut fits, "NAXIS1").map_err(|e| fits_err(path, e))?;
    let chunk_rows = (CHUNK_BYTES / usize::try_from(row_bytes).unwrap_or(1).max(1)).max(1);
    let mut kept = Vec::new();
    let mut start = 0;
    while start < rows {
        let range = start..(start + chunk_rows).min(rows);
        let col_f64 = |fits: &mut FitsFile, name: &str| -> anyhow::Result<Vec<f64>> {
            hdu.read_col_range::<f64>(fits, name, &range).map_err(|e| fits_err(path, e))
        };
        let ids = read_text_col(&mut fits, &hdu, path, &names, "ATO_ID", &range)?;
        let classes = read_text_col(&mut fits, &hdu, path, &names, "CLASS", &range)?;
        let ra = col_f64(&mut fits, "ra")?;
        let dec = col_f64(&mut fits, "dec")?;
        let mut probs = Vec::with_capacity(CLASSES.len());
        for col in &prob_cols {
            probs.push(match col {
                Some(name) => Some(hdu.read_col_range::<f32>(&mut fits, name, &range).map_err(|e| fits_err(path, e))?),
                None => None,
            });
        }
        let mut extras = Vec::with_capacity(extra.len());
        for name in &extra {
            extras.push(if float32.iter().any(|f| f == name) {
                let col = hdu.read_col_range::<f32>(&mut fits, name, &range).map_err(|e| fits_err(path, e))?;
                col.into_iter().map(Number::F32).collect::<Vec<_>>()
            } else {
                col_f64(&mut fits, name)?.into_iter().map(Number::F64).collect()
            });
        }
        for i in 0..ids.len() {
            let mut p = [f32::NAN; 14];
            for (k, col) in probs.iter().enumerate() {
                if let Some(col) = col {
                    p[k] = col[i];
                }
            }
            let o = Object {
                ato_id: ids[i].trim().to_string(),
                ra: ra[i],
                dec: dec[i],
                class: classes[i].trim().to_string(),
                probs: p,
                extra: extra.iter().zip(&extras).map(|(n, v)| (*n, v[i])).collect(),
            };
            if selected(cfg, &o) {
                kept.push(o);
            }
        }
        start = range.end;
    }
    let mut kept = sorted_by_id(kept);
    kept.dedup_by(|a, b| a.ato_id == b.ato_id);
    if let Some(limit) = cfg.limit {
        kept.truncate(limit as usize);
    }
    Ok(kept)
}

/// `objects` sorted by `ATO_ID`, objects with the same id in table order (as a stable sort
/// would leave them). The objects are not moved while sorting: a key of the id's first 16 bytes
/// and the object's place is sorted, ties broken by the whole id, then the objects are taken in
/// that order. (A stable sort of the objects themselves was a tenth of a 1 GB shard run's
/// single-threaded start.)
fn sorted_by_id(objects: Vec<Object>) -> Vec<Object> {
    let prefix = |id: &str| {
        let mut b = [0u8; 16];
        let n = id.len().min(16);
        b[..n].copy_from_slice(&id.as_bytes()[..n]);
        u128::from_be_bytes(b)
    };
    let mut order: Vec<(u128, usize)> = objects.iter().enumerate().map(|(i, o)| (prefix(&o.ato_id), i)).collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| objects[a.1].ato_id.cmp(&objects[b.1].ato_id)).then(a.1.cmp(&b.1))
    });
    let mut slots: Vec<Option<Object>> = objects.into_iter().map(Some).collect();
    order.into_iter().filter_map(|(_, i)| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fitsio::tables::{ColumnDataType, ColumnDescription};

    #[test]
    fn sorting_by_id_is_a_stable_sort() {
        // Ids sharing 16-byte prefixes, shorter ids that are prefixes of longer ones, ids
        // differing only past byte 16, and duplicates (told apart by `ra`, their table order).
        let mut ids: Vec<String> = Vec::new();
        for i in 0..300u32 {
            let base = ["J000000.00+000000", "J000000.00+00000", "J0", "", "J000000.00+000000.1"][(i % 5) as usize];
            ids.push(format!("{base}{}", (i * 7919) % 13));
            ids.push(base.to_string());
        }
        let objects: Vec<Object> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| Object {
                ato_id: id.clone(),
                ra: k as f64,
                dec: 0.0,
                class: String::new(),
                probs: [0.0; 14],
                extra: Vec::new(),
            })
            .collect();
        let mut want = objects.clone();
        want.sort_by(|a, b| a.ato_id.cmp(&b.ato_id));
        let got = sorted_by_id(objects);
        let key = |v: &[Object]| v.iter().map(|o| (o.ato_id.clone(), o.ra)).collect::<Vec<_>>();
        assert_eq!(key(&got), key(&want));
    }

    /// A small object table written with fitsio.
    pub fn write_table(path: &Path, rows: &[(&str, f64, f64, &str, f32)]) {
        let mut f = FitsFile::create(path).open().unwrap();
        let mut cols = vec![
            ColumnDescription::new("ATO_ID").with_type(ColumnDataType::String).that_repeats(20).create().unwrap(),
            ColumnDescription::new("ra").with_type(ColumnDataType::Double).create().unwrap(),
            ColumnDescription::new("dec").with_type(ColumnDataType::Double).create().unwrap(),
            ColumnDescription::new("CLASS").with_type(ColumnDataType::String).that_repeats(8).create().unwrap(),
        ];
        for c in CLASSES {
            cols.push(ColumnDescription::new(format!("prob_{c}")).with_type(ColumnDataType::Float).create().unwrap());
        }
        let hdu = f.create_table("OBJECT", &cols).unwrap();
        let ids: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
        hdu.write_col(&mut f, "ATO_ID", &ids).unwrap();
        hdu.write_col(&mut f, "ra", &rows.iter().map(|r| r.1).collect::<Vec<_>>()).unwrap();
        hdu.write_col(&mut f, "dec", &rows.iter().map(|r| r.2).collect::<Vec<_>>()).unwrap();
        let classes: Vec<String> = rows.iter().map(|r| r.3.to_string()).collect();
        hdu.write_col(&mut f, "CLASS", &classes).unwrap();
        for c in CLASSES {
            let v: Vec<f32> = rows.iter().map(|r| if r.3 == *c { r.4 } else { 0.01 }).collect();
            hdu.write_col(&mut f, format!("prob_{c}"), &v).unwrap();
        }
    }

    /// A table of `rows` objects whose ATO_ID is `width` characters wide; `fill` makes every id
    /// fill the column.
    fn write_wide_ids(path: &Path, width: usize, rows: usize, fill: bool, id_type: ColumnDataType) {
        let mut f = FitsFile::create(path).open().unwrap();
        let cols = [
            ColumnDescription::new("ATO_ID").with_type(id_type).that_repeats(width).create().unwrap(),
            ColumnDescription::new("ra").with_type(ColumnDataType::Double).create().unwrap(),
            ColumnDescription::new("dec").with_type(ColumnDataType::Double).create().unwrap(),
            ColumnDescription::new("CLASS").with_type(ColumnDataType::String).that_repeats(8).create().unwrap(),
        ];
        let hdu = f.create_table("OBJECT", &cols).unwrap();
        let ids: Vec<String> = (0..rows)
            .map(|i| {
                let id = format!("ATO J{i:07}");
                if fill {
                    format!("{id:X<width$}")
                } else {
                    id
                }
            })
            .collect();
        if id_type == ColumnDataType::String {
            hdu.write_col(&mut f, "ATO_ID", &ids).unwrap();
        }
        hdu.write_col(&mut f, "ra", &vec![1.0f64; rows]).unwrap();
        hdu.write_col(&mut f, "dec", &vec![2.0f64; rows]).unwrap();
        hdu.write_col(&mut f, "CLASS", &vec!["dubious1".to_string(); rows]).unwrap();
    }

    /// Fuzzing regression: ids that fill their column made fitsio's string reader overrun the
    /// heap by one byte per value (glibc aborted with `free(): invalid pointer`).
    #[test]
    fn text_values_that_fill_their_column_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        for width in [21, 24, 40, 56] {
            let path = dir.path().join(format!("object-{width}.fits"));
            write_wide_ids(&path, width, 3000, true, ColumnDataType::String);
            let all = read(&path, &cfg()).unwrap();
            assert_eq!(all.len(), 3000);
            assert!(all.iter().all(|o| o.ato_id.len() == width && o.class == "dubious1"), "width {width}");
            // 3000 rows of 45 to 80 bytes are several chunks: every row is read, in order.
            for (i, o) in all.iter().enumerate() {
                assert_eq!(o.ato_id, format!("{:X<width$}", format!("ATO J{i:07}")), "width {width}, row {i}");
            }
        }
    }

    /// Fuzzing regression: fitsio panicked (`Have not implemented str -> ColumnDataType for C`)
    /// describing a table with a complex column; now an error names the column.
    #[test]
    fn a_column_type_fitsio_cannot_describe_is_an_error() {
        let card = |c: &str| format!("{c:<80}").into_bytes();
        let block = |mut v: Vec<u8>, fill: u8| {
            v.resize(v.len().div_ceil(2880) * 2880, fill);
            v
        };
        let primary: Vec<u8> = [
            "SIMPLE  =                    T",
            "BITPIX  =                    8",
            "NAXIS   =                    0",
            "END",
        ]
        .iter()
        .flat_map(|c| card(c))
        .collect();
        let table: Vec<u8> = [
            "XTENSION= 'BINTABLE'",
            "BITPIX  =                    8",
            "NAXIS   =                    2",
            "NAXIS1  =                    8",
            "NAXIS2  =                    1",
            "PCOUNT  =                    0",
            "GCOUNT  =                    1",
            "TFIELDS =                    1",
            "TTYPE1  = 'ATO_ID  '",
            "TFORM1  = '1C      '",
            "END",
        ]
        .iter()
        .flat_map(|c| card(c))
        .collect();
        let bytes = [block(primary, b' '), block(table, b' '), vec![0u8; 2880]].concat();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object.fits");
        fs_err::write(&path, bytes).unwrap();
        let e = read(&path, &cfg()).unwrap_err().to_string();
        assert!(
            e.contains(
                "object.fits: cannot read the ATLAS-VAR catalog: HDU 1 column 1 has TFORM `1C`, which etd cannot read"
            ),
            "{e}"
        );
    }

    #[test]
    fn an_id_column_that_is_not_text_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object.fits");
        write_wide_ids(&path, 1, 3, false, ColumnDataType::Double);
        let e = read(&path, &cfg()).unwrap_err().to_string();
        assert!(
            e.contains(
                "object.fits: cannot read the ATLAS-VAR catalog: column `ATO_ID` is not a text column (TFORM `<n>A`)"
            ),
            "{e}"
        );
    }

    fn cfg() -> AtlasVarConfig {
        AtlasVarConfig {
            catalog_url: url::Url::parse("file:///c.fits").unwrap(),
            lightcurves_url: url::Url::parse("file:///d/").unwrap(),
            classes: vec![],
            min_probability: None,
            region: None,
            sample: None,
            limit: None,
            memory: super::super::DEFAULT_MEMORY,
        }
    }

    #[test]
    fn selection_by_class_probability_region_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object.fits");
        write_table(
            &path,
            &[
                ("J000000.00+100000.0", 10.0, 10.0, "MIRA", 0.9),
                ("J000000.00+200000.0", 20.0, 20.0, "PULSE", 0.5),
                ("J000000.00+300000.0", 30.0, 30.0, "MIRA", 0.3),
                ("J000000.00+400000.0", 40.0, -20.0, "CBF", 0.99),
            ],
        );
        let all = read(&path, &cfg()).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].class_index(), Some(CLASSES.iter().position(|c| *c == "MIRA").unwrap()));
        let mira = read(&path, &AtlasVarConfig { classes: vec!["MIRA".into()], ..cfg() }).unwrap();
        assert_eq!(mira.len(), 2);
        let sure = read(&path, &AtlasVarConfig { min_probability: Some(0.6), ..cfg() }).unwrap();
        assert_eq!(sure.iter().map(|o| o.ra).collect::<Vec<_>>(), [10.0, 40.0]);
        let north = read(&path, &AtlasVarConfig { region: Some(((0.0, 360.0), (15.0, 90.0))), ..cfg() }).unwrap();
        assert_eq!(north.len(), 2);
        let two = read(&path, &AtlasVarConfig { limit: Some(2), ..cfg() }).unwrap();
        assert_eq!(
            two.iter().map(|o| o.ato_id.as_str()).collect::<Vec<_>>(),
            ["J000000.00+100000.0", "J000000.00+200000.0"]
        );
    }

    #[test]
    fn float32_columns_stay_float32_and_float64_columns_keep_every_digit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object.fits");
        let mut f = FitsFile::create(&path).open().unwrap();
        let cols = [
            ColumnDescription::new("ATO_ID").with_type(ColumnDataType::String).that_repeats(20).create().unwrap(),
            ColumnDescription::new("ra").with_type(ColumnDataType::Double).create().unwrap(),
            ColumnDescription::new("dec").with_type(ColumnDataType::Double).create().unwrap(),
            ColumnDescription::new("CLASS").with_type(ColumnDataType::String).that_repeats(8).create().unwrap(),
            ColumnDescription::new("gmag").with_type(ColumnDataType::Float).create().unwrap(),
            ColumnDescription::new("fp_lngfitper").with_type(ColumnDataType::Double).create().unwrap(),
        ];
        let hdu = f.create_table("OBJECT", &cols).unwrap();
        hdu.write_col(&mut f, "ATO_ID", &["J000000.00+100000.0".to_string()]).unwrap();
        hdu.write_col(&mut f, "ra", &[1.0f64]).unwrap();
        hdu.write_col(&mut f, "dec", &[2.0f64]).unwrap();
        hdu.write_col(&mut f, "CLASS", &["MIRA".to_string()]).unwrap();
        hdu.write_col(&mut f, "gmag", &[17.313f32]).unwrap();
        // Exactly representable as float32, whose shortest form would be 337.76562.
        hdu.write_col(&mut f, "fp_lngfitper", &[337.765625f64]).unwrap();
        drop(f);
        let o = &read(&path, &cfg()).unwrap()[0];
        assert_eq!(o.extra, [("fp_lngfitper", Number::F64(337.765625)), ("gmag", Number::F32(17.313))]);
        let json = serde_json::to_string(&o.extra.iter().map(|(_, v)| v).collect::<Vec<_>>()).unwrap();
        assert_eq!(json, "[337.765625,17.313]");
        let tiny = [Number::F32(3.5e-6), Number::F32(1.5e13), Number::F32(0.0838), Number::F32(f32::NAN)];
        assert_eq!(serde_json::to_string(&tiny).unwrap(), "[3.5e-6,15000000000000.0,0.0838,null]");
    }
}
