//! `misc.splitradeclist`: a submission's `radeclist` becomes one row per line, with astrocalc's
//! rules for decimal and sexagesimal coordinates (`unit_conversion.ra/dec_sexegesimal_to_decimal`).

use super::json::{py_float, py_repr, py_splitlines};
use super::validate::{check_mpc_name, one, validate_row, Errors, Raw, Row};
use serde_json::Value;
use std::time::SystemTime;

/// `misc.splitradeclist`: one row per non-blank line (plus one for `ra`/`dec` fields given
/// alongside), each line validated as it is split. Returns the rows in submission order.
pub(crate) fn split_radeclist(data: &Row, now: SystemTime) -> Result<Vec<Row>, Errors> {
    let text = match data.get("radeclist") {
        Some(Raw::Text(t) | Raw::Json(Value::String(t))) => t.clone(),
        _ => {
            return Err(one("radeclist", "radeclist must be a string of newline-separated coordinates or MPC names"));
        }
    };
    let num = |x: f64| Raw::Json(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number));
    let mut rows = Vec::new();
    if let (Some(ra), Some(dec)) = (data.get("ra"), data.get("dec")) {
        if ra.is_given() && dec.is_given() {
            let conv = ra_to_deg(&ra.py_str().unwrap_or_default())
                .and_then(|r| dec_to_deg(&dec.py_str().unwrap_or_default()).map(|d| (r, d)));
            let (r, d) = conv.map_err(|e| one("ra", format!("Could not parse RA/Dec: {e}")))?;
            let mut row = data.clone();
            row.set("ra", num(r));
            row.set("dec", num(d));
            row.fields.retain(|(k, _)| k != "radeclist");
            rows.push(row);
        }
    }
    let lines: Vec<&str> = py_splitlines(&text).into_iter().map(str::trim).collect();
    let count = lines.iter().filter(|l| !l.is_empty()).count();
    if count > 100 {
        return Err(one("radeclist", format!("Number of lines ({count}) is above the limit of 100")));
    }
    for (i, line) in lines.iter().enumerate() {
        let index = i + 1;
        let head: String = line.chars().take(4).collect();
        if ["mpc_", "MPC_", "mpc ", "MPC "].contains(&head.as_str()) {
            let name: String = line.chars().skip(4).collect::<String>().trim().to_string();
            if name.is_empty() {
                return Err(one("radeclist", format!("Error on line {index}: MPC name is blank")));
            }
            check_mpc_name(&name, &format!("Error on line {index}: ")).map_err(|m| one("radeclist", m))?;
            let mut row = data.clone();
            row.set("mpc_name", if row.html { Raw::Text(name) } else { Raw::Json(Value::String(name)) });
            row.set("ra", Raw::Json(Value::Null));
            row.set("dec", Raw::Json(Value::Null));
            validate_row(&row, None, false, now)?;
            rows.push(row);
            continue;
        }
        let cols: Vec<String> = if line.contains(',') {
            line.split(',').map(str::to_string).collect()
        } else {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() == 6 {
                vec![words[..3].join(" "), words[3..].join(" ")]
            } else {
                words.into_iter().map(str::to_string).collect()
            }
        };
        if cols.is_empty() {
            continue;
        }
        if cols.len() < 2 {
            return Err(one(
                "radeclist",
                format!(
                    "Error on line {index}: Could not find two columns. Separate RA and Dec by a comma or a space. \
                     For MPC object names, start the line with 'mpc ', e.g., 'mpc Makemake'"
                ),
            ));
        }
        let (r, d) = ra_to_deg(&cols[0])
            .and_then(|r| dec_to_deg(&cols[1]).map(|d| (r, d)))
            .map_err(|e| one("radeclist", format!("Error on line {index}: {e}")))?;
        let mut row = data.clone();
        row.set("ra", num(r));
        row.set("dec", num(d));
        validate_row(&row, None, false, now)?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(one("radeclist", "No coordinates or MPC object names were given."));
    }
    Ok(rows)
}

/// Digits after the point in Python's repr of `x` (astrocalc's precision rule).
fn repr_decimals(x: f64) -> usize {
    let r = py_repr(x);
    r.rsplit('.').next().map_or(0, str::len)
}

/// Splits `s` at the end of its leading ASCII digit run.
fn digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

/// Skips a run of at least one non-digit.
fn non_digits(s: &str) -> Option<&str> {
    let n = s.chars().take_while(|c| !c.is_ascii_digit()).map(char::len_utf8).sum::<usize>();
    (n > 0).then(|| &s[n..])
}

/// astrocalc `ra_sexegesimal_to_decimal`: decimal degrees in [0, 360], else `hh?mm?ss[.s][s]`.
pub(crate) fn ra_to_deg(input: &str) -> Result<f64, String> {
    if let Some(x) = py_float(input) {
        if (0.0..=360.0).contains(&x) {
            return Ok(x);
        }
    }
    let err = || {
        format!(
            "could not convert ra to decimal degrees, could not parse sexegesimal input. Original value was `{input}`"
        )
    };
    let s = input.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let (h, rest) = digits(s);
    let hour_ok = match h.as_bytes() {
        [_] => true,
        [a, _] => matches!(a, b'0' | b'1') || ("20"..="23").contains(&h),
        _ => false,
    };
    let rest = non_digits(rest).filter(|_| hour_ok).ok_or_else(err)?;
    let (m, rest) = digits(rest);
    if m.len() != 2 || m.as_bytes()[0] > b'5' {
        return Err(err());
    }
    let rest = non_digits(rest).ok_or_else(err)?;
    let (sec, tail) = digits(rest);
    if sec.is_empty() || sec.len() > 2 || (sec.len() == 2 && sec.as_bytes()[0] > b'6') {
        return Err(err());
    }
    let (frac, tail) = match tail.strip_prefix('.') {
        Some(t) => {
            let (f, t) = digits(t);
            (format!(".{f}"), t)
        }
        None => (String::new(), tail),
    };
    let tail = tail.strip_prefix('s').unwrap_or(tail);
    if !tail.chars().all(char::is_whitespace) {
        return Err(err());
    }
    let (h, m, sec): (f64, f64, f64) = (
        h.parse().map_err(|_| err())?,
        m.parse().map_err(|_| err())?,
        py_float(&format!("{sec}{frac}")).ok_or_else(err)?,
    );
    let precision = repr_decimals(sec * 15.0) + 5;
    let deg = h * 15.0 + m * 15.0 / 60.0 + sec * 15.0 / 3600.0;
    format!("{deg:.precision$}").parse().map_err(|_| err())
}

