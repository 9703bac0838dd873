//! Raw payloads: what a source fetched (validated by the source first, see `sources::payload`),
//! written atomically under `<workdir>/raw/<source>/`, so a killed fetch never leaves a partial file under a final name.
//! Answers refused for good are kept as received under `<workdir>/rejected/<source>/`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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
        crate::fsx::write_atomic(&path, bytes)?;
        Ok(path)
    }

    /// Store `bytes` (already validated) as `<key>/<name>`, atomically.
    pub fn write(&self, key: &str, name: &str, bytes: &[u8]) -> anyhow::Result<Stored> {
        anyhow::ensure!(
            crate::keys::key_problem(key).is_none() && !name.contains(['/', '\\']) && !name.starts_with('.'),
            "unsafe raw payload name {key}/{name}"
        );
        let dir = self.root.join(key);
        fs_err::create_dir_all(&dir)?;
        crate::fsx::write_atomic(&dir.join(name), bytes)?;
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
            if entry.file_name().to_string_lossy().starts_with(crate::fsx::TEMP_PREFIX) {
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

    #[test]
    fn rejected_answers_are_kept_as_received() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().to_path_buf()), "atlas-fp");
        let bytes = b"###MJD m\n\xff not text".to_vec();
        let path = store.reject("sn0001", "job00042.txt", &bytes).unwrap();
        assert_eq!(path, dir.path().join("rejected/atlas-fp/sn0001/job00042.txt"));
        assert_eq!(fs_err::read(&path).unwrap(), bytes);
        // A second refusal replaces the first; odd names are made safe, not refused.
        store.reject("sn0001", "job00042.txt", b"again").unwrap();
        assert_eq!(fs_err::read(&path).unwrap(), b"again");
        let odd = store.reject("sn0001", "../fitscut.cgi?x=1", b"x").unwrap();
        assert_eq!(odd, dir.path().join("rejected/atlas-fp/sn0001/answer.._fitscut.cgi_x_1"));
        assert!(store.reject("../up", "a.txt", b"x").is_err());
        let names: Vec<_> = fs_err::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    }
}
