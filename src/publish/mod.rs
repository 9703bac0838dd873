//! `publish`: local origin folders and HTTPS (Pelican/XRootD) origins behind one interface. The
//! recipe's `publish` section is parsed and checked now (see `recipe::PublishConfig`); uploading
//! arrives with the publishing issue, and until then `etd publish` says so and does nothing.

use crate::recipe::{Origin, PublishConfig};

/// The folder or URL a version is published under: `<origin>/<path>/<version>/`.
pub fn destination(cfg: &PublishConfig) -> String {
    match &cfg.origin {
        Origin::Folder(f) => format!("{}/{}/{}/", f.display(), cfg.path, cfg.version),
        Origin::Url(u) => format!("{}/{}/{}/", u.as_str().trim_end_matches('/'), cfg.path, cfg.version),
    }
}
