//! File-system steps that must not be half done: atomic writes and folder syncs.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

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
    stage_all(dir, files)?.commit()
}

/// The first half of [`place_all_atomic`]: each file written to a temporary file in `dir`,
/// neither fsynced nor named yet. [`Staged::commit`] finishes the job, for as many staged files
/// as a caller gathered (the payloads of many units: one fsync per file still, but each folder
/// synced once per commit, and the fsyncs and renames of all of them in one blocking task).
pub fn stage_all<N: AsRef<Path>>(dir: &Path, files: &[(N, &[u8])]) -> anyhow::Result<Staged> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    // Files etd writes are meant to be shared: mode 0644, not tempfile's 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut staged = Staged::default();
    staged.files.reserve(files.len());
    for (name, bytes) in files {
        let mut tmp =
            builder.tempfile_in(dir).with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        tmp.write_all(bytes).with_context(|| format!("cannot write {}", tmp.path().display()))?;
        staged.files.push((tmp, dir.join(name)));
    }
    Ok(staged)
}

/// Files written to temporary files beside their final names ([`stage_all`]), and folders to
/// sync once they are named. Nothing of it survives a crash, or shows under a final name, until
/// [`commit`](Self::commit); dropping it uncommitted removes the temporary files.
#[must_use = "staged files are removed unless committed"]
#[derive(Debug, Default)]
pub struct Staged {
    files: Vec<(tempfile::NamedTempFile, PathBuf)>,
    dirs: BTreeSet<PathBuf>,
}

impl Staged {
    /// Sync `dir` at the commit, after the renames (the folder the files are named in, or the
    /// parent of a folder made for them).
    pub fn sync_dir(&mut self, dir: &Path) {
        self.dirs.insert(dir.to_path_buf());
    }

    /// Take `other`'s files and folders into this one.
    pub fn append(&mut self, other: Staged) {
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
    }

