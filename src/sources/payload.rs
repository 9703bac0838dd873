//! Payload validation: a FITS file is whole, an image decodes, the server did not send an HTML
//! error page instead. A source validates what it fetched before it stores it.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::raw::{RawStore, Stored};

    fn fixture() -> Vec<u8> {
        etd_emulators::fixtures::bytes(etd_emulators::fixtures::PS1_CUTOUT).unwrap().to_vec()
    }

    /// Validate, then store: what a source does with a fetched payload.
    fn put(
        store: &RawStore,
        key: &str,
        name: &str,
        kind: PayloadKind,
        bytes: &[u8],
        ct: Option<&str>,
    ) -> anyhow::Result<Stored> {
        validate(kind, bytes, ct).map_err(|e| anyhow::anyhow!("{key}/{name}: {e}"))?;
        store.write(key, name, bytes)
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
        let s = put(&store, "m51", "r.fits", PayloadKind::Fits, &f, None).unwrap();
        assert_eq!(s.path, "m51/r.fits");
        assert_eq!(s.size, f.len() as u64);
        assert_eq!(store.read(&s.path).unwrap(), f);
        assert!(put(&store, "m51", "g.fits", PayloadKind::Fits, &f[..5000], None).is_err());
        assert!(!store.root().join("m51/g.fits").exists(), "a refused payload leaves nothing behind");
        let leftovers: Vec<_> =
            fs_err::read_dir(store.root().join("m51")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("r.fits")]);
        assert!(put(&store, "../x", "a.fits", PayloadKind::Fits, &f, None).is_err());
        assert!(put(&store, "k", "../a.fits", PayloadKind::Fits, &f, None).is_err());
    }
}
