//! Validation of task submissions the way `ForcePhotTaskSerializer` (a DRF `ModelSerializer`)
//! does it: field parsing per DRF field type, the serializer's `validate_<field>` hooks (whose
//! dict errors DRF nests under the field name) and `validate()`; plus the token serializer.

use super::json::{py_float, py_number, py_repr, round5, J};
use serde_json::Value;
use std::time::SystemTime;

/// One submitted value: text from a form, or a JSON value (`Value::Null` is Python `None`).
#[derive(Clone, Debug)]
pub(crate) enum Raw {
    Text(String),
    Json(Value),
}

impl Raw {
    /// Python `str()` of the value (what astrocalc and DRF's CharField/DecimalField see).
    pub(crate) fn py_str(&self) -> Option<String> {
        match self {
            Raw::Text(s) | Raw::Json(Value::String(s)) => Some(s.clone()),
            Raw::Json(Value::Number(n)) => Some(py_number(n)),
            Raw::Json(Value::Bool(b)) => Some(if *b { "True" } else { "False" }.into()),
            Raw::Json(Value::Null) => Some("None".into()),
            Raw::Json(v) => Some(v.to_string()),
        }
    }

    /// `value not in (None, "")`.
    pub(crate) fn is_given(&self) -> bool {
        !matches!(self, Raw::Text(s) | Raw::Json(Value::String(s)) if s.is_empty())
            && !matches!(self, Raw::Json(Value::Null))
    }
}

/// A submission as DRF's `request.data` holds it: an HTML form (QueryDict semantics: the last
/// value of a repeated name wins, omitted booleans read as false) or a parsed JSON document.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub html: bool,
    pub fields: Vec<(String, Raw)>,
    /// A JSON body that is not an object: Python's type name of what it was.
    pub not_a_dict: Option<&'static str>,
}

impl Row {
    pub fn get(&self, name: &str) -> Option<&Raw> {
        self.fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn set(&mut self, name: &str, v: Raw) {
        self.fields.retain(|(k, _)| k != name);
        self.fields.push((name.to_string(), v));
    }
}

/// One error value, shaped like DRF's `ErrorDetail` containers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Err {
    Text(String),
    List(Vec<String>),
    Map(Vec<(String, Err)>),
}

pub(crate) type Errors = Vec<(String, Err)>;

pub(crate) fn err_json(e: &Err) -> J {
    match e {
        Err::Text(s) => J::str(s.clone()),
        Err::List(v) => J::Arr(v.iter().map(|s| J::str(s.clone())).collect()),
        Err::Map(m) => errors_json(m),
    }
}

pub(crate) fn errors_json(errs: &Errors) -> J {
    J::Obj(errs.iter().map(|(k, v)| (k.clone(), err_json(v))).collect())
}

/// `{field: "msg"}`, the shape of a `ValidationError({field: msg})` raised outside a serializer.
pub(crate) fn one(field: &str, msg: impl Into<String>) -> Errors {
    vec![(field.to_string(), Err::Text(msg.into()))]
}

/// `{field: ["msg"]}`, the shape `validate()` errors take after DRF's `as_serializer_error`.
fn listed(field: &str, msg: impl Into<String>) -> Errors {
    vec![(field.to_string(), Err::List(vec![msg.into()]))]
}

/// A task's stored, user-settable fields (model defaults in [`TaskFields::defaults`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TaskFields {
    pub mpc_name: Option<String>,
    pub ra: Option<f64>,
    pub dec: Option<f64>,
    pub mjd_min: Option<f64>,
    pub mjd_max: Option<f64>,
    /// DecimalField(7, 1), rendered by DRF as a string such as `"2000.0"`.
    pub radec_epoch_year: Option<String>,
    pub propermotion_ra: Option<f64>,
    pub propermotion_dec: Option<f64>,
    pub use_reduced: bool,
    pub send_email: bool,
    pub comment: Option<String>,
    pub callback_url: Option<String>,
    pub request_type: String,
}

impl TaskFields {
    pub fn defaults(now: SystemTime) -> TaskFields {
        TaskFields {
            mpc_name: None,
            ra: None,
            dec: None,
            mjd_min: Some(mjd_min_default(now)),
            mjd_max: None,
            radec_epoch_year: None,
            propermotion_ra: None,
            propermotion_dec: None,
            use_reduced: false,
            send_email: true,
            comment: None,
            callback_url: None,
            request_type: "FP".into(),
        }
    }
}