    /// Temporary files waiting (each is an open file until the commit).
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Make everything durable and named: every temporary file fsynced, then all renamed to their
    /// names (so a name appears only once its bytes are on disk), then each folder asked for
    /// fsynced once. When this returns, all of it survives a crash.
    pub fn commit(self) -> anyhow::Result<()> {
        for (tmp, _) in &self.files {
            tmp.as_file().sync_all().with_context(|| format!("cannot sync {}", tmp.path().display()))?;
        }
        for (tmp, path) in self.files {
            tmp.persist(&path).with_context(|| format!("cannot rename into {}", path.display()))?;
        }
        for dir in &self.dirs {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// Bytes a [`DirectFile`] gathers before writing them in one call.
const DIRECT_BUF: usize = 1 << 20;
/// Alignment of `O_DIRECT` buffers, file offsets and lengths (covers 512- and 4096-byte sectors).
const DIRECT_ALIGN: usize = 4096;

/// A new file written around the page cache where the file system allows it (Linux `O_DIRECT`),
/// for shards: etd writes them once and reads them back at most once (verify, publish), and on
/// a machine whose page cache is slow to grow (a VM) copying them into it cost more CPU than
/// compressing them (bench/README.md). Bytes are gathered in 4096-aligned 1 MiB windows; each
/// full window is written by a thread of the file's own while the next one fills (an `O_DIRECT`
/// write returns only once the device has the bytes: on the caller's thread that wait was a
/// fifth of a plain-tar shard's time). The last, partial block is written padded with zeros at
/// [`finish`](Self::finish) and the file cut back to its length. A file system that refuses
/// `O_DIRECT` (at open or at a write) gets ordinary writes. `flush` writes nothing: the bytes
/// are complete after `finish`, durable after `sync_all` of the file it returns. A write error
/// shows at the next `write` or at `finish`. `ETD_DIRECT_IO=0` turns `O_DIRECT` off.
#[must_use = "the last bytes are written by `finish`"]
pub struct DirectFile {
    /// The window being filled, and the bytes in it.
    window: Window,
    len: usize,
    /// Bytes handed to `write` so far.
    total: u64,
    /// Opened with `O_DIRECT` (the I/O thread may fall back to ordinary writes later).
    direct: bool,
    /// Full windows to the I/O thread; emptied ones come back on `free`.
    to_io: Option<SyncSender<(Window, usize)>>,
    free: Receiver<Window>,
    io: Option<JoinHandle<std::io::Result<(fs::File, bool)>>>,
    /// Tests: the next write around the page cache fails as a file system refusing it would.
    #[cfg(test)]
    refuse_next_direct_write: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Tests: the next write fails as on a full disk.
    #[cfg(test)]
    fail_next_write: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Full windows queued for the I/O thread while one is written and one fills (3 MiB per file).
const DIRECT_QUEUE: usize = 1;

/// A 4096-aligned window of `DIRECT_BUF` bytes inside a slightly larger allocation.
struct Window {
    buf: Vec<u8>,
    start: usize,
}

impl Window {
    /// A placeholder holding no memory (while the window is being sent).
    fn empty() -> Self {
        Window { buf: Vec::new(), start: 0 }
    }

    fn new() -> Self {
        let buf = vec![0u8; DIRECT_BUF + DIRECT_ALIGN];
        // The first aligned byte (the allocation holds DIRECT_ALIGN spare bytes for it).
        let start = (DIRECT_ALIGN - buf.as_ptr() as usize % DIRECT_ALIGN) % DIRECT_ALIGN;
        Window { buf, start }
    }

    fn bytes(&self, n: usize) -> &[u8] {
        &self.buf[self.start..self.start + n]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + DIRECT_BUF]
    }
}

/// Whether `ETD_DIRECT_IO` allows `O_DIRECT` (unset: yes). Checked at start-up too, so a bad
/// value is a usage error before anything is done.
pub fn direct_io_allowed() -> std::io::Result<bool> {
    parse_direct_io(std::env::var(crate::env_vars::ETD_DIRECT_IO).ok().as_deref())
}

fn parse_direct_io(value: Option<&str>) -> std::io::Result<bool> {
    let var = crate::env_vars::ETD_DIRECT_IO;
    match value.map(str::trim) {
        None | Some("1" | "on") => Ok(true),
        Some("0" | "off") => Ok(false),
        Some(other) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{var}={other}: expected 1 or on (the default: shards written around the page cache) or 0 or off"),
        )),
    }
}

impl DirectFile {
    /// Create (or truncate) `path` for writing.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let buffered = || fs::File::create(path);
        #[cfg(target_os = "linux")]
        let (file, direct) = if !direct_io_allowed()? {
            (buffered()?, false)
        } else {
            use fs_err::os::unix::fs::OpenOptionsExt;
            let opened =
                fs::OpenOptions::new().write(true).create(true).truncate(true).custom_flags(libc::O_DIRECT).open(path);
            match opened {
                Ok(f) => (f, true),
                // Refused by the file system (EINVAL where it takes no O_DIRECT: some FUSE and
                // overlay mounts, tmpfs before Linux 6.6) or any other failure: an ordinary
                // create, which reports the error with the path if it fails too.
                Err(_) => (buffered()?, false),
            }
        };
        #[cfg(not(target_os = "linux"))]
        let (file, direct) = (buffered()?, false);
        #[cfg(not(target_os = "linux"))]
        direct_io_allowed()?;
        let (to_io, from_writer) = sync_channel::<(Window, usize)>(DIRECT_QUEUE);
        let (give_back, free) = channel();
        #[cfg(test)]
        let (refuse, fail) = Default::default();
        let mut io = IoThread {
            file,
            direct,
            written: 0,
            #[cfg(test)]
            refuse_next_direct_write: std::sync::Arc::clone(&refuse),
            #[cfg(test)]
            fail_next_write: std::sync::Arc::clone(&fail),
        };
        let handle = std::thread::Builder::new().name("shard io".into()).spawn(move || {
            for (window, n) in from_writer {
                io.write(window.bytes(n))?;
                // The writer may be gone (an error elsewhere): the window is just freed.
                let _ = give_back.send(window);
            }
            Ok((io.file, io.direct))
        })?;
        Ok(DirectFile {
            window: Window::new(),
            len: 0,
            total: 0,
            direct,
            to_io: Some(to_io),
            free,
            io: Some(handle),
            #[cfg(test)]
            refuse_next_direct_write: refuse,
            #[cfg(test)]
            fail_next_write: fail,
        })
    }

