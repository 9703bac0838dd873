//! `request.data` as DRF's default parsers build it: JSON, url-encoded forms and multipart forms
//! (both forms become HTML input, with QueryDict semantics).

use super::validate::{Raw, Row};
use crate::http::Request;
use serde_json::Value;

/// A parse failure: (status, DRF `detail`).
pub(crate) type ParseFailure = (u16, String);

fn media_type(req: &Request) -> Option<String> {
    req.header("content-type").map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

pub(crate) fn parse(req: &Request) -> Result<Row, ParseFailure> {
    let html = |fields| Row { html: true, fields, not_a_dict: None };
    let mt = media_type(req);
    if req.body.is_empty() || mt.is_none() {
        // DRF: no body (or no Content-Type) gives an empty QueryDict for form types, else {}.
        let is_form = matches!(mt.as_deref(), Some("application/x-www-form-urlencoded" | "multipart/form-data"));
        return Ok(Row { html: is_form, fields: Vec::new(), not_a_dict: None });
    }
    match mt.as_deref().unwrap_or("") {
        "application/json" => {
            let v: Value = serde_json::from_slice(&req.body).map_err(|e| (400, format!("JSON parse error - {e}")))?;
            Ok(match v {
                Value::Object(map) => Row {
                    html: false,
                    fields: map.into_iter().map(|(k, v)| (k, Raw::Json(v))).collect(),
                    not_a_dict: None,
                },
                other => Row { html: false, fields: Vec::new(), not_a_dict: Some(python_type(&other)) },
            })
        }
        "application/x-www-form-urlencoded" => Ok(html(
            url::form_urlencoded::parse(&req.body).map(|(k, v)| (k.into_owned(), Raw::Text(v.into_owned()))).collect(),
        )),
        "multipart/form-data" => {
            let ctype = req.header("content-type").unwrap_or("");
            multipart(ctype, &req.body).map(html).map_err(|e| (400, format!("Multipart form parse error - {e}")))
        }
        _ => Err((415, format!("Unsupported media type \"{}\" in request.", req.header("content-type").unwrap_or("")))),
    }
}

fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The `name` parameter of a `Content-Disposition` value (quoted or bare).
fn disposition_name(value: &str) -> Option<String> {
    for part in value.split(';').skip(1) {
        let (k, v) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("name") {
            let v = v.trim();
            return Some(v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_string());
        }
    }
    None
}

/// Text fields (and file contents, as text) of a multipart body, in order.
fn multipart(ctype: &str, body: &[u8]) -> Result<Vec<(String, Raw)>, String> {
    let boundary = ctype
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| "Invalid boundary in multipart: None".to_string())?;
    let delim = format!("--{boundary}").into_bytes();
    let mut pos = find(body, &delim, 0).ok_or("Multipart boundary not found")? + delim.len();
    let mut out = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(out);
        }
        pos += if body[pos..].starts_with(b"\r\n") { 2 } else { return Err("Malformed multipart body".into()) };
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("Malformed multipart part")?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let mut sep = b"\r\n".to_vec();
        sep.extend_from_slice(&delim);
        let end = find(body, &sep, head_end + 4).ok_or("Unterminated multipart body")?;
        let name = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
            .and_then(|(_, v)| disposition_name(v))
            .ok_or("Multipart part without a name")?;
        out.push((name, Raw::Text(String::from_utf8_lossy(&body[head_end + 4..end]).into_owned())));
        pos = end + sep.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"ra\"\r\n\r\n10.5\r\n--XyZ\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\na b\r\n--XyZ--\r\n";
        let f = multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, "ra");
        assert!(matches!(&f[1].1, Raw::Text(t) if t == "a b"));
        assert!(multipart("multipart/form-data", body).is_err());
    }
}
