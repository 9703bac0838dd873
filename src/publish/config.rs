//! The `publish` section as the recipe resolves it: which origin, under which namespace path
//! and version. The recipe embeds these types (recipe/resolve.rs checks the keys and builds them).

use std::path::PathBuf;

/// `publish`.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishConfig {
    pub origin: Origin,
    pub path: String,
    pub version: String,
    pub token_file: Option<PathBuf>,
}

/// Where `publish` writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A local origin folder (the export's StoragePrefix).
    Folder(PathBuf),
    /// An https:// (or, for loopback tests, http://) origin URL.
    Url(url::Url),
}

impl PublishConfig {
    /// The folder or URL a version is published under: `<origin>/<path>/<version>/`.
    pub fn destination(&self) -> String {
        match &self.origin {
            Origin::Folder(f) => format!("{}/{}/{}/", f.display(), self.path, self.version),
            Origin::Url(u) => format!("{}/{}/{}/", u.as_str().trim_end_matches('/'), self.path, self.version),
        }
    }
}
