//! Recipes: the YAML file a user writes (`raw`), checked and resolved once into a `Recipe` that
//! commands use. Every error names the file, line, column and key path, says what was expected and,
//! where the fix is known, gives a hint.

pub mod locate;
pub mod raw;
mod resolve;
pub mod targets;
mod words;

pub use crate::units::rate;

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use resolve::*;

use locate::{display_path, parse_path, PathSeg, YamlLocator};

/// A recipe (or targets file) error pointing at the offending place (boxed: errors travel far).
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeError(Box<RecipeErrorDetail>);

/// What a `RecipeError` says.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeErrorDetail {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Key path such as `shard.max_bytes`; empty for the whole document.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl From<RecipeErrorDetail> for RecipeError {
    fn from(d: RecipeErrorDetail) -> Self {
        RecipeError(Box::new(d))
    }
}

impl std::ops::Deref for RecipeError {
    type Target = RecipeErrorDetail;
    fn deref(&self) -> &RecipeErrorDetail {
        &self.0
    }
}

impl std::ops::DerefMut for RecipeError {
    fn deref_mut(&mut self) -> &mut RecipeErrorDetail {
        &mut self.0
    }
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for RecipeError {}

/// The recipe text with what is needed to point errors at it.
pub(crate) struct RecipeSource<'a> {
    pub file: &'a Path,
    pub locator: YamlLocator,
}

impl RecipeSource<'_> {
    /// An error about `key` (dotted path), located in the recipe text.
    pub fn error(&self, key: &str, message: impl Into<String>) -> RecipeError {
        let loc = self.locator.best(&parse_path(key));
        RecipeErrorDetail {
            file: self.file.to_path_buf(),
            line: loc.map(|l| l.line),
            column: loc.map(|l| l.column),
            key: key.to_string(),
            message: message.into(),
            hint: None,
        }
        .into()
    }

    /// A section owner's `KeyError`, located in the recipe text.
    pub fn upgrade(&self, e: crate::spec::KeyError) -> RecipeError {
        let mut out = self.error(&e.key, e.message);
        out.hint = e.hint;
        out
    }

    pub fn error_hint(&self, key: &str, message: impl Into<String>, hint: impl Into<String>) -> RecipeError {
        let mut e = self.error(key, message);
        e.hint = Some(hint.into());
        e
    }

    /// `error_hint` about a whole section, pointing at its key rather than its content.
    pub fn section_error(&self, key: &str, message: impl Into<String>, hint: impl Into<String>) -> RecipeError {
        let mut e = self.error_hint(key, message, hint);
        if let Some(loc) = self.locator.key(&parse_path(key)) {
            e.line = Some(loc.line);
            e.column = Some(loc.column);
        }
        e
    }
}

/// Read, parse and resolve a recipe file, refusing politeness above an archive's stated limits.
pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
    load_with(path, false)
}

/// `load`, with `exceed_archive_limits` (the `--exceed-archive-limits` flag) admitting politeness
/// above an archive's stated limits (a mirror, or the archive's own permission).
pub fn load_with(path: &Path, exceed_archive_limits: bool) -> Result<Recipe, RecipeError> {
    let whole = |message: String, hint: Option<String>| -> RecipeError {
        RecipeErrorDetail { file: path.to_path_buf(), line: None, column: None, key: String::new(), message, hint }
            .into()
    };
    let bytes = fs_err::read(path).map_err(|e| {
        whole(
            format!("cannot read the recipe: {}", e.source_io_kind(path)),
            Some("check the path; recipes are YAML files such as recipes/quickstart.yaml".into()),
        )
    })?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| whole("the recipe is not UTF-8 text".into(), None))?;
    let src = RecipeSource { file: path, locator: YamlLocator::new(&text) };
    let file = parse(&text, &src)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    resolve::resolve(file, path, sha256, &src, exceed_archive_limits)
}

trait IoKind {
    fn source_io_kind(&self, path: &Path) -> String;
}

impl IoKind for std::io::Error {
    fn source_io_kind(&self, path: &Path) -> String {
        match self.kind() {
            std::io::ErrorKind::NotFound => "no such file".into(),
            std::io::ErrorKind::PermissionDenied => "permission denied".into(),
            _ => crate::fsx::os_reason(self, path),
        }
    }
}

