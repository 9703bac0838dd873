//! File-system steps that must not be half done: atomic writes and folder syncs.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use fs_err as fs;

/// Name prefix of the temporary files atomic writes use.
pub const TEMP_PREFIX: &str = ".etd-tmp-";

/// Write `bytes` to `path` atomically: a temp file in the same folder, fsync, rename over `path`,
/// fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = place_atomic(path, bytes)?;
    sync_dir(dir)
}

/// [`write_atomic`] without the folder's fsync, for callers that place several files in one
/// folder and then sync it once: a temp file in the same folder, written, fsynced and renamed
/// over `path`. Returns the folder. Until the folder is synced the new name may not survive a
/// crash (the file's bytes do).
pub fn place_atomic<'a>(path: &'a Path, bytes: &[u8]) -> anyhow::Result<&'a Path> {
    let dir = path.parent().context("path has no parent folder")?;
    let name = path.file_name().context("path has no file name")?;
    place_all_atomic(dir, &[(name, bytes)])?;
    Ok(dir)
}

/// [`place_atomic`] for the few files of one unit in folder `dir` (all are open at once): the
/// temp files are all written first, then all fsynced, then all renamed (a name appears only
/// once its file is on disk). Writing them before the first fsync lets one fsync write the
/// metadata blocks they share (inode table, bitmaps) for all of them.
pub fn place_all_atomic<N: AsRef<Path>>(dir: &Path, files: &[(N, &[u8])]) -> anyhow::Result<()> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // Files etd writes are meant to be shared: mode 0644, not tempfile's 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut temps = Vec::with_capacity(files.len());
    for (_, bytes) in files {
        let mut tmp =
            builder.tempfile_in(dir).with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        tmp.write_all(bytes).with_context(|| format!("cannot write {}", tmp.path().display()))?;
        temps.push(tmp);
    }
    for tmp in &temps {
        tmp.as_file().sync_all().with_context(|| format!("cannot sync {}", tmp.path().display()))?;
    }
    for (tmp, (name, _)) in temps.into_iter().zip(files) {
        let path = dir.join(name);
        tmp.persist(&path).with_context(|| format!("cannot rename into {}", path.display()))?;
    }
    Ok(())
}

/// Create `dir` and any missing ancestors, fsyncing the parent of every folder created, so
/// the new folders survive a crash. Nothing is synced when `dir` already exists.
pub fn create_dir_synced(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_synced(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Another thread made it meanwhile; it syncs the parent.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Bytes free to an unprivileged user on the filesystem holding `path` (or its nearest existing
/// ancestor); `None` when it cannot be told.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    free_bytes_at(existing)
}

#[cfg(unix)]
fn free_bytes_at(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statvfs is a valid value for statvfs to fill.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid statvfs, both alive for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes_at(_path: &Path) -> Option<u64> {
    None
}

/// Bytes of the regular files below `dir` (0 when it does not exist).
pub fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// fsync a folder so a rename inside it survives a crash.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs::File::open(dir)?.sync_all().with_context(|| format!("cannot sync folder {}", dir.display()))
}

/// Read exactly `buf.len()` bytes at `offset` without moving a shared file position (threads may
/// read one file at once). The error is the OS's own (fs_err's would name the path): callers name
/// the file in their context.
#[cfg(unix)]
pub fn read_exact_at(file: &fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file.file(), buf, offset)
}

#[cfg(windows)]
pub fn read_exact_at(file: &fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file.file(), buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// What the OS said about `path`, without fs_err's "failed to open file `path`: " in front: for
/// messages that name the path themselves ("cannot read the recipe: …"). fs_err keeps the OS error
/// only in its text, so this cuts after the quoted path; any other error prints whole.
pub fn os_reason(e: &std::io::Error, path: &Path) -> String {
    let text = e.to_string();
    match text.split_once(&format!("`{}`: ", path.display())) {
        Some((_, os)) => os.to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "the std errors are what this test compares with")]
    fn os_reason_is_the_std_error_text() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.yaml");
        // Opening fails (a missing file) and reading fails (a folder opens, then cannot be read).
        for path in [missing.as_path(), dir.path()] {
            let with_path = fs::read(path).unwrap_err();
            assert!(with_path.to_string().contains(&format!("`{}`", path.display())), "{with_path}");
            let bare = std::fs::read(path).unwrap_err();
            assert_eq!(with_path.kind(), bare.kind());
            assert_eq!(os_reason(&with_path, path), bare.to_string());
            assert_eq!(os_reason(&bare, path), bare.to_string());
        }
    }
}
