//! Sample keys: the WebDataset key rules. A key holds only `[A-Za-z0-9_-]`, never starts with `.` or
//! `_`, and with its longest field name fits a 100-byte ustar member name.

use std::collections::HashMap;

/// Longest member name (`<key>.<field>`) a plain ustar header holds without a prefix field.
pub const MAX_MEMBER_NAME: usize = 100;

/// Map an original id to a key: every character outside `[A-Za-z0-9_-]` becomes `_`, then leading
/// `_` are dropped (dots and underscores may not start a key). Returns `None` when nothing is left.
pub fn sanitize_key(id: &str) -> Option<String> {
    let mapped: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let trimmed = mapped.trim_start_matches('_');
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Why a key is not acceptable in a shard.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("key is empty".into());
    }
    if key.starts_with('.') || key.starts_with('_') {
        return Some(format!("key `{key}` starts with `{}`", &key[..1]));
    }
    if let Some(c) = key.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Some(format!("key `{key}` contains `{c}`"));
    }
    None
}

/// Field names are lower-case ASCII letters and digits, in one or more dot-separated parts
/// (`npy`, `g.fits`: WebDataset keeps everything after the key's first dot as the field).
pub fn field_problem(field: &str) -> Option<String> {
    let part_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !field.split('.').all(part_ok) {
        return Some(format!("field name `{field}` is not lower-case letters and digits (parts joined by dots)"));
    }
    None
}

/// Length of the longest of `fields` (0 for none): with the dot after the key, what a member name
/// `<key>.<field>` adds to the key. Sources pass the fields they can emit to `assign_keys`.
pub fn longest<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> usize {
    fields.into_iter().map(|f| f.as_ref().len()).max().unwrap_or(0)
}

/// Two ids that map to the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCollision {
    pub key: String,
    pub first: String,
    pub second: String,
}

/// An id as messages show it: control characters escaped, and cut after 60 characters with its
/// length (a 10,000-character id does not flood the terminal).
pub fn shown_id(id: &str) -> String {
    let escaped: String = id.escape_debug().collect();
    let n = id.chars().count();
    if escaped.chars().count() <= 60 {
        escaped
    } else {
        format!("{}… ({n} characters)", escaped.chars().take(60).collect::<String>())
    }
}

/// Build keys for `ids` (in order), failing on the first pair of ids that map to one key, on an id
/// that maps to nothing, or on a key too long for `<key>.<longest field>`.
pub fn assign_keys<'a, I>(ids: I, longest_field: usize) -> Result<Vec<String>, String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut seen: HashMap<String, &'a str> = HashMap::new();
    let mut keys = Vec::new();
    for id in ids {
        let key = sanitize_key(id)
            .ok_or_else(|| format!("id `{}` has no character usable in a key ([A-Za-z0-9-])", shown_id(id)))?;
        if key.len() + 1 + longest_field > MAX_MEMBER_NAME {
            return Err(format!(
                "id `{}` gives a key of {} bytes; with a {longest_field}-byte field name it exceeds the {MAX_MEMBER_NAME}-byte member name limit",
                shown_id(id),
                key.len()
            ));
        }
        if let Some(first) = seen.insert(key.clone(), id) {
            return Err(format!(
                "ids `{}` and `{}` both map to key `{}`",
                shown_id(first),
                shown_id(id),
                shown_id(&key)
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising() {
        assert_eq!(sanitize_key("SN 2020abc").as_deref(), Some("SN_2020abc"));
        assert_eq!(sanitize_key("a.b+c/d").as_deref(), Some("a_b_c_d"));
        assert_eq!(sanitize_key(".hidden").as_deref(), Some("hidden"));
        assert_eq!(sanitize_key("__x").as_deref(), Some("x"));
        assert_eq!(sanitize_key("-x").as_deref(), Some("-x"));
        assert_eq!(sanitize_key("..."), None);
        assert_eq!(sanitize_key("é").as_deref(), None);
        for id in ["a b", "x.y.z", "Ω-1", "_q"] {
            let k = sanitize_key(id).unwrap();
            assert_eq!(key_problem(&k), None, "{id} -> {k}");
        }
    }

    #[test]
    fn collisions_are_errors() {
        let err = assign_keys(["a.b", "a_b"], 4).unwrap_err();
        assert!(err.contains("`a.b` and `a_b`"), "{err}");
        assert_eq!(assign_keys(["a", "b"], 4).unwrap(), vec!["a", "b"]);
        let long = "x".repeat(96);
        assert!(assign_keys([long.as_str()], 4).is_err());
        assert!(assign_keys([&long[..95]], 4).is_ok());
        let huge = "x".repeat(10_000);
        let err = assign_keys([huge.as_str()], 4).unwrap_err();
        assert!(
            err.starts_with(&format!("id `{}… (10000 characters)` gives a key of 10000 bytes", "x".repeat(60))),
            "{err}"
        );
        assert_eq!(assign_keys(["a\0b", "a/b"], 4).unwrap_err(), "ids `a\\0b` and `a/b` both map to key `a_b`");
    }
}