/// YAML -> `RecipeFile`, with the key path and position of the first problem: a YAML syntax
/// error first (serde reads the document lazily and would report a key it met before the broken
/// text), then a key written twice, then whatever does not fit the recipe's shape.
fn parse(text: &str, src: &RecipeSource) -> Result<raw::RecipeFile, RecipeError> {
    check_syntax(text, src)?;
    check_duplicates(src)?;
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let (message, loc) = split_location(&inner);
        let message = words::in_words(&message);
        let key = normalise_path(&path);
        let mut e = src.error(&key, message.clone());
        if let Some((line, column)) = loc {
            e.line = Some(line);
            e.column = Some(column);
        }
        e.hint = hint_for(&message, &key);
        e
    })
}

/// A recipe that is not well-formed YAML: serde_yaml's (libyaml's) problem, at its line and column.
fn check_syntax(text: &str, src: &RecipeSource) -> Result<(), RecipeError> {
    let Err(err) = serde_yaml::from_str::<serde::de::IgnoredAny>(text) else {
        return Ok(());
    };
    let whole = err.to_string();
    let detail = |message: String, line: Option<usize>, column: Option<usize>, hint: &str| -> RecipeError {
        RecipeErrorDetail {
            file: src.file.to_path_buf(),
            line,
            column,
            key: String::new(),
            message,
            hint: Some(hint.to_string()),
        }
        .into()
    };
    if whole.contains("more than one document") {
        return Err(detail(
            "a recipe is one YAML document, but this file holds more than one".into(),
            None,
            None,
            "a line `---` starts a new document: remove it (and what follows, if it belongs elsewhere)",
        ));
    }
    let Some(loc) = err.location() else {
        return Err(detail(format!("YAML syntax error: {whole}"), None, None, SYNTAX_HINT));
    };
    // The position goes in front; drop it from the text (a second, context position stays).
    let message = whole.replacen(&format!(" at line {} column {}", loc.line(), loc.column()), "", 1);
    Err(detail(format!("YAML syntax error: {message}"), Some(loc.line()), Some(loc.column()), SYNTAX_HINT))
}

const SYNTAX_HINT: &str = "write one `key: value` per line, nested keys indented with spaces; put quotes around \
     a value that holds `: ` or ` #`, or starts with [ { * & ! | > or a quote";

/// A key written twice in one mapping (YAML wants keys unique; serde would silently keep one, or
/// report it without a position).
fn check_duplicates(src: &RecipeSource) -> Result<(), RecipeError> {
    let Some(dup) = src.locator.duplicates().first() else {
        return Ok(());
    };
    let name = match dup.path.last() {
        Some(PathSeg::Key(k)) => k.as_str(),
        _ => "",
    };
    Err(RecipeErrorDetail {
        file: src.file.to_path_buf(),
        line: Some(dup.again.line),
        column: Some(dup.again.column),
        key: display_path(&dup.path),
        message: format!("`{name}` is given a second time (first at line {})", dup.first.line),
        hint: Some(format!("a key may appear once in each mapping: keep one `{name}` and delete the other")),
    }
    .into())
}

/// serde_yaml's message without its trailing ` at line L column C`, and that position.
fn split_location(err: &serde_yaml::Error) -> (String, Option<(usize, usize)>) {
    let text = err.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    // serde_yaml puts its own `path.to.key: ` in front; we print the key path ourselves.
    let message = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => rest.to_string(),
        _ => message.to_string(),
    };
    let loc = err.location().map(|l| (l.line(), l.column()));
    (message, loc)
}

/// serde_path_to_error prints `?` for the root and `a.b[0]`; make it ours.
fn normalise_path(path: &str) -> String {
    if path == "." || path == "?" {
        return String::new();
    }
    display_path(
        &parse_path(path).into_iter().filter(|s| !matches!(s, PathSeg::Key(k) if k == "?")).collect::<Vec<_>>(),
    )
}

/// Hints for common parse errors: a misspelt key gets the closest known one.
fn hint_for(message: &str, key: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (unknown, rest) = rest.split_once('`')?;
        let candidates: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
        let best = candidates
            .iter()
            .map(|c| (strsim::jaro_winkler(unknown, c), *c))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        return Some(match best {
            Some((_, c)) => format!("did you mean `{c}`?"),
            None => format!("the keys allowed here are: {}", candidates.join(", ")),
        });
    }
    if message.starts_with("unknown variant") && (key == "source" || key.starts_with("source.")) {
        return Some("source takes exactly one of: ps1-cutouts, atlas-fp, atlas-var, local".into());
    }
    if message.contains("missing field") {
        return Some("see the recipe reference in the README for the required keys".into());
    }
    None
}

#[cfg(test)]
mod tests;