/// astrocalc `dec_sexegesimal_to_decimal`: decimal degrees in (-90, 90), else `±dd?mm?ss[.s]`.
pub(crate) fn dec_to_deg(input: &str) -> Result<f64, String> {
    if let Some(x) = py_float(input) {
        if x > -90.0 && x < 90.0 {
            return Ok(x);
        }
    }
    let err = || {
        format!(
            "could not convert dec to decimal degrees, could not parse sexegesimal input. Original value was `{input}`"
        )
    };
    let s = input.trim();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (d, rest) = digits(s);
    let deg_ok = match d.as_bytes() {
        [_] => true,
        [a, _] => *a <= b'8',
        _ => false,
    };
    let rest = non_digits(rest).filter(|_| deg_ok).ok_or_else(err)?;
    let (m, rest) = digits(rest);
    if m.len() != 2 || m.as_bytes()[0] > b'5' {
        return Err(err());
    }
    let rest = non_digits(rest).ok_or_else(err)?;
    let (sec, tail) = digits(rest);
    if sec.is_empty() || sec.len() > 2 || (sec.len() == 2 && sec.as_bytes()[0] > b'6') {
        return Err(err());
    }
    let frac = match tail.strip_prefix('.') {
        Some(t) if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) => format!(".{t}"),
        None if tail.is_empty() => String::new(),
        _ => return Err(err()),
    };
    let (d, m, sec): (f64, f64, f64) = (
        d.parse().map_err(|_| err())?,
        m.parse().map_err(|_| err())?,
        py_float(&format!("{sec}{frac}")).ok_or_else(err)?,
    );
    let precision = repr_decimals(sec) + 4;
    let value = (d + m / 60.0 + sec / 3600.0) * if neg { -1.0 } else { 1.0 };
    format!("{value:.precision$}").parse().map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atlas_fp::validate::{errors_json, Err};

    fn form(pairs: &[(&str, &str)]) -> Row {
        Row {
            html: true,
            fields: pairs.iter().map(|(k, v)| (k.to_string(), Raw::Text(v.to_string()))).collect(),
            not_a_dict: None,
        }
    }

    #[test]
    fn sexagesimal() {
        assert_eq!(ra_to_deg("150.5").unwrap(), 150.5);
        assert!((ra_to_deg("00 52 20.21").unwrap() - 13.0842083).abs() < 1e-6);
        assert!((ra_to_deg("23:45:21.23232").unwrap() - 356.338468).abs() < 1e-5);
        assert!((ra_to_deg("04:45  21").unwrap() - 71.3375).abs() < 1e-9);
        assert!(ra_to_deg("400").is_err());
        assert!(ra_to_deg("nan").is_err());
        assert!(ra_to_deg("24:00:00").is_err());
        assert!((dec_to_deg("+56 34 03.9").unwrap() - 56.5677500).abs() < 1e-6);
        assert!((dec_to_deg("-23:45:21.23232").unwrap() + 23.7558978667).abs() < 1e-9);
        assert!(dec_to_deg("90").is_err());
        assert!(dec_to_deg("-90.0").is_err());
        assert_eq!(dec_to_deg("-89.5").unwrap(), -89.5);
        assert!(dec_to_deg("-23h53m05s").is_err());
    }

    #[test]
    fn radeclist_rows() {
        let now = SystemTime::now();
        let rows =
            split_radeclist(&form(&[("radeclist", "10 20\r\n\n11,21\nmpc Makemake\n00 52 20.21 +56 34 03.9")]), now)
                .unwrap();
        assert_eq!(rows.len(), 4);
        let bad = split_radeclist(&form(&[("radeclist", "10 20\n30")]), now).unwrap_err();
        assert!(matches!(&bad[0].1, Err::Text(m) if m.starts_with("Error on line 2: Could not find two columns")));
        let bad = split_radeclist(&form(&[("radeclist", "mpc a;b")]), now).unwrap_err();
        assert_eq!(
            errors_json(&bad).render(),
            r#"{"radeclist":"Error on line 1: Invalid mpc_name. May not contain quotes or semicolons"}"#
        );
        let many: String = (0..101).map(|i| format!("{i} 1\n")).collect();
        let bad = split_radeclist(&form(&[("radeclist", &many)]), now).unwrap_err();
        assert_eq!(errors_json(&bad).render(), r#"{"radeclist":"Number of lines (101) is above the limit of 100"}"#);
        let with_fields = split_radeclist(&form(&[("ra", "1"), ("dec", "2"), ("radeclist", "3 4")]), now).unwrap();
        assert_eq!(with_fields.len(), 2);
        assert!(split_radeclist(&form(&[("radeclist", "\n \n")]), now).is_err());
    }
}
