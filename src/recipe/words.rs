//! serde's wording of a wrong-typed recipe value (`invalid type: string "lots", expected i64`) in
//! words a recipe author uses (`expected a whole number, found "lots"`). Every type error of every
//! recipe key passes through [`in_words`], so no key needs its own message.

/// Rewrite serde's `invalid type: …` / `invalid value: …` / `invalid length …` messages in plain
/// words; any other message comes back unchanged.
pub fn in_words(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid length ") {
        if let Some((_, expected)) = rest.split_once(", expected ") {
            return format!("expected {}", expected_words(expected, &Found::Other(String::new())));
        }
        return message.to_string();
    }
    let Some(rest) = message.strip_prefix("invalid type: ").or_else(|| message.strip_prefix("invalid value: ")) else {
        return message.to_string();
    };
    let Some(at) = rest.rfind(", expected ") else {
        return message.to_string();
    };
    let found = Found::parse(&rest[..at]);
    let expected = &rest[at + ", expected ".len()..];
    format!("expected {}, found {}", expected_words(expected, &found), found.words())
}

/// What serde says it found (its `Unexpected`, as displayed).
#[derive(Debug, PartialEq)]
enum Found {
    /// A string, with serde's (Rust-escaped) quotes kept, and its text.
    Text {
        quoted: String,
        text: String,
    },
    /// An integer, as written.
    Integer(String),
    /// Any other scalar (float, boolean), as written.
    Scalar(String),
    Sequence,
    Mapping,
    Empty,
    Other(String),
}

impl Found {
    fn parse(s: &str) -> Found {
        // `integer `5``, `integer `99999999999999999999` as u128`, `floating point `1.5``.
        let ticked = |prefix: &str| -> Option<String> {
            let inner = s.strip_prefix(prefix)?.strip_prefix('`')?;
            Some(inner.split_once('`').map_or(inner, |(v, _)| v).to_string())
        };
        if let Some(quoted) = s.strip_prefix("string ") {
            let text = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(quoted);
            return Found::Text { quoted: quoted.to_string(), text: text.to_string() };
        }
        if let Some(v) = ticked("integer ") {
            return Found::Integer(v);
        }
        if let Some(v) = ticked("floating point ").or_else(|| ticked("boolean ")) {
            return Found::Scalar(v);
        }
        match s {
            "sequence" => Found::Sequence,
            "map" => Found::Mapping,
            "unit value" | "null" | "Option value" => Found::Empty,
            other => Found::Other(other.to_string()),
        }
    }

    fn words(&self) -> String {
        match self {
            Found::Text { quoted, .. } => quoted.clone(),
            Found::Integer(v) | Found::Scalar(v) => v.clone(),
            Found::Sequence => "a list".into(),
            Found::Mapping => "a mapping".into(),
            Found::Empty => "an empty value".into(),
            Found::Other(o) => o.clone(),
        }
    }
}

/// serde's `expected …` part (a Rust type name or a visitor's phrase) in words.
fn expected_words(expected: &str, found: &Found) -> String {
    if let Some((signed, bits)) = integer_type(expected) {
        // An integer of the wrong size or sign: say the range.
        if let Found::Integer(v) = found {
            let negative = v.starts_with('-');
            return match (signed, negative) {
                (false, true) => "a whole number, 0 or more".into(),
                (false, false) => format!("a whole number up to {}", unsigned_max(bits)),
                (true, _) => {
                    let max = signed_max(bits);
                    format!("a whole number from -{} to {max}", max + 1)
                }
            };
        }
        return "a whole number".into();
    }
    match expected {
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" | "a character" => "text".into(),
        "a map" => "a mapping of keys".into(),
        "map with a single key" => "a mapping with exactly one key".into(),
        // serde_yaml's phrase for a name-valued key (an enum of names) given a list or mapping.
        "a YAML tag starting with '!'" => "a single name".into(),
        "a sequence" => match found {
            Found::Text { text, .. } if list_example_fits(text) => format!("a list such as [{text}]"),
            Found::Integer(v) | Found::Scalar(v) => format!("a list such as [{v}]"),
            _ => "a list".into(),
        },
        e if e.starts_with("struct ") || e.starts_with("enum ") => "a mapping of keys".into(),
        e => match e.strip_prefix("an array of length ").or_else(|| e.strip_prefix("a tuple of size ")) {
            Some(n) => format!("a list of {n} values"),
            None => e.to_string(),
        },
    }
}