/// `get_mjd_min_default()`: 30 days ago, rounded to 5 decimals.
pub(crate) fn mjd_min_default(now: SystemTime) -> f64 {
    round5(super::json::mjd(now) - 30.0)
}

/// A validated value; `Null` is an explicit `None`.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Null,
    S(String),
    F(f64),
    B(bool),
}

#[derive(Clone, Copy)]
enum Kind {
    Char { max: usize, trim: bool },
    Url { max: usize },
    Float,
    Decimal,
    Bool,
    Choice(&'static [&'static str]),
}

#[derive(Clone, Copy)]
struct Spec {
    name: &'static str,
    kind: Kind,
    null: bool,
    blank: bool,
    required: bool,
}

const fn spec(name: &'static str, kind: Kind, null: bool) -> Spec {
    let blank = matches!(kind, Kind::Char { .. } | Kind::Url { .. });
    Spec { name, kind, null, blank, required: false }
}

/// The writable serializer fields, in `Meta.fields` order (which is the order of DRF's errors).
const TASK_FIELDS: [Spec; 13] = [
    spec("mpc_name", Kind::Char { max: 300, trim: true }, true),
    spec("ra", Kind::Float, true),
    spec("dec", Kind::Float, true),
    spec("mjd_min", Kind::Float, true),
    spec("mjd_max", Kind::Float, true),
    spec("radec_epoch_year", Kind::Decimal, true),
    spec("propermotion_ra", Kind::Float, true),
    spec("propermotion_dec", Kind::Float, true),
    spec("use_reduced", Kind::Bool, false),
    spec("comment", Kind::Char { max: 300, trim: true }, true),
    spec("send_email", Kind::Bool, false),
    spec("callback_url", Kind::Url { max: 500 }, true),
    spec("request_type", Kind::Choice(&["FP", "IMGZIP", "SSOSTACK"]), false),
];

/// `Field.get_value` plus the empty-value rules; `None` means "skip this field".
fn get_value(row: &Row, s: &Spec, partial: bool) -> Option<Raw> {
    match row.get(s.name) {
        None if row.html && !partial && matches!(s.kind, Kind::Bool) => Some(Raw::Json(Value::Bool(false))),
        None => None,
        Some(Raw::Text(t)) if row.html && t.is_empty() => {
            if s.null {
                Some(if s.blank { Raw::Text(String::new()) } else { Raw::Json(Value::Null) })
            } else if !s.required {
                None
            } else {
                Some(Raw::Text(String::new()))
            }
        }
        Some(v) => Some(v.clone()),
    }
}

