//! Raw payloads: what a source fetched (validated by the source first, see `sources::payload`),
//! written atomically under `<workdir>/raw/<source>/`, so a killed fetch never leaves a partial file under a final name.
//! Answers refused for good are kept as received under `<workdir>/rejected/<source>/`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::InputRecord;
use crate::error::UserError;

/// What a recorded file is, for the words and the hint when it is gone or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A file of the local source, in the user's folder: fetch recorded it, never copied it.
    LocalInput,
    /// A payload a networked source fetched into the workdir.
    RawPayload,
}

impl Recorded {
    fn noun(self) -> &'static str {
        match self {
            Recorded::LocalInput => "input",
            Recorded::RawPayload => "raw payload",
        }
    }
}

/// Read the file `rec` recorded below `root` and check it is what fetch recorded, for sharding:
/// the same size, and either the same modification and change times after the read
/// ([`InputRecord::stat_matches`]: a write during or since the read would show) or, when they
/// differ or were not recorded, the same sha256.
pub fn read_checked(root: &Path, rec: &InputRecord, what: Recorded) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let path = root.join(&rec.path);
    let noun = what.noun();
    let unreadable = |e: std::io::Error| {
        let hint = match what {
            Recorded::LocalInput => "run `etd fetch` again to record the current files",
            Recorded::RawPayload => "run `etd fetch` again; it fetches what is missing",
        };
        UserError::failure(format!("{noun} {} recorded by fetch cannot be read: {e}", path.display())).with_hint(hint)
    };
    let mut file = fs_err::File::open(&path).map_err(unreadable)?;
    // One byte more than recorded, so reading to the end needs no second allocation (the hint
    // capped, so a damaged journal cannot ask for a huge one).
    let mut bytes = Vec::with_capacity(rec.size.min(1 << 30) as usize + 1);
    file.read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 == rec.size && rec.stat_matches(&file.metadata().map_err(unreadable)?) {
        return Ok(bytes);
    }
    let sha = hex::encode(Sha256::digest(&bytes));
    if bytes.len() as u64 != rec.size || sha != rec.sha256 {
        let short = |hex: &str| hex[..hex.len().min(12)].to_string();
        let hint = match what {
            Recorded::LocalInput => "run `etd fetch` again to record the current files, then `etd shard`",
            Recorded::RawPayload => {
                "raw payloads are never modified by etd; restore it or delete the workdir and fetch again"
            }
        };
        return Err(UserError::failure(format!(
            "{noun} {} changed since it was fetched (size {} -> {}, sha256 {} -> {})",
            path.display(),
            rec.size,
            bytes.len(),
            short(&rec.sha256),
            short(&sha)
        ))
        .with_hint(hint)
        .into());
    }
    Ok(bytes)
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

