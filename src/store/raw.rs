//! Raw payloads: what a source fetched, validated before it is stored (a FITS file is whole, an
//! image decodes, the server did not send an HTML error page instead) and written atomically under
//! `<workdir>/raw/<source>/`, so a killed fetch never leaves a partial file under a final name.
//! Answers refused for good are kept as received under `<workdir>/rejected/<source>/`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What a payload should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Fits,
    Jpeg,
    Png,
    /// UTF-8 text (tables, light curves).
    Text,
}

impl PayloadKind {
    pub fn extension(self) -> &'static str {
        match self {
            PayloadKind::Fits => "fits",
            PayloadKind::Jpeg => "jpg",
            PayloadKind::Png => "png",
            PayloadKind::Text => "txt",
        }
    }
}

/// Why a payload is refused (the fetch counts it as a failed attempt).
pub fn validate(kind: PayloadKind, bytes: &[u8], content_type: Option<&str>) -> Result<(), String> {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if kind != PayloadKind::Text && (ct.starts_with("text/html") || ct.starts_with("application/json")) {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
        return Err(format!("expected {} data, got {ct}: {}", kind.extension(), start.trim()));
    }
    match kind {
        PayloadKind::Fits => crate::transform::image::check_structure(bytes).map_err(|e| e.0),
        PayloadKind::Jpeg | PayloadKind::Png => {
            let format = if kind == PayloadKind::Jpeg { image::ImageFormat::Jpeg } else { image::ImageFormat::Png };
            image::load_from_memory_with_format(bytes, format)
                .map(|_| ())
                .map_err(|e| format!("not a readable {} image ({} bytes): {e}", kind.extension(), bytes.len()))
        }
        PayloadKind::Text => std::str::from_utf8(bytes).map(|_| ()).map_err(|e| format!("not UTF-8 text: {e}")),
    }
}

/// `<workdir>/raw/<source>/`, and `<workdir>/rejected/<source>/` for refused answers.
#[derive(Debug, Clone)]
pub struct RawStore {
    root: PathBuf,
    rejected: PathBuf,
}

