//! A FITS writer for the object catalogue: an empty primary HDU followed by one binary-table
//! extension (FITS 4.0 section 7.3), big-endian, in 2880-byte blocks.

use super::data::{Catalog, ObjectRow, CLASSES};

pub(crate) const BLOCK: usize = 2880;
const CARD: usize = 80;

/// Width of the `ATO_ID` and `CLASS` character columns.
pub(crate) const ATO_ID_WIDTH: usize = 20;
pub(crate) const CLASS_WIDTH: usize = 8;

/// Header cards, each exactly 80 ASCII characters.
struct Header(Vec<String>);

impl Header {
    fn raw(&mut self, text: String) {
        debug_assert!(text.is_ascii() && text.len() <= CARD, "{text}");
        self.0.push(format!("{text:<CARD$}"));
    }

    /// A fixed-format card with a value already formatted; numbers and logicals are right
    /// justified to column 30, strings start at column 11.
    fn value(&mut self, key: &str, value: &str, comment: &str) {
        let mut t = format!("{key:<8}= {value:>20}");
        if !comment.is_empty() {
            t.push_str(" / ");
            t.push_str(comment);
        }
        t.truncate(CARD);
        self.raw(t);
    }

    fn logical(&mut self, key: &str, v: bool, comment: &str) {
        self.value(key, if v { "T" } else { "F" }, comment);
    }

    fn int(&mut self, key: &str, v: i64, comment: &str) {
        self.value(key, &v.to_string(), comment);
    }

    fn string(&mut self, key: &str, v: &str, comment: &str) {
        let quoted = format!("'{:<8}'", v.replace('\'', "''"));
        let mut t = format!("{key:<8}= {quoted:<20}");
        if !comment.is_empty() {
            t.push_str(" / ");
            t.push_str(comment);
        }
        t.truncate(CARD);
        self.raw(t);
    }

    fn comment(&mut self, text: &str) {
        self.raw(format!("COMMENT {text}"));
    }

    /// The header with `END`, padded with spaces to whole blocks.
    fn bytes(mut self) -> Vec<u8> {
        self.raw("END".to_string());
        let mut out: Vec<u8> = self.0.concat().into_bytes();
        pad(&mut out, b' ');
        out
    }
}

fn pad(out: &mut Vec<u8>, with: u8) {
    let len = out.len().div_ceil(BLOCK) * BLOCK;
    out.resize(len, with);
}

/// Appends one row's value of a column, big-endian.
type Encoder = Box<dyn Fn(&ObjectRow, &mut Vec<u8>)>;

/// One table column: name, TFORM, unit, and how to encode a row's value.
struct Column {
    name: String,
    form: &'static str,
    unit: &'static str,
    width: usize,
    put: Encoder,
}

fn put_text(out: &mut Vec<u8>, s: &str, width: usize) {
    let mut b: Vec<u8> = s.bytes().take(width).collect();
    b.resize(width, b' ');
    out.extend_from_slice(&b);
}

