//! What a recipe section's resolver says when a value is wrong: the key path, the message and a
//! hint. The section owner (a source, a stage) knows *what* is wrong; the recipe adds *where*
//! (file, line, column) when it upgrades a `KeyError` into a `RecipeError`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A wrong value at a recipe key path such as `source.ps1-cutouts.filters[1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl KeyError {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        KeyError { key: key.to_string(), message: message.into(), hint: None }
    }

    pub fn with_hint(key: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        KeyError { key: key.to_string(), message: message.into(), hint: Some(hint.into()) }
    }
}

/// Parse a URL for key `key`, accepting only the given schemes.
pub fn parse_url(text: &str, key: &str, schemes: &[&str]) -> Result<url::Url, KeyError> {
    let url = url::Url::parse(text)
        .map_err(|e| KeyError::new(key, format!("expected a URL ({}), found `{text}`: {e}", schemes.join(", "))))?;
    if !schemes.contains(&url.scheme()) {
        return Err(KeyError::new(key, format!("expected a {} URL, found `{text}`", schemes.join(" or "))));
    }
    Ok(url)
}

/// A source's `base_url`: the recipe's, else the archive's own; http(s) only.
pub fn base_url(given: Option<&str>, default: &str, key: &str) -> Result<url::Url, KeyError> {
    parse_url(given.unwrap_or(default), key, &["https", "http"])
}

/// A path from the recipe: `~/` expands to the home folder; relative paths are relative to `dir`.
pub fn relative_path(dir: &Path, text: &str) -> PathBuf {
    if let Some(rest) = text.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    dir.join(text)
}

/// A `sample: {fraction, seed}` section (targets and sources that subsample).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleFile {
    pub fraction: f64,
    pub seed: u64,
}