    /// Whether the file was opened to be written around the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Hand the first `n` bytes of the window to the I/O thread and start an empty one: one the
    /// thread has given back (taken after the send, which returns once the thread took the
    /// window before, so at most three exist), else a new one.
    fn send_window(&mut self, n: usize) -> std::io::Result<()> {
        let full = std::mem::replace(&mut self.window, Window::empty());
        self.len = 0;
        let sent = self.to_io.as_ref().map(|tx| tx.send((full, n)));
        self.window = self.free.try_recv().unwrap_or_else(|_| Window::new());
        match sent {
            Some(Ok(())) => Ok(()),
            // The I/O thread stopped on an error: it says which.
            _ => Err(self.join().err().unwrap_or_else(|| std::io::Error::other("the shard's I/O thread stopped"))),
        }
    }

    /// Wait for the I/O thread to write everything sent: the file, and whether it is still
    /// written around the page cache.
    fn join(&mut self) -> std::io::Result<(fs::File, bool)> {
        self.to_io.take();
        let handle = self.io.take().ok_or_else(|| std::io::Error::other("the shard's I/O thread is gone"))?;
        handle.join().map_err(|_| std::io::Error::other("the shard's I/O thread panicked"))?
    }

    /// Write what is gathered (the last block padded while direct, then the file cut back to
    /// its length) and return the file, to be synced.
    pub fn finish(self) -> std::io::Result<fs::File> {
        Ok(self.finish_telling_direct()?.0)
    }

    /// [`finish`](Self::finish), and whether the file was written around the page cache to
    /// the end.
    fn finish_telling_direct(mut self) -> std::io::Result<(fs::File, bool)> {
        let padded = self.direct && !self.len.is_multiple_of(DIRECT_ALIGN);
        if self.len > 0 {
            let n = if padded { self.len.next_multiple_of(DIRECT_ALIGN) } else { self.len };
            let len = self.len;
            self.window.bytes_mut()[len..n].fill(0);
            self.send_window(n)?;
        }
        let (file, direct) = self.join()?;
        if padded {
            // Also after a fall-back to ordinary writes: the padding was written either way.
            file.set_len(self.total)?;
        }
        Ok((file, direct))
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        // Not finished (an error elsewhere): wait for the writes in flight, keep no thread.
        if self.io.is_some() {
            let _ = self.join();
        }
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(DIRECT_BUF - self.len);
        let at = self.len;
        self.window.bytes_mut()[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        self.total += n as u64;
        if self.len == DIRECT_BUF {
            self.send_window(DIRECT_BUF)?;
        }
        Ok(n)
    }

    /// Nothing: a partial block cannot be written around the page cache (see [`DirectFile`]).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The file of a [`DirectFile`], on its I/O thread.
struct IoThread {
    file: fs::File,
    direct: bool,
    /// Bytes written to the file so far (a multiple of `DIRECT_ALIGN` while `direct`).
    written: u64,
    #[cfg(test)]
    refuse_next_direct_write: std::sync::Arc<std::sync::atomic::AtomicBool>,
    #[cfg(test)]
    fail_next_write: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl IoThread {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        let result = if self.direct && self.refuse_next_direct_write.swap(false, std::sync::atomic::Ordering::SeqCst) {
            Err(std::io::Error::from(std::io::ErrorKind::InvalidInput))
        } else if self.fail_next_write.swap(false, std::sync::atomic::Ordering::SeqCst) {
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
        } else {
            self.file.write_all(data)
        };
        #[cfg(not(test))]
        let result = self.file.write_all(data);
        match result {
            // EINVAL (fs_err keeps the kind, not the OS code): opened with O_DIRECT but refused
            // at the write (alignment the file system does not take). Ordinary writes from here.
            Err(e) if self.direct && e.kind() == std::io::ErrorKind::InvalidInput && self.reopen_buffered().is_ok() => {
                self.file.write_all(data)?;
            }
            other => other?,
        }
        self.written += data.len() as u64;
        Ok(())
    }

    /// The same file without `O_DIRECT`, positioned where the writes stopped.
    fn reopen_buffered(&mut self) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let path = self.file.path().to_path_buf();
        let mut file = fs::OpenOptions::new().write(true).open(&path)?;
        file.seek(SeekFrom::Start(self.written))?;
        self.file = file;
        self.direct = false;
        Ok(())
    }
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

    /// Every length around the block and buffer sizes, written in pieces of several sizes,
    /// reads back exactly (written around the page cache or not).
    fn direct_file_round_trips_in(dir: &Path) {
        let lengths = [0, 1, 511, 4095, 4096, 4097, DIRECT_BUF - 1, DIRECT_BUF, DIRECT_BUF + 1, 3 * DIRECT_BUF + 12345];
        for (i, len) in lengths.into_iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
            for piece in [1, 1000, 70_000, 3 << 20] {
                if piece == 1 && len > DIRECT_BUF + 1 {
                    continue;
                }
                let path = dir.join(format!("f{len}-{piece}"));
                let mut f = DirectFile::create(&path).unwrap();
                for part in data.chunks(piece) {
                    f.write_all(part).unwrap();
                    f.flush().unwrap();
                }
                f.finish().unwrap().sync_all().unwrap();
                assert!(fs::read(&path).unwrap() == data, "{len} bytes in pieces of {piece}");
            }
        }
    }