fn columns() -> Vec<Column> {
    fn d(name: &str, unit: &'static str, f: fn(&ObjectRow) -> f64) -> Column {
        Column { name: name.into(), form: "D", unit, width: 8, put: Box::new(move |r, o| o.extend(f(r).to_be_bytes())) }
    }
    fn e(name: &str, unit: &'static str, f: fn(&ObjectRow) -> f32) -> Column {
        Column { name: name.into(), form: "E", unit, width: 4, put: Box::new(move |r, o| o.extend(f(r).to_be_bytes())) }
    }
    let mut cols = vec![
        Column {
            name: "objid".into(),
            form: "K",
            unit: "",
            width: 8,
            put: Box::new(|r, o| o.extend(r.objid.to_be_bytes())),
        },
        Column {
            name: "ATO_ID".into(),
            form: "20A",
            unit: "",
            width: ATO_ID_WIDTH,
            put: Box::new(|r, o| put_text(o, &r.ato_id, ATO_ID_WIDTH)),
        },
        d("ra", "deg", |r| r.ra),
        d("dec", "deg", |r| r.dec),
        Column {
            name: "CLASS".into(),
            form: "8A",
            unit: "",
            width: CLASS_WIDTH,
            put: Box::new(|r, o| put_text(o, &r.class, CLASS_WIDTH)),
        },
    ];
    for (i, class) in CLASSES.iter().enumerate() {
        cols.push(Column {
            name: format!("prob_{class}"),
            form: "E",
            unit: "",
            width: 4,
            put: Box::new(move |r, o| o.extend(r.probs[i].to_be_bytes())),
        });
    }
    cols.push(d("fp_LSperiod", "d", |r| r.fp_lsperiod));
    cols.push(e("gmag", "mag", |r| r.gmag));
    cols.push(e("rmag", "mag", |r| r.rmag));
    cols.push(e("imag", "mag", |r| r.imag));
    cols.push(e("zmag", "mag", |r| r.zmag));
    cols.push(e("ymag", "mag", |r| r.ymag));
    cols.push(d("fp_period", "d", |r| r.fp_period));
    cols.push(d("ls_Pday", "d", |r| r.ls_pday));
    cols.push(d("fp_lngfitper", "d", |r| r.fp_lngfitper));
    cols.push(e("vf_c_med", "mag", |r| r.vf_c_med));
    cols.push(e("vf_o_med", "mag", |r| r.vf_o_med));
    cols
}

/// The names of the table columns, in order (`TTYPE1..`).
pub fn catalog_columns() -> Vec<String> {
    columns().into_iter().map(|c| c.name).collect()
}

pub(crate) fn catalog_fits(catalog: &Catalog) -> Vec<u8> {
    let cols = columns();
    let row_bytes: usize = cols.iter().map(|c| c.width).sum();

    let mut primary = Header(Vec::new());
    primary.logical("SIMPLE", true, "conforms to FITS standard");
    primary.int("BITPIX", 8, "array data type");
    primary.int("NAXIS", 0, "number of array dimensions");
    primary.logical("EXTEND", true, "");
    primary.string("TELESCOP", "ATLAS", "");
    primary.string("FILTER", "c,o", "cyan and orange");
    primary.string("HLSPID", "ATLAS-VAR", "");
    primary.string("HLSPLEAD", "A. N. Heinze", "");
    primary.string("DOI", "10.17909/T9H98D", "");
    primary.string("DATE", "2018-03-28", "");
    primary.comment("Synthetic ATLAS-VAR DR1 object catalogue written by etd-emulators.");
    let mut out = primary.bytes();

    let mut ext = Header(Vec::new());
    ext.string("XTENSION", "BINTABLE", "binary table extension");
    ext.int("BITPIX", 8, "array data type");
    ext.int("NAXIS", 2, "number of array dimensions");
    ext.int("NAXIS1", row_bytes as i64, "length of a row in bytes");
    ext.int("NAXIS2", catalog.rows.len() as i64, "number of rows");
    ext.int("PCOUNT", 0, "number of group parameters");
    ext.int("GCOUNT", 1, "number of groups");
    ext.int("TFIELDS", cols.len() as i64, "number of table fields");
    for (i, c) in cols.iter().enumerate() {
        let n = i + 1;
        ext.string(&format!("TTYPE{n}"), &c.name, "");
        ext.string(&format!("TFORM{n}"), c.form, "");
        if !c.unit.is_empty() {
            ext.string(&format!("TUNIT{n}"), c.unit, "");
        }
    }
    ext.string("EXTNAME", "OBJECT", "");
    out.extend(ext.bytes());

    let start = out.len();
    out.reserve(row_bytes * catalog.rows.len() + BLOCK);
    for r in &catalog.rows {
        for c in &cols {
            (c.put)(r, &mut out);
        }
    }
    debug_assert_eq!(out.len() - start, row_bytes * catalog.rows.len());
    pad(&mut out, 0);
    out
}