const TRUE_VALUES: [&str; 12] = ["t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On"];
const TRUE_MORE: [&str; 2] = ["ON", "1"];
const FALSE_VALUES: [&str; 14] =
    ["f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "0"];

/// `Field.run_validation` for one DRF field type.
fn run_field(s: &Spec, raw: &Raw) -> Result<Val, String> {
    if matches!(raw, Raw::Json(Value::Null)) {
        return if s.null { Ok(Val::Null) } else { Err("This field may not be null.".into()) };
    }
    match s.kind {
        Kind::Char { max, trim } => char_field(raw, s.blank, trim, max),
        Kind::Url { max } => {
            let v = char_field(raw, s.blank, true, max)?;
            match &v {
                Val::S(u) if !u.is_empty() && !valid_url(u) => Err("Enter a valid URL.".into()),
                _ => Ok(v),
            }
        }
        Kind::Float => match raw {
            Raw::Json(Value::Number(n)) => Ok(Val::F(n.as_f64().unwrap_or(f64::NAN))),
            Raw::Json(Value::Bool(b)) => Ok(Val::F(if *b { 1.0 } else { 0.0 })),
            Raw::Text(t) | Raw::Json(Value::String(t)) => {
                if t.chars().count() > 1000 {
                    return Err("String value too large.".into());
                }
                py_float(t).map(Val::F).ok_or_else(|| "A valid number is required.".into())
            }
            _ => Err("A valid number is required.".into()),
        },
        Kind::Decimal => {
            let text = raw.py_str().unwrap_or_default();
            let text = text.trim();
            if text.chars().count() > 1000 {
                return Err("String value too large.".into());
            }
            decimal_7_1(text).map(Val::S)
        }
        Kind::Bool => {
            let ok = match raw {
                Raw::Json(Value::Bool(b)) => Some(*b),
                Raw::Json(Value::Number(n)) => match n.as_f64() {
                    Some(1.0) => Some(true),
                    Some(0.0) => Some(false),
                    _ => None,
                },
                Raw::Text(t) | Raw::Json(Value::String(t)) => {
                    if TRUE_VALUES.contains(&t.as_str()) || TRUE_MORE.contains(&t.as_str()) {
                        Some(true)
                    } else if FALSE_VALUES.contains(&t.as_str()) {
                        Some(false)
                    } else {
                        None
                    }
                }
                _ => None,
            };
            ok.map(Val::B).ok_or_else(|| "Must be a valid boolean.".into())
        }
        Kind::Choice(choices) => {
            let text = raw.py_str().unwrap_or_default();
            if choices.contains(&text.as_str()) {
                Ok(Val::S(text))
            } else {
                Err(format!("\"{text}\" is not a valid choice."))
            }
        }
    }
}

fn char_field(raw: &Raw, allow_blank: bool, trim: bool, max: usize) -> Result<Val, String> {
    let text = match raw {
        Raw::Text(t) | Raw::Json(Value::String(t)) => Some(t.clone()),
        Raw::Json(Value::Number(n)) => Some(py_number(n)),
        _ => None,
    };
    if let Some(t) = &text {
        if t.is_empty() || (trim && t.trim().is_empty()) {
            return if allow_blank { Ok(Val::S(String::new())) } else { Err("This field may not be blank.".into()) };
        }
    }
    let Some(t) = text else { return Err("Not a valid string.".into()) };
    let v = if trim { t.trim().to_string() } else { t };
    if v.chars().count() > max {
        return Err(format!("Ensure this field has no more than {max} characters."));
    }
    Ok(Val::S(v))
}

/// Django's URLValidator, reduced to what matters here: a scheme it accepts and a host.
fn valid_url(u: &str) -> bool {
    match url::Url::parse(u) {
        Ok(p) => matches!(p.scheme(), "http" | "https" | "ftp" | "ftps") && p.host_str().is_some_and(|h| !h.is_empty()),
        Err(_) => false,
    }
}

/// DRF `DecimalField(max_digits=7, decimal_places=1)`: Python `Decimal` parsing, precision
/// checks on the digit tuple (trailing zeros count), output quantized to one decimal.
fn decimal_7_1(text: &str) -> Result<String, String> {
    let invalid = || "A valid number is required.".to_string();
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().map_err(|_| invalid())?),
        None => (body, 0),
    };
    let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
    let all_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit() || c == b'_');
    if (int_part.is_empty() && frac_part.is_empty()) || !all_digits(int_part) || !all_digits(frac_part) {
        return Err(invalid());
    }
    let (int_part, frac_part) = (int_part.replace('_', ""), frac_part.replace('_', ""));
    let coeff = format!("{int_part}{frac_part}");
    let coeff = coeff.trim_start_matches('0');
    let coeff = if coeff.is_empty() { "0" } else { coeff };
    let exponent = exp - frac_part.len() as i64;
    let n = coeff.len() as i64;
    let (total, whole, places) = if exponent >= 0 {
        (n + exponent, n + exponent, 0)
    } else if n > -exponent {
        (n, n + exponent, -exponent)
    } else {
        (-exponent, 0, -exponent)
    };
    if total > 7 {
        return Err("Ensure that there are no more than 7 digits in total.".into());
    }
    if places > 1 {
        return Err("Ensure that there are no more than 1 decimal places.".into());
    }
    if whole > 6 {
        return Err("Ensure that there are no more than 6 digits before the decimal point.".into());
    }
    // At most 7 significant digits and one decimal: an exact integer count of tenths.
    let tenths: i64 = coeff.parse::<i64>().map_err(|_| invalid())? * 10i64.pow((exponent + 1) as u32);
    let sign = if neg { "-" } else { "" };
    Ok(format!("{sign}{}.{}", tenths / 10, tenths % 10))
}