/// `(signed, bits)` for Rust's integer type names.
fn integer_type(name: &str) -> Option<(bool, u32)> {
    let signed = match name.as_bytes().first()? {
        b'i' => true,
        b'u' => false,
        _ => return None,
    };
    let bits = match &name[1..] {
        "size" => usize::BITS,
        digits => digits.parse().ok().filter(|b| matches!(b, 8 | 16 | 32 | 64 | 128))?,
    };
    Some((signed, bits))
}

fn unsigned_max(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

fn signed_max(bits: u32) -> u128 {
    (1u128 << (bits.min(128) - 1)) - 1
}

/// Whether `[text]` reads as the flow list the author meant: a plain word or a comma-separated
/// run of them, nothing YAML would read differently.
fn list_example_fits(text: &str) -> bool {
    !text.trim().is_empty()
        && text.len() <= 40
        && !text.chars().any(|c| matches!(c, '[' | ']' | '{' | '}' | ':' | '#' | '"' | '\'' | '\\' | '\n'))
}

#[cfg(test)]
mod tests {
    use super::in_words;

    #[test]
    fn type_names_become_words() {
        let cases = [
            (r#"invalid type: string "lots", expected i64"#, r#"expected a whole number, found "lots""#),
            (r#"invalid type: string "lots", expected u64"#, r#"expected a whole number, found "lots""#),
            ("invalid type: floating point `1.5`, expected i64", "expected a whole number, found 1.5"),
            ("invalid type: integer `-1`, expected u64", "expected a whole number, 0 or more, found -1"),
            (
                "invalid type: integer `99999999999999999999` as u128, expected i64",
                "expected a whole number from -9223372036854775808 to 9223372036854775807, found 99999999999999999999",
            ),
            (
                "invalid value: integer `5000000000`, expected u32",
                "expected a whole number up to 4294967295, found 5000000000",
            ),
            (r#"invalid type: string "soon", expected f64"#, r#"expected a number, found "soon""#),
            ("invalid type: boolean `true`, expected f64", "expected a number, found true"),
            (r#"invalid type: string "g", expected a sequence"#, r#"expected a list such as [g], found "g""#),
            (r#"invalid type: string "g, r", expected a sequence"#, r#"expected a list such as [g, r], found "g, r""#),
            (r#"invalid type: string "a: b", expected a sequence"#, r#"expected a list, found "a: b""#),
            ("invalid type: integer `5`, expected a sequence", "expected a list such as [5], found 5"),
            ("invalid type: map, expected a sequence", "expected a list, found a mapping"),
            ("invalid type: sequence, expected a map", "expected a mapping of keys, found a list"),
            ("invalid type: integer `5`, expected struct ShardFile", "expected a mapping of keys, found 5"),
            ("invalid type: sequence, expected enum SourceFile", "expected a mapping of keys, found a list"),
            (r#"invalid type: string "maybe", expected a boolean"#, r#"expected true or false, found "maybe""#),
            ("invalid type: integer `1`, expected a boolean", "expected true or false, found 1"),
            ("invalid type: sequence, expected a string", "expected text, found a list"),
            ("invalid type: unit value, expected a string", "expected text, found an empty value"),
            (
                "invalid value: map, expected map with a single key",
                "expected a mapping with exactly one key, found a mapping",
            ),
            ("invalid type: sequence, expected a YAML tag starting with '!'", "expected a single name, found a list"),
            ("invalid type: integer `1`, expected an array of length 2", "expected a list of 2 values, found 1"),
            ("invalid length 1, expected an array of length 2", "expected a list of 2 values"),
        ];
        for (serde, words) in cases {
            assert_eq!(in_words(serde), words, "{serde}");
        }
    }

    #[test]
    fn other_messages_pass_unchanged() {
        for m in [
            "unknown field `x`, expected one of `a`, `b`",
            "missing field `version`",
            "unknown variant `x`, expected `all` or `faq-cuts`",
            "expected a rate such as `4/s`, found the bare number 5",
            "invalid type: something odd",
        ] {
            assert_eq!(in_words(m), m);
        }
    }
}
