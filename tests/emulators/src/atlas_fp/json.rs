//! Ordered JSON values and the number and time spellings of the Python server.
//!
//! DRF renders a serializer's fields in declaration order, so objects here keep insertion order
//! (serde_json's `Map` would sort them unless `preserve_order` is enabled).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A JSON value whose objects keep their key order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn obj<K: Into<String>>(fields: Vec<(K, J)>) -> J {
        J::Obj(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn str(s: impl Into<String>) -> J {
        J::Str(s.into())
    }

    pub fn opt_f(v: Option<f64>) -> J {
        v.map_or(J::Null, J::Float)
    }

    pub fn opt_s(v: Option<&str>) -> J {
        v.map_or(J::Null, J::str)
    }

    /// Compact rendering, as DRF's `JSONRenderer` does (no spaces after separators).
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => out.push_str(&i.to_string()),
            // serde_json writes the shortest round-trip form ("10.0"), like Python's repr.
            J::Float(f) => out.push_str(&serde_json::to_string(f).unwrap_or_else(|_| "null".into())),
            J::Str(s) => out.push_str(&quote(s)),
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quote(k));
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Python's `repr(float)` (also `str(float)`): shortest round-trip digits, `.0` on integral
/// values, exponent form outside `1e-4 <= |x| < 1e16`.
pub(crate) fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = exp.parse().unwrap_or(0);
        return format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        s + ".0"
    }
}

/// Python's `float(str)`: surrounding whitespace, `_` between digits, `inf`/`nan` spellings.
pub(crate) fn py_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    let cleaned: String = if t.contains('_') {
        let b = t.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'_' && !(i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit()) {
                return None;
            }
        }
        t.replace('_', "")
    } else {
        t.to_string()
    };
    let lower = cleaned.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if lower.len() - unsigned.len() > 1 {
        return None;
    }
    let neg = lower.starts_with('-');
    match unsigned {
        "inf" | "infinity" => return Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY }),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    // Rust accepts a few spellings Python does not ("infinity" handled above); digits only here.
    if !unsigned.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-')) {
        return None;
    }
    cleaned.parse::<f64>().ok()
}

/// Python's `str()` of a JSON number as `json.loads` would have produced it (int or float).
pub(crate) fn py_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        py_repr(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Python's `round(x, 5)` (correctly rounded, like Rust's fixed-precision formatting).
pub(crate) fn round5(x: f64) -> f64 {
    format!("{x:.5}").parse().unwrap_or(x)
}

fn unix(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Modified Julian Date of a wall-clock time.
pub(crate) fn mjd(t: SystemTime) -> f64 {
    unix(t).as_secs_f64() / 86_400.0 + 40_587.0
}

/// Truncates to the whole second (the server stores `timestamp` with `microsecond=0`).
pub(crate) fn whole_second(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix(t).as_secs())
}

/// DRF's `DateTimeField` rendering of an aware UTC datetime: `isoformat()` with `+00:00`
/// replaced by `Z`; microseconds only when non-zero.
pub(crate) fn iso_utc(t: SystemTime) -> String {
    let d = unix(t);
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, dd) = civil_from_days(days);
    let micros = d.subsec_micros();
    let frac = if micros == 0 { String::new() } else { format!(".{micros:06}") };
    format!("{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}{frac}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Python's `str.splitlines()` (the line boundaries it knows beyond `\n` and `\r\n`).
pub(crate) fn py_splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let boundary = matches!(
            c,
            '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        );
        if boundary {
            out.push(&s[start..i]);
            let mut next = i + c.len_utf8();
            if c == '\r' && it.peek().is_some_and(|&(_, n)| n == '\n') {
                it.next();
                next += 1;
            }
            start = next;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_spellings() {
        assert_eq!(py_repr(59000.0), "59000.0");
        assert_eq!(py_repr(-0.0), "-0.0");
        assert_eq!(py_repr(61234.12345), "61234.12345");
        assert_eq!(py_repr(1e16), "1e+16");
        assert_eq!(py_repr(1.5e-5), "1.5e-05");
        assert_eq!(py_float(" 1_000.5 "), Some(1000.5));
        assert!(py_float("nan").unwrap().is_nan());
        assert_eq!(py_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(py_float("1e400"), Some(f64::INFINITY));
        assert_eq!(py_float("abc"), None);
        assert_eq!(py_float("1__0"), None);
        assert_eq!(py_float("--1"), None);
        assert_eq!(py_float(""), None);
        assert_eq!(round5(12.3456789), 12.34568);
    }

    #[test]
    fn times() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(iso_utc(t), "2023-11-14T22:13:20Z");
        assert_eq!(iso_utc(t + Duration::from_micros(1500)), "2023-11-14T22:13:20.001500Z");
        assert!((mjd(t) - 60262.92592592593).abs() < 1e-9);
        assert_eq!(iso_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn ordered_objects() {
        let j = J::obj(vec![("b", J::Int(1)), ("a", J::Float(2.0)), ("s", J::str("x\"y")), ("n", J::Null)]);
        assert_eq!(j.render(), r#"{"b":1,"a":2.0,"s":"x\"y","n":null}"#);
        assert_eq!(py_splitlines("a\r\nb\rc\n\nd"), vec!["a", "b", "c", "", "d"]);
        assert_eq!(py_splitlines("a\n"), vec!["a"]);
    }
}