/// What a validated submission sets; `None` = the field was not in the submission.
#[derive(Clone, Debug, Default)]
pub(crate) struct Attrs(Vec<(&'static str, Val)>);

impl Attrs {
    fn get(&self, name: &str) -> Option<&Val> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Applies the submitted values to stored fields (ModelSerializer create/update).
    pub fn apply(&self, t: &mut TaskFields) {
        let s = |v: &Val| match v {
            Val::S(s) => Some(s.clone()),
            _ => None,
        };
        let f = |v: &Val| match v {
            Val::F(x) => Some(*x),
            _ => None,
        };
        for (k, v) in &self.0 {
            match *k {
                "mpc_name" => t.mpc_name = s(v),
                "ra" => t.ra = f(v),
                "dec" => t.dec = f(v),
                "mjd_min" => t.mjd_min = f(v),
                "mjd_max" => t.mjd_max = f(v),
                "radec_epoch_year" => t.radec_epoch_year = s(v),
                "propermotion_ra" => t.propermotion_ra = f(v),
                "propermotion_dec" => t.propermotion_dec = f(v),
                "use_reduced" => t.use_reduced = matches!(v, Val::B(true)),
                "send_email" => t.send_email = matches!(v, Val::B(true)),
                "comment" => t.comment = s(v),
                "callback_url" => t.callback_url = s(v),
                "request_type" => t.request_type = s(v).unwrap_or_else(|| "FP".into()),
                _ => {}
            }
        }
    }
}

/// Characters `MPC_NAME_WHITESPACE` strips from an MPC name.
const MPC_WS: [char; 7] = [' ', '\t', '\n', '\r', '\u{0b}', '\u{0c}', '\u{a0}'];

pub(crate) fn check_mpc_name(name: &str, prefix: &str) -> Result<String, String> {
    let v = name.trim_matches(&MPC_WS[..]).to_string();
    if v.contains(['\'', '"', ';']) {
        return Err(format!("{prefix}Invalid mpc_name. May not contain quotes or semicolons"));
    }
    Ok(v)
}

/// The serializer's `validate_<field>` hooks: errors raised as `{field: msg}`, which DRF then
/// stores under the field name, giving `{"ra": {"ra": "..."}}`.
fn field_hook(name: &str, v: Val) -> Result<Val, String> {
    let finite = |msg: &str| match v {
        Val::F(x) if !x.is_finite() => Err(msg.to_string()),
        _ => Ok(v.clone()),
    };
    match name {
        "mpc_name" => match &v {
            Val::S(s) => check_mpc_name(s, "").map(Val::S),
            _ => Ok(v),
        },
        "ra" => finite("ra must be a finite floating-point number."),
        "dec" => finite("dec must be a finite floating-point number."),
        "propermotion_ra" => finite("propermotion_ra must be a finite floating-point number."),
        "propermotion_dec" => finite("propermotion_dec must be a finite floating-point number."),
        "mjd_min" => finite("mjd_min must be either None or a finite floating-point number."),
        "mjd_max" => finite("mjd_max must be either None or a finite floating-point number."),
        // The real check (webhooks.validate_callback_url) also refuses private addresses and
        // resolves the name; only the scheme rule is reproduced, with an invented message.
        "callback_url" => match &v {
            Val::S(s) if s.is_empty() => Ok(Val::Null),
            Val::S(s) if !s.starts_with("https://") => Err("callback_url must be an https:// URL.".into()),
            _ => Ok(v),
        },
        _ => Ok(v),
    }
}

/// `serializer.is_valid()` for one row. `instance` is the stored task for an update; `partial`
/// is PATCH.
pub(crate) fn validate_row(
    row: &Row,
    instance: Option<&TaskFields>,
    partial: bool,
    now: SystemTime,
) -> Result<Attrs, Errors> {
    if let Some(kind) = row.not_a_dict {
        return Err(listed("non_field_errors", format!("Invalid data. Expected a dictionary, but got {kind}.")));
    }
    let mut attrs = Attrs::default();
    let mut errors: Errors = Vec::new();
    for s in &TASK_FIELDS {
        let Some(raw) = get_value(row, s, partial) else { continue };
        match run_field(s, &raw) {
            Ok(v) => match field_hook(s.name, v) {
                Ok(v) => attrs.0.push((s.name, v)),
                Err(msg) => errors.push((s.name.to_string(), Err::Map(one(s.name, msg)))),
            },
            Err(msg) => errors.push((s.name.to_string(), Err::List(vec![msg]))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    validate_attrs(&attrs, instance, partial, now)?;
    Ok(attrs)
}

/// DRF's `AuthTokenSerializer` fields: both required, not blank; the password is not trimmed.
pub(crate) fn credentials(row: &Row) -> Result<(String, String), Errors> {
    if let Some(kind) = row.not_a_dict {
        return Err(listed("non_field_errors", format!("Invalid data. Expected a dictionary, but got {kind}.")));
    }
    let field = |name, trim| Spec {
        name,
        kind: Kind::Char { max: usize::MAX, trim },
        null: false,
        blank: false,
        required: true,
    };
    let mut values = Vec::new();
    let mut errors: Errors = Vec::new();
    for s in [field("username", true), field("password", false)] {
        let got = match get_value(row, &s, false) {
            None => Err("This field is required.".to_string()),
            Some(raw) => run_field(&s, &raw),
        };
        match got {
            Ok(Val::S(v)) => values.push(v),
            Ok(_) => errors.push((s.name.to_string(), Err::List(vec!["Not a valid string.".into()]))),
            Err(msg) => errors.push((s.name.to_string(), Err::List(vec![msg]))),
        }
    }
    match (errors.is_empty(), values.as_slice()) {
        (true, [user, password]) => Ok((user.clone(), password.clone())),
        _ => Err(errors),
    }
}

/// `ForcePhotTaskSerializer.validate()`.
fn validate_attrs(attrs: &Attrs, instance: Option<&TaskFields>, partial: bool, now: SystemTime) -> Result<(), Errors> {
    // submitted(): the submitted value, else the stored one for a PATCH, else nothing.
    let stored = |name: &str| -> Option<Val> {
        let t = instance.filter(|_| partial)?;
        let f = |x: Option<f64>| x.map_or(Val::Null, Val::F);
        let s = |x: &Option<String>| x.clone().map_or(Val::Null, Val::S);
        Some(match name {
            "mpc_name" => s(&t.mpc_name),
            "ra" => f(t.ra),
            "dec" => f(t.dec),
            "mjd_min" => f(t.mjd_min),
            "mjd_max" => f(t.mjd_max),
            "request_type" => Val::S(t.request_type.clone()),
            _ => Val::Null,
        })
    };
    let submitted = |name: &str| attrs.get(name).cloned().or_else(|| stored(name));
    let missing = |v: &Option<Val>| matches!(v, None | Some(Val::Null)) || matches!(v, Some(Val::S(s)) if s.is_empty());
    let request_type = submitted("request_type");
    let is_type = |t: &str| matches!(&request_type, Some(Val::S(s)) if s == t);

    let becomes_stack = is_type("SSOSTACK") && instance.is_none_or(|t| t.request_type != "SSOSTACK");
    if becomes_stack {
        // Stack requests are a trial for staff and listed test accounts; the emulator has neither.
        return Err(listed("non_field_errors", "Image stack requests are not enabled for this account."));
    }
    if is_type("IMGZIP") {
        let msg = if instance.is_none() {
            "IMGZIP tasks cannot be created here. Ask for the images of a finished forced photometry task by \
             POSTing to /queue/<id>/requestimages/."
        } else {
            "An IMGZIP task must keep its parent_task_id set to an FP task."
        };
        return Err(listed("non_field_errors", msg));
    }
    let mpc_name = submitted("mpc_name");
    let ra_missing = missing(&submitted("ra"));
    let dec_missing = missing(&submitted("dec"));
    if !missing(&mpc_name) {
        if !ra_missing || !dec_missing {
            return Err(listed("mpc_name", "mpc_name was given but RA and Dec were not empty."));
        }
    } else if ra_missing && dec_missing {
        return Err(listed("non_field_errors", "Either an mpc_name or (ra, dec) must be specified."));
    } else if dec_missing {
        return Err(listed("dec", "ra was set but dec is missing."));
    } else if ra_missing {
        return Err(listed("ra", "dec was set but ra is missing."));
    }
    if let Some(Val::F(max)) = submitted("mjd_max") {
        if max <= 0.0 {
            return Err(listed("mjd_max", "mjd_max must be a positive MJD."));
        }
        let min = match submitted("mjd_min") {
            Some(v) => v,
            None => Val::F(mjd_min_default(now)),
        };
        if let Val::F(min) = min {
            if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
                let applied = py_repr(min);
                return Err(listed(
                    "mjd_max",
                    format!("mjd_max must be greater than mjd_min ({applied} was applied)."),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Row {
        Row {
            html: true,
            fields: pairs.iter().map(|(k, v)| (k.to_string(), Raw::Text(v.to_string()))).collect(),
            not_a_dict: None,
        }
    }

    fn json(v: Value) -> Row {
        let fields = v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), Raw::Json(v.clone()))).collect();
        Row { html: false, fields, not_a_dict: None }
    }

    fn errs(r: Result<Attrs, Errors>) -> String {
        errors_json(&r.unwrap_err()).render()
    }

    #[test]
    fn decimal_field() {
        assert_eq!(decimal_7_1("2000").unwrap(), "2000.0");
        assert_eq!(decimal_7_1("2000.5").unwrap(), "2000.5");
        assert_eq!(decimal_7_1("2e3").unwrap(), "2000.0");
        assert_eq!(decimal_7_1("-0.5").unwrap(), "-0.5");
        assert!(decimal_7_1("2000.50").unwrap_err().contains("1 decimal places"));
        assert!(decimal_7_1("1234567").unwrap_err().contains("6 digits before"));
        assert!(decimal_7_1("12345678").unwrap_err().contains("7 digits in total"));
        assert!(decimal_7_1("NaN").is_err());
        assert!(decimal_7_1("abc").is_err());
    }

    #[test]
    fn drf_error_shapes() {
        let now = SystemTime::now();
        assert_eq!(
            errs(validate_row(&form(&[("ra", "nan"), ("dec", "1")]), None, false, now)),
            r#"{"ra":{"ra":"ra must be a finite floating-point number."}}"#
        );
        assert_eq!(
            errs(validate_row(&form(&[("ra", "abc"), ("dec", "x")]), None, false, now)),
            r#"{"ra":["A valid number is required."],"dec":["A valid number is required."]}"#
        );
        assert_eq!(
            errs(validate_row(&form(&[("dec", "1")]), None, false, now)),
            r#"{"ra":["dec was set but ra is missing."]}"#
        );
        assert_eq!(
            errs(validate_row(&form(&[]), None, false, now)),
            r#"{"non_field_errors":["Either an mpc_name or (ra, dec) must be specified."]}"#
        );
        assert_eq!(
            errs(validate_row(
                &form(&[("ra", "1"), ("dec", "2"), ("mjd_min", "59000"), ("mjd_max", "58000")]),
                None,
                false,
                now
            )),
            r#"{"mjd_max":["mjd_max must be greater than mjd_min (59000.0 was applied)."]}"#
        );
        assert_eq!(
            errs(validate_row(&form(&[("ra", "1"), ("dec", "2"), ("use_reduced", "maybe")]), None, false, now)),
            r#"{"use_reduced":["Must be a valid boolean."]}"#
        );
        assert_eq!(
            errs(validate_row(&json(serde_json::json!({"ra": 1, "dec": 2, "mjd_max": 0})), None, false, now)),
            r#"{"mjd_max":["mjd_max must be a positive MJD."]}"#
        );
        let long = "x".repeat(301);
        assert_eq!(
            errs(validate_row(&form(&[("ra", "1"), ("dec", "2"), ("comment", &long)]), None, false, now)),
            r#"{"comment":["Ensure this field has no more than 300 characters."]}"#
        );
    }

    #[test]
    fn form_and_json_defaults_differ_for_booleans() {
        let now = SystemTime::now();
        let mut t = TaskFields::defaults(now);
        validate_row(&form(&[("ra", "1"), ("dec", "2")]), None, false, now).unwrap().apply(&mut t);
        assert!(!t.send_email, "an omitted form checkbox is false");
        let mut t = TaskFields::defaults(now);
        validate_row(&json(serde_json::json!({"ra": 1, "dec": 2})), None, false, now).unwrap().apply(&mut t);
        assert!(t.send_email, "an omitted JSON key keeps the model default");
        assert_eq!(t.ra, Some(1.0));
    }
}