    #[test]
    fn direct_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        direct_file_round_trips_in(dir.path());
        // A file that exists is truncated, as by `File::create`.
        let path = dir.path().join("old");
        fs::write(&path, vec![7u8; 10_000]).unwrap();
        let mut f = DirectFile::create(&path).unwrap();
        f.write_all(b"new").unwrap();
        f.finish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        // A folder that does not exist: the error names the path.
        let e = DirectFile::create(&dir.path().join("missing/x")).err().unwrap().to_string();
        assert!(e.contains("missing/x"), "{e}");
    }

    #[test]
    fn a_write_refused_around_the_page_cache_is_written_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * DIRECT_BUF + 777).map(|j| (j * 13) as u8).collect();
        let mut f = DirectFile::create(&path).unwrap();
        if !f.is_direct() {
            return; // this file system takes no O_DIRECT at all: the other tests cover it
        }
        f.write_all(&data[..DIRECT_BUF + 5]).unwrap();
        f.refuse_next_direct_write.store(true, std::sync::atomic::Ordering::SeqCst);
        f.write_all(&data[DIRECT_BUF + 5..]).unwrap();
        let (file, direct) = f.finish_telling_direct().unwrap();
        assert!(!direct, "ordinary writes after the refusal");
        file.sync_all().unwrap();
        assert!(fs::read(&path).unwrap() == data);
    }

    #[test]
    fn a_failed_write_shows_at_a_later_write_or_at_finish_and_a_drop_waits_for_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..4 * DIRECT_BUF + 99).map(|j| (j * 7) as u8).collect();
        let path = dir.path().join("full");
        let mut f = DirectFile::create(&path).unwrap();
        f.write_all(&data[..DIRECT_BUF]).unwrap();
        f.fail_next_write.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = match f.write_all(&data[DIRECT_BUF..]) {
            Err(e) => e,
            Ok(()) => f.finish().unwrap_err(),
        };
        assert_eq!(err.raw_os_error(), Some(28), "{err}");

        // Dropped unfinished: the windows sent are written, the partial one is not, no thread
        // is left behind.
        let path = dir.path().join("dropped");
        let mut f = DirectFile::create(&path).unwrap();
        f.write_all(&data[..2 * DIRECT_BUF + 5]).unwrap();
        drop(f);
        assert!(fs::read(&path).unwrap() == data[..2 * DIRECT_BUF]);
    }

    #[test]
    fn etd_direct_io_values() {
        assert!(parse_direct_io(None).unwrap());
        assert!(parse_direct_io(Some("1")).unwrap() && parse_direct_io(Some(" on")).unwrap());
        assert!(!parse_direct_io(Some("0")).unwrap() && !parse_direct_io(Some("off")).unwrap());
        let e = parse_direct_io(Some("of")).unwrap_err().to_string();
        assert!(e.contains("ETD_DIRECT_IO=of") && e.contains("0 or off"), "{e}");
    }

    #[test]
    fn direct_file_on_tmpfs() {
        // tmpfs refuses O_DIRECT on older kernels (ordinary writes then) and takes it on newer.
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        let dir = tempfile::tempdir_in(shm).unwrap();
        direct_file_round_trips_in(dir.path());
    }
}