impl Stored {
    /// The input record of a fetched payload stored here, as `field`, from `url`. Payloads carry
    /// no file times: `shard` checks them by size and sha256.
    pub fn record(self, field: impl Into<String>, url: &url::Url) -> InputRecord {
        InputRecord {
            path: self.path,
            field: field.into(),
            size: self.size,
            sha256: self.sha256,
            mtime_ns: 0,
            ctime_ns: 0,
            url: Some(url.to_string()),
        }
    }
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
        let mut stored = self.write_unit(key, &[(name, bytes)])?;
        Ok(stored.pop().expect("one file in, one out"))
    }

    /// Store the payloads of one unit (already validated) as `<key>/<name>`, durably: staged
    /// ([`stage`](Self::stage)) and committed at once. When this returns, all of them survive a
    /// crash.
    pub fn write_unit(&self, key: &str, files: &[(&str, &[u8])]) -> anyhow::Result<Vec<Stored>> {
        let (stored, staged) = self.stage(key, files)?;
        staged.commit()?;
        Ok(stored)
    }

    /// Write the payloads of one unit (already validated) to temporary files in `<key>/` (made
    /// if missing), to be named `<key>/<name>` by [`Staged::commit`](crate::fsx::Staged::commit),
    /// which also syncs the folder and its parent. Until then nothing shows under a final name. The fetch engine commits the units that finish close together
    /// in one go before it journals them (docs/design.md, "Workdir").
    pub fn stage(&self, key: &str, files: &[(&str, &[u8])]) -> anyhow::Result<(Vec<Stored>, crate::fsx::Staged)> {
        anyhow::ensure!(crate::keys::key_problem(key).is_none(), "unsafe raw payload folder {key}");
        for (name, _) in files {
            anyhow::ensure!(
                !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.'),
                "unsafe raw payload name {key}/{name}"
            );
        }
        let dir = self.root.join(key);
        if !dir.is_dir() {
            crate::fsx::create_dir_synced(&self.root)?;
            match fs_err::create_dir(&dir) {
                Ok(()) => {}
                // Another thread made it meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut staged = crate::fsx::stage_all(&dir, files)?;
        // The parent is synced at every commit, not only by the one after the folder was made:
        // a folder made by a unit whose commit never came (a kill, a failure) may not be on disk
        // yet. A commit syncs each folder once, so this is one fsync per commit.
        staged.sync_dir(&dir);
        staged.sync_dir(&self.root);
        let stored = files
            .iter()
            .map(|(name, bytes)| Stored {
                path: format!("{key}/{name}"),
                size: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(bytes)),
            })
            .collect();
        Ok((stored, staged))
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

    #[test]
    fn a_unit_is_stored_in_one_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().join("wd")), "ps1-cutouts");
        let stored = store.write_unit("t1", &[("ps1filenames.txt", b"table"), ("g.fits", b"SIMPLE")]).unwrap();
        let paths: Vec<_> = stored.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["t1/ps1filenames.txt", "t1/g.fits"], "in the order given");
        assert_eq!(stored[1].size, 6);
        assert_eq!(stored[1].sha256, hex::encode(Sha256::digest(b"SIMPLE")));
        assert_eq!(fs_err::read(store.root().join("t1/g.fits")).unwrap(), b"SIMPLE");
        let mut names: Vec<_> =
            fs_err::read_dir(store.root().join("t1")).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["g.fits", "ps1filenames.txt"], "no temporary files left");
        // Stored again (a refetch): replaced whole.
        store.write_unit("t1", &[("g.fits", b"SIMPLE2")]).unwrap();
        assert_eq!(fs_err::read(store.root().join("t1/g.fits")).unwrap(), b"SIMPLE2");
        // Names that would leave the folder, or hide, are refused before anything is written.
        for bad in ["../x", "a/b", ".hidden", ""] {
            assert!(store.write_unit("t2", &[("ok.fits", b"x"), (bad, b"x")]).is_err(), "{bad:?}");
        }
        assert!(store.write_unit("../t3", &[("ok.fits", b"x")]).is_err());
        assert!(!store.root().join("t2").exists(), "a refused unit writes nothing");
    }

    #[test]
    fn staged_payloads_show_under_their_names_only_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().join("wd")), "ps1-cutouts");
        let names = |key: &str| -> Vec<String> {
            let mut n: Vec<_> = fs_err::read_dir(store.root().join(key))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        let (stored, mut staged) = store.stage("t1", &[("ps1filenames.txt", b"table"), ("g.fits", b"SIMPLE")]).unwrap();
        assert_eq!(
            stored[1],
            Stored { path: "t1/g.fits".into(), size: 6, sha256: hex::encode(Sha256::digest(b"SIMPLE")) }
        );
        let (_, second) = store.stage("t2", &[("g.fits", b"SIMPLE2")]).unwrap();
        staged.append(second);
        assert_eq!(staged.files(), 3);
        let waiting = names("t1");
        assert_eq!(waiting.len(), 2);
        assert!(
            waiting.iter().all(|n| n.starts_with(crate::fsx::TEMP_PREFIX)),
            "no final name before the commit: {waiting:?}"
        );
        staged.commit().unwrap();
        assert_eq!(names("t1"), ["g.fits", "ps1filenames.txt"], "named, no temporary files left");
        assert_eq!(fs_err::read(store.root().join("t2/g.fits")).unwrap(), b"SIMPLE2");
        // Staged and never committed (a unit whose commit never came): nothing is left of it but
        // its folder, and a committed file is not touched.
        let (_, dropped) = store.stage("t1", &[("g.fits", b"OTHER")]).unwrap();
        drop(dropped);
        assert_eq!(names("t1"), ["g.fits", "ps1filenames.txt"]);
        assert_eq!(fs_err::read(store.root().join("t1/g.fits")).unwrap(), b"SIMPLE");
        // A commit that cannot name a file says which.
        let (_, staged) = store.stage("t3", &[("g.fits", b"x")]).unwrap();
        fs_err::remove_dir_all(store.root().join("t3")).unwrap();
        let err = format!("{:#}", staged.commit().unwrap_err());
        assert!(err.contains("t3/g.fits"), "{err}");
    }

    #[test]
    fn recorded_files_are_read_only_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().to_path_buf()), "ps1-cutouts");
        let stored = store.write("t1", "g.fits", b"SIMPLE").unwrap();
        let rec = InputRecord {
            path: stored.path.clone(),
            field: "g".into(),
            size: stored.size,
            sha256: stored.sha256.clone(),
            mtime_ns: 0,
            ctime_ns: 0,
            url: None,
        };
        for what in [Recorded::RawPayload, Recorded::LocalInput] {
            assert_eq!(read_checked(store.root(), &rec, what).unwrap(), b"SIMPLE");
        }
        let user = |e: anyhow::Error| e.downcast::<UserError>().unwrap();
        fs_err::write(store.root().join(&stored.path), b"SIMPLF").unwrap();
        let e = user(read_checked(store.root(), &rec, Recorded::RawPayload).unwrap_err());
        assert!(
            e.message.starts_with("raw payload ")
                && e.message.contains("t1/g.fits changed since it was fetched (size 6 -> 6, sha256 "),
            "{}",
            e.message
        );
        assert!(e.hint.as_deref().unwrap_or_default().contains("never modified by etd"), "{:?}", e.hint);
        let e = user(read_checked(store.root(), &rec, Recorded::LocalInput).unwrap_err());
        assert!(e.message.starts_with("input ") && e.message.contains("changed since it was fetched"), "{}", e.message);
        assert!(e.hint.as_deref().unwrap_or_default().contains("record the current files, then `etd shard`"));
        fs_err::remove_file(store.root().join(&stored.path)).unwrap();
        let e = user(read_checked(store.root(), &rec, Recorded::LocalInput).unwrap_err());
        assert!(e.message.contains("t1/g.fits recorded by fetch cannot be read"), "{}", e.message);
        assert_eq!(e.hint.as_deref(), Some("run `etd fetch` again to record the current files"));
    }

    #[test]
    fn recorded_times_stand_in_for_the_hash_only_while_both_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.fits");
        fs_err::write(&path, b"SIMPLE").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs_err::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        let meta = fs_err::metadata(&path).unwrap();
        // As a fetch 2 s from now would record them (its change time is now).
        let later = crate::store::journal::now_ns() + crate::store::journal::RACY_NS;
        let (mtime_ns, ctime_ns) = crate::store::journal::recordable_times(&meta, later);
        assert!(mtime_ns != 0 && ctime_ns != 0, "times 2 s old are recorded");
        // A sha256 that cannot match: while the times do, the file is not hashed at all.
        let rec = InputRecord {
            path: "a.fits".into(),
            field: "fits".into(),
            size: 6,
            sha256: "00".repeat(32),
            mtime_ns,
            ctime_ns,
            url: None,
        };
        assert_eq!(read_checked(dir.path(), &rec, Recorded::LocalInput).unwrap(), b"SIMPLE");
        // Rewritten with the same size and its modification time set back: the change time
        // differs, so the file is hashed and refused. (After a pause longer than a clock tick,
        // for kernels whose file times are only that fine.)
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs_err::write(&path, b"SIMPLF").unwrap();
        fs_err::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        assert_eq!(crate::store::journal::file_times(&fs_err::metadata(&path).unwrap()).0, mtime_ns);
        let e = read_checked(dir.path(), &rec, Recorded::LocalInput).unwrap_err().to_string();
        assert!(e.contains("changed since it was fetched"), "{e}");
        // Without recorded times the sha256 decides.
        let untimed = InputRecord { mtime_ns: 0, ctime_ns: 0, ..rec };
        assert!(read_checked(dir.path(), &untimed, Recorded::LocalInput).is_err());
    }
}