/// A stored payload: where (relative to the store) and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl RawStore {
    /// The store of `source` in `workdir`.
    pub fn new(workdir: &super::Workdir, source: &str) -> Self {
        RawStore { root: workdir.raw(source), rejected: workdir.rejected(source) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Keep an answer that was refused for good as `rejected/<source>/<key>/<name>`, byte for
    /// byte and atomically, so a user can see what the archive sent. `name` is what the archive
    /// called it; anything but `[A-Za-z0-9._-]` in it becomes `_`. Returns the path.
    pub fn reject(&self, key: &str, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let mut name: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
        if name.is_empty() || name.starts_with('.') {
            name.insert_str(0, "answer");
        }
        anyhow::ensure!(crate::keys::key_problem(key).is_none(), "unsafe rejected answer name {key}/{name}");
        let dir = self.rejected.join(key);
        fs_err::create_dir_all(&dir)?;
        let path = dir.join(name);
        super::write_atomic(&path, bytes)?;
        Ok(path)
    }

    /// Validate and store `bytes` as `<key>/<name>`, atomically. `key` is a sample key (already
    /// `[A-Za-z0-9_-]`); `name` a plain file name.
    pub fn put(
        &self,
        key: &str,
        name: &str,
        kind: PayloadKind,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> anyhow::Result<Stored> {
        validate(kind, bytes, content_type).map_err(|e| anyhow::anyhow!("{key}/{name}: {e}"))?;
        self.write(key, name, bytes)
    }

    /// Store `bytes` (already validated) as `<key>/<name>`, atomically.
    pub fn write(&self, key: &str, name: &str, bytes: &[u8]) -> anyhow::Result<Stored> {
        anyhow::ensure!(
            crate::keys::key_problem(key).is_none() && !name.contains(['/', '\\']) && !name.starts_with('.'),
            "unsafe raw payload name {key}/{name}"
        );
        let dir = self.root.join(key);
        fs_err::create_dir_all(&dir)?;
        super::write_atomic(&dir.join(name), bytes)?;
        Ok(Stored {
            path: format!("{key}/{name}"),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        })
    }

    /// Remove temporary files a killed run left in `<key>/` (call only for units this process
    /// is about to fetch). Returns how many were removed.
    pub fn clean_partial(&self, key: &str) -> anyhow::Result<usize> {
        let dir = self.root.join(key);
        if !dir.is_dir() {
            return Ok(0);
        }
        let mut removed = 0;
        for entry in fs_err::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(super::TEMP_PREFIX) {
                fs_err::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Read a stored payload back.
    pub fn read(&self, rel: &str) -> anyhow::Result<Vec<u8>> {
        Ok(fs_err::read(self.root.join(rel))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        etd_emulators::fixtures::bytes(etd_emulators::fixtures::PS1_CUTOUT).unwrap().to_vec()
    }

    #[test]
    fn fits_must_be_whole() {
        etd_emulators::require_fixtures!();
        let f = fixture();
        assert!(validate(PayloadKind::Fits, &f, Some("image/fits")).is_ok());
        assert!(validate(PayloadKind::Fits, &f[..f.len() - 2880], None).unwrap_err().contains("truncated"));
        let html = b"<html><body>Service Unavailable</body></html>";
        assert!(validate(PayloadKind::Fits, html, Some("text/html; charset=utf-8")).unwrap_err().contains("text/html"));
        assert!(validate(PayloadKind::Fits, html, None).is_err());
    }

    #[test]
    fn images_must_decode() {
        let img = image::RgbImage::from_pixel(4, 3, image::Rgb([10, 20, 30]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let mut jpg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
            .unwrap();
        assert!(validate(PayloadKind::Png, &png, Some("image/png")).is_ok());
        assert!(validate(PayloadKind::Jpeg, &jpg, Some("image/jpeg")).is_ok());
        assert!(validate(PayloadKind::Jpeg, &jpg[..jpg.len() / 2], None).is_err());
        assert!(validate(PayloadKind::Png, &jpg, None).is_err());
        assert!(validate(PayloadKind::Text, b"###MJD m dm\n", Some("text/plain")).is_ok());
        assert!(validate(PayloadKind::Text, &[0xff, 0xfe], None).is_err());
    }

    #[test]
    fn put_is_atomic_and_checked() {
        etd_emulators::require_fixtures!();
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().to_path_buf()), "ps1-cutouts");
        let f = fixture();
        let s = store.put("m51", "r.fits", PayloadKind::Fits, &f, None).unwrap();
        assert_eq!(s.path, "m51/r.fits");
        assert_eq!(s.size, f.len() as u64);
        assert_eq!(store.read(&s.path).unwrap(), f);
        assert!(store.put("m51", "g.fits", PayloadKind::Fits, &f[..5000], None).is_err());
        assert!(!store.root().join("m51/g.fits").exists(), "a refused payload leaves nothing behind");
        let leftovers: Vec<_> =
            std::fs::read_dir(store.root().join("m51")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("r.fits")]);
        assert!(store.put("../x", "a.fits", PayloadKind::Fits, &f, None).is_err());
        assert!(store.put("k", "../a.fits", PayloadKind::Fits, &f, None).is_err());
    }

    #[test]
    fn rejected_answers_are_kept_as_received() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().to_path_buf()), "atlas-fp");
        let bytes = b"###MJD m\n\xff not text".to_vec();
        let path = store.reject("sn0001", "job00042.txt", &bytes).unwrap();
        assert_eq!(path, dir.path().join("rejected/atlas-fp/sn0001/job00042.txt"));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        // A second refusal replaces the first; odd names are made safe, not refused.
        store.reject("sn0001", "job00042.txt", b"again").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"again");
        let odd = store.reject("sn0001", "../fitscut.cgi?x=1", b"x").unwrap();
        assert_eq!(odd, dir.path().join("rejected/atlas-fp/sn0001/answer.._fitscut.cgi_x_1"));
        assert!(store.reject("../up", "a.txt", b"x").is_err());
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    }
}
