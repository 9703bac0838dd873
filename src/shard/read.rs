//! Streaming reader for etd shards (`.tar` or `.tar.zst`): walks the members of one shard, hands
//! each regular member to a callback together with a reader of its data, and records every way the
//! shard breaks the shard contract (plain ustar headers, regular files only, `<key>.<field>` member
//! names, adjacent samples, a proper end-of-archive marker).
//!
//! Memory does not grow with the size of the shard: the archive is read through fixed-size buffers
//! and member data is only read as far as the callback asks. What does grow is per-sample
//! bookkeeping (the set of keys seen in the shard, to detect non-adjacent members of one sample).
//!
//! A member name is split at its FIRST dot: `a.g.fits` is key `a`, field `g.fits` (as WebDataset
//! splits it), and the field is then checked with [`field_problem`].

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read};
use std::path::Path;

use fs_err as fs;
use serde::Serialize;

use super::verify::ProblemKind;
use super::Compression;
use crate::keys::{field_problem, key_problem, MAX_MEMBER_NAME};

/// Size of one tar block.
const BLOCK: u64 = 512;

/// Problems of one kind listed per file before the rest are only counted.
pub const MAX_PROBLEMS_PER_KIND: u64 = 50;

/// Buffer size for file and stream reads.
const BUF_SIZE: usize = 64 * 1024;

/// One way a dataset or shard breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// File the problem is in (a name inside the shard folder), when it belongs to one file.
    pub file: Option<String>,
    /// What is wrong, e.g. `sha256-mismatch`.
    pub kind: ProblemKind,
    /// Human-readable detail.
    pub message: String,
}

impl Problem {
    pub fn new(file: Option<&str>, kind: ProblemKind, message: impl Into<String>) -> Self {
        Problem { file: file.map(str::to_string), kind, message: message.into() }
    }

    /// `file: kind: message`, or `kind: message` without a file.
    pub fn render(&self) -> String {
        match &self.file {
            Some(file) => format!("{file}: {}: {}", self.kind, self.message),
            None => format!("{}: {}", self.kind, self.message),
        }
    }
}

/// Collects problems, listing at most [`MAX_PROBLEMS_PER_KIND`] per (file, kind) and counting the
/// rest, so a badly broken shard cannot make the report grow without bound.
#[derive(Debug, Default)]
pub struct ProblemSink {
    problems: Vec<Problem>,
    counts: HashMap<(Option<String>, ProblemKind), u64>,
}

impl ProblemSink {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, file: Option<&str>, kind: ProblemKind, message: impl Into<String>) {
        let count = self.counts.entry((file.map(str::to_string), kind)).or_insert(0);
        *count += 1;
        if *count <= MAX_PROBLEMS_PER_KIND {
            self.problems.push(Problem::new(file, kind, message));
        }
    }

    /// Append problems that were already capped elsewhere (e.g. a [`ScanSummary`]'s), as they are.
    pub fn extend_listed(&mut self, problems: Vec<Problem>) {
        self.problems.extend(problems);
    }

    /// Total problems pushed, listed or not.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The listed problems, plus one line per (file, kind) that went over the limit.
    pub fn finish(self) -> Vec<Problem> {
        let mut problems = self.problems;
        let mut over: Vec<_> = self.counts.into_iter().filter(|(_, n)| *n > MAX_PROBLEMS_PER_KIND).collect();
        over.sort_by(|((fa, ka), _), ((fb, kb), _)| (fa, ka.as_str()).cmp(&(fb, kb.as_str())));
        for ((file, kind), n) in over {
            let more = n - MAX_PROBLEMS_PER_KIND;
            problems.push(Problem::new(
                file.as_deref(),
                kind,
                format!("... and {more} more `{kind}` problems not listed"),
            ));
        }
        problems
    }
}

/// Errors that stop a shard from being read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("`{0}` is not a shard file name (expected `.tar` or `.tar.zst`)")]
    UnknownExtension(String),
}

/// One regular member handed to the callback.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// Full member name, `<key>.<field>`.
    pub name: &'a str,
    /// Text before the first dot (the whole name when there is no dot).
    pub key: &'a str,
    /// Text after the first dot (empty when there is no dot).
    pub field: &'a str,
    /// Data size in bytes.
    pub size: u64,
    /// 0-based index of the member among the regular members of the shard.
    pub index: u64,
    /// 0-based index of the sample (run of adjacent members with one key) in the shard.
    pub sample: u64,
    /// Whether this member starts a new sample.
    pub starts_sample: bool,
}

/// What reading one shard found.
#[derive(Debug, Clone, Serialize)]
pub struct ScanSummary {
    pub compression: Compression,
    /// Regular members with a UTF-8 name (those handed to the callback).
    pub members: u64,
    /// Samples: runs of adjacent members sharing a key.
    pub samples: u64,
    /// Sum of the data sizes of those members.
    pub member_bytes: u64,
    /// Whether the whole stream was read to its end (the tar and, for zstd, the frame).
    pub complete: bool,
    /// Structural problems, at most [`MAX_PROBLEMS_PER_KIND`] listed per kind.
    pub problems: Vec<Problem>,
}

/// Open `path` (compression decided by its name) and scan it; see [`scan_stream`]. Errors when
/// the name is not a shard name, the file cannot be opened, or the callback fails.
pub fn scan_shard<F>(path: &Path, on_member: F) -> anyhow::Result<ScanSummary>
where
    F: FnMut(&Member<'_>, &mut dyn Read) -> anyhow::Result<()>,
{
    let name = display_file_name(path);
    let compression = Compression::from_file_name(&name).ok_or_else(|| ReadError::UnknownExtension(name.clone()))?;
    let file = fs::File::open(path)?;
    scan_stream(BufReader::with_capacity(BUF_SIZE, file), compression, &name, on_member)
}

/// File name of `path` for messages (lossy for non-UTF-8 names).
pub fn display_file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// Scan a shard from `raw` (the file bytes as stored). `file` labels problems. Calls `on_member`
/// for every regular member with a UTF-8 name, in archive order, with a reader limited to that
/// member's data; whatever the callback leaves unread is skipped.
///
/// Structural problems never make this fail: they are listed in the summary, and reading stops at
/// the first one the tar stream cannot be read past. This returns `Err` only when the callback
/// returns `Err` for a reason other than the stream breaking under it.
///
/// For zstd, reading stops at the end of the first frame; the bytes after it are read (so a
/// hashing reader underneath sees them) and reported as `trailing-data`. When the stream breaks,
/// `raw` is left where reading stopped: drain it if you need every byte.
pub fn scan_stream<R, F>(raw: R, compression: Compression, file: &str, on_member: F) -> anyhow::Result<ScanSummary>
where
    R: Read,
    F: FnMut(&Member<'_>, &mut dyn Read) -> anyhow::Result<()>,
{
    let mut sink = ProblemSink::new();
    let mut summary = match compression {
        Compression::None => scan_tar(raw, compression, file, &mut sink, on_member)?,
        Compression::Zstd => {
            let mut decoder = match zstd::stream::read::Decoder::new(raw) {
                Ok(decoder) => decoder.single_frame(),
                Err(e) => {
                    sink.push(Some(file), ProblemKind::ZstdError, format!("cannot start decompressing: {e}"));
                    return Ok(empty_summary(compression, sink));
                }
            };
            let summary = scan_tar(&mut decoder, compression, file, &mut sink, on_member)?;
            if summary.complete {
                let mut rest = decoder.finish();
                let buffered = rest.buffer().len() as u64;
                match io::copy(rest.get_mut(), &mut io::sink()) {
                    Ok(more) if buffered + more > 0 => sink.push(
                        Some(file),
                        ProblemKind::TrailingData,
                        format!("{} bytes after the zstd frame", buffered + more),
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        sink.push(Some(file), ProblemKind::ReadError, format!("reading after the zstd frame: {e}"))
                    }
                }
            }
            summary
        }
    };
    summary.problems = sink.finish();
    Ok(summary)
}

fn empty_summary(compression: Compression, sink: ProblemSink) -> ScanSummary {
    ScanSummary { compression, members: 0, samples: 0, member_bytes: 0, complete: false, problems: sink.finish() }
}

/// State of the (decompressed) tar stream, shared between the reader given to the tar crate and
/// the scanning loop.
#[derive(Default)]
struct StreamState {
    /// Bytes read from the tar stream.
    pos: Cell<u64>,
    /// Whether the stream reported end of file.
    eof: Cell<bool>,
    /// First error the stream itself returned (below the tar layer).
    error: RefCell<Option<(io::ErrorKind, String)>>,
}

impl StreamState {
    /// Whether the stream failed or ended (so a tar or callback error is a stream problem).
    fn broken(&self) -> bool {
        self.eof.get() || self.error.borrow().is_some()
    }

    /// Kind and message for an error seen while reading the tar stream.
    fn classify(&self, compression: Compression, err: &dyn std::fmt::Display) -> (ProblemKind, String) {
        let pos = self.pos.get();
        match &*self.error.borrow() {
            Some((io::ErrorKind::UnexpectedEof, msg)) => {
                (ProblemKind::Truncated, format!("stream ends early after {pos} tar bytes: {msg}"))
            }
            Some((_, msg)) => match compression {
                Compression::Zstd => (ProblemKind::ZstdError, format!("decompressing at tar byte {pos}: {msg}")),
                Compression::None => (ProblemKind::ReadError, format!("reading at byte {pos}: {msg}")),
            },
            None if self.eof.get() => {
                (ProblemKind::Truncated, format!("file ends inside the archive after {pos} tar bytes: {err}"))
            }
            None => (ProblemKind::TarError, format!("at tar byte {pos}: {err}")),
        }
    }
}

/// Reader that tracks position, end of file and the first error of the stream under the tar layer.
struct Probe<'s, R> {
    inner: R,
    state: &'s StreamState,
}

impl<R: Read> Read for Probe<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.state.eof.set(true);
                Ok(0)
            }
            Ok(n) => {
                self.state.pos.set(self.state.pos.get() + n as u64);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let mut slot = self.state.error.borrow_mut();
                if slot.is_none() {
                    *slot = Some((e.kind(), e.to_string()));
                }
                Err(e)
            }
        }
    }
}

/// Sample grouping and member-name rules.
struct Grouping {
    current_key: Option<String>,
    current_fields: HashSet<String>,
    /// Key -> index of the sample it first started.
    seen: HashMap<String, u64>,
    samples: u64,
}

fn round_up(size: u64) -> u64 {
    size.div_ceil(BLOCK).saturating_mul(BLOCK)
}

fn entry_type_name(flag: u8) -> String {
    match flag {
        b'1' => "hard link".into(),
        b'2' => "symbolic link".into(),
        b'3' => "character device".into(),
        b'4' => "block device".into(),
        b'5' => "directory".into(),
        b'6' => "FIFO".into(),
        b'7' => "contiguous file".into(),
        b'x' => "pax extended header (`x`)".into(),
        b'g' => "pax global header (`g`)".into(),
        b'L' => "GNU long name (`L`)".into(),
        b'K' => "GNU long link name (`K`)".into(),
        other if other.is_ascii_graphic() => format!("entry type `{}`", other as char),
        other => format!("entry type byte {other}"),
    }
}

fn scan_tar<R, F>(
    reader: R,
    compression: Compression,
    file: &str,
    sink: &mut ProblemSink,
    mut on_member: F,
) -> anyhow::Result<ScanSummary>
where
    R: Read,
    F: FnMut(&Member<'_>, &mut dyn Read) -> anyhow::Result<()>,
{
    let f = Some(file);
    let state = StreamState::default();
    let mut probe = Probe { inner: reader, state: &state };
    let mut group = Grouping { current_key: None, current_fields: HashSet::new(), seen: HashMap::new(), samples: 0 };
    let mut members = 0u64;
    let mut member_bytes = 0u64;
    // Where the tar stream should be after the last entry's (padded) data.
    let mut expected_end = 0u64;
    // Whether the entries ended at an end-of-archive block or end of file (not at an error).
    let mut ended = false;

    {
        let mut archive = tar::Archive::new(&mut probe);
        let entries = match archive.entries() {
            Ok(entries) => Some(entries.raw(true)),
            Err(e) => {
                sink.push(f, ProblemKind::TarError, e.to_string());
                None
            }
        };
        if let Some(mut entries) = entries {
            loop {
                let mut entry = match entries.next() {
                    None => {
                        ended = true;
                        break;
                    }
                    Some(Err(e)) => {
                        let (kind, msg) = state.classify(compression, &e);
                        sink.push(f, kind, msg);
                        break;
                    }
                    Some(Ok(entry)) => entry,
                };
                let size = entry.size();
                expected_end = entry.raw_file_position().saturating_add(round_up(size));
                let header = entry.header();
                let raw_name = header.path_bytes().into_owned();
                let shown = String::from_utf8_lossy(&raw_name).into_owned();
                let flag = header.as_bytes()[156];

                if header.as_ustar().is_none() {
                    let what = if header.as_gnu().is_some() {
                        "a GNU tar header (magic `ustar  `)".to_string()
                    } else {
                        let b = header.as_bytes();
                        format!(
                            "not a ustar header (magic {:?}, version {:?})",
                            String::from_utf8_lossy(&b[257..263]),
                            String::from_utf8_lossy(&b[263..265])
                        )
                    };
                    sink.push(f, ProblemKind::NotUstar, format!("member `{shown}` has {what}"));
                }
                match flag {
                    b'0' => {}
                    b'\0' => sink.push(
                        f,
                        ProblemKind::BadHeader,
                        format!("member `{shown}` has entry type NUL (old-style regular file), not `0`"),
                    ),
                    other => {
                        sink.push(
                            f,
                            ProblemKind::NonRegularMember,
                            format!("member `{shown}` is a {}", entry_type_name(other)),
                        );
                        continue;
                    }
                }
                match header.mode() {
                    Ok(0o644) => {}
                    Ok(mode) => {
                        sink.push(f, ProblemKind::BadMode, format!("member `{shown}` has mode {mode:o}, not 644"))
                    }
                    Err(e) => sink.push(f, ProblemKind::BadHeader, format!("member `{shown}`: mode: {e}")),
                }
                match (header.uid(), header.gid()) {
                    (Ok(0), Ok(0)) => {}
                    (Ok(uid), Ok(gid)) => sink.push(
                        f,
                        ProblemKind::BadOwner,
                        format!("member `{shown}` has uid/gid {uid}/{gid}, not 0/0"),
                    ),
                    (Err(e), _) | (_, Err(e)) => {
                        sink.push(f, ProblemKind::BadHeader, format!("member `{shown}`: uid/gid: {e}"))
                    }
                }
                if header.as_ustar().is_some_and(|u| u.prefix[0] != 0) {
                    sink.push(f, ProblemKind::BadMemberName, format!("member `{shown}` uses the ustar prefix field"));
                }
                let Ok(name) = String::from_utf8(raw_name) else {
                    sink.push(f, ProblemKind::BadMemberName, format!("member name `{shown}` is not UTF-8"));
                    continue;
                };
                if name.len() > MAX_MEMBER_NAME {
                    sink.push(
                        f,
                        ProblemKind::NameTooLong,
                        format!("member name `{name}` is {} bytes (limit {MAX_MEMBER_NAME})", name.len()),
                    );
                }
                let (key, field) = match name.split_once('.') {
                    Some((key, field)) => {
                        if let Some(p) = field_problem(field) {
                            sink.push(f, ProblemKind::BadField, format!("member `{name}`: {p}"));
                        }
                        (key, field)
                    }
                    None => {
                        sink.push(f, ProblemKind::BadMemberName, format!("member `{name}` has no `.field` extension"));
                        (name.as_str(), "")
                    }
                };

                let starts_sample = group.current_key.as_deref() != Some(key);
                if starts_sample {
                    if let Some(p) = key_problem(key) {
                        sink.push(f, ProblemKind::BadKey, format!("member `{name}`: {p}"));
                    }
                    if let Some(first) = group.seen.get(key) {
                        sink.push(
                            f,
                            ProblemKind::NonAdjacent,
                            format!(
                                "members of key `{key}` are not adjacent: sample {} and again at sample {}",
                                first, group.samples
                            ),
                        );
                    } else {
                        group.seen.insert(key.to_string(), group.samples);
                    }
                    group.samples += 1;
                    group.current_key = Some(key.to_string());
                    group.current_fields.clear();
                }
                if !group.current_fields.insert(field.to_string()) {
                    sink.push(f, ProblemKind::DuplicateField, format!("sample `{key}` has field `{field}` twice"));
                }

                let member =
                    Member { name: &name, key, field, size, index: members, sample: group.samples - 1, starts_sample };
                members += 1;
                member_bytes = member_bytes.saturating_add(size);
                if let Err(e) = on_member(&member, &mut entry) {
                    if state.broken() {
                        let (kind, msg) = state.classify(compression, &e);
                        sink.push(f, kind, format!("reading member `{name}`: {msg}"));
                        ended = false;
                        break;
                    }
                    return Err(e.context(format!("{file}: member `{name}`")));
                }
            }
        }
    }

    let mut complete = false;
    if ended {
        let pos = state.pos.get();
        if pos <= expected_end {
            sink.push(f, ProblemKind::MissingEndOfArchive, "archive ends without the two zero blocks that close a tar");
        } else {
            // One zero block was read; the rest must be at least one more zero block and zeros.
            let mut buf = vec![0u8; BUF_SIZE];
            let mut zeros = 0u64;
            let mut bad = false;
            loop {
                match probe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if !bad {
                            if let Some(i) = buf[..n].iter().position(|b| *b != 0) {
                                sink.push(
                                    f,
                                    ProblemKind::TrailingData,
                                    format!(
                                        "non-zero data after the end-of-archive block, at tar byte {}",
                                        pos + zeros + i as u64
                                    ),
                                );
                                bad = true;
                            }
                            zeros += n as u64;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let (kind, msg) = state.classify(compression, &e);
                        sink.push(f, kind, msg);
                        break;
                    }
                }
            }
            let read_ok = state.error.borrow().is_none();
            if read_ok && !bad && zeros < BLOCK {
                sink.push(
                    f,
                    ProblemKind::MissingEndOfArchive,
                    "archive ends after one zero block; a tar ends with two",
                );
            }
            complete = read_ok;
        }
    }

    Ok(ScanSummary { compression, members, samples: group.samples, member_bytes, complete, problems: Vec::new() })
}

/// Shard-building helpers shared by the tests of this module, `verify` and `inspect`.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Write;

    /// A ustar header exactly as etd writes it.
    pub fn header(name: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).expect("path fits");
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        h
    }

    /// A tar of `(member name, data)` in order, written as etd writes it.
    pub fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            b.append(&header(name, data.len() as u64), *data).expect("append");
        }
        b.into_inner().expect("finish")
    }

    /// Append to `out` one hand-made header block with entry type `flag` and GNU magic
    /// (`ustar  `), followed by `data` padded to a block.
    pub fn raw_member(out: &mut Vec<u8>, name: &str, flag: u8, data: &[u8]) {
        let mut block = [0u8; 512];
        block[..name.len()].copy_from_slice(name.as_bytes());
        block[100..108].copy_from_slice(b"0000644\0");
        block[108..116].copy_from_slice(b"0000000\0");
        block[116..124].copy_from_slice(b"0000000\0");
        block[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        block[136..148].copy_from_slice(b"00000000000\0");
        block[156] = flag;
        block[257..263].copy_from_slice(b"ustar ");
        block[263..265].copy_from_slice(b" \0");
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&block);
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }

    /// One zstd frame of `bytes`.
    pub fn zstd_of(bytes: &[u8]) -> Vec<u8> {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        enc.write_all(bytes).expect("compress");
        enc.finish().expect("finish")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    type Seen = Vec<(String, String, String, u64, u64, bool, Vec<u8>)>;

    fn scan(bytes: &[u8], compression: Compression, read_data: bool) -> (ScanSummary, Seen) {
        let mut seen = Vec::new();
        let summary = scan_stream(bytes, compression, "s.tar", |m, data| {
            let mut buf = Vec::new();
            if read_data {
                data.read_to_end(&mut buf)?;
            }
            seen.push((
                m.name.to_string(),
                m.key.to_string(),
                m.field.to_string(),
                m.size,
                m.sample,
                m.starts_sample,
                buf,
            ));
            Ok(())
        })
        .expect("scan");
        (summary, seen)
    }

    fn kinds(s: &ScanSummary) -> Vec<&str> {
        s.problems.iter().map(|p| p.kind.as_str()).collect()
    }

    #[test]
    fn reads_members_and_groups_samples() {
        let tar = tar_of(&[("a.npy", b"12345"), ("a.json", b"{}"), ("b.npy", b"xyz")]);
        for (bytes, c) in [(tar.clone(), Compression::None), (zstd_of(&tar), Compression::Zstd)] {
            let (s, seen) = scan(&bytes, c, true);
            assert!(s.problems.is_empty(), "{:?}", s.problems);
            assert!(s.complete);
            assert_eq!((s.members, s.samples, s.member_bytes), (3, 2, 10));
            assert_eq!(seen[0], ("a.npy".into(), "a".into(), "npy".into(), 5, 0, true, b"12345".to_vec()));
            assert_eq!(seen[1], ("a.json".into(), "a".into(), "json".into(), 2, 0, false, b"{}".to_vec()));
            assert_eq!(seen[2], ("b.npy".into(), "b".into(), "npy".into(), 3, 1, true, b"xyz".to_vec()));
        }
    }

    #[test]
    fn unread_and_partly_read_data_is_skipped() {
        let big = vec![7u8; 5000];
        let tar = tar_of(&[("a.npy", &big), ("b.npy", b"x")]);
        let mut sizes = Vec::new();
        let s = scan_stream(&tar[..], Compression::None, "s.tar", |m, data| {
            let mut two = [0u8; 2];
            if m.key == "a" {
                data.read_exact(&mut two)?;
            }
            sizes.push(m.size);
            Ok(())
        })
        .expect("scan");
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(sizes, vec![5000, 1]);
    }

    #[test]
    fn empty_archive_is_fine() {
        let tar = tar_of(&[]);
        let (s, _) = scan(&tar, Compression::None, false);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.samples, 0);
    }

    #[test]
    fn end_of_archive_rules() {
        let tar = tar_of(&[("a.npy", b"1")]);
        let no_end = &tar[..tar.len() - 1024];
        let (s, _) = scan(no_end, Compression::None, false);
        assert_eq!(kinds(&s), vec!["missing-end-of-archive"]);
        let one_block = &tar[..tar.len() - 512];
        let (s, _) = scan(one_block, Compression::None, false);
        assert_eq!(kinds(&s), vec!["missing-end-of-archive"]);
        let mut extra = tar.clone();
        extra.extend_from_slice(&[0u8; 512]);
        extra.extend_from_slice(b"junk");
        let (s, _) = scan(&extra, Compression::None, false);
        assert_eq!(kinds(&s), vec!["trailing-data"]);
        // Extra zero padding (like GNU tar's record size) is fine.
        let mut padded = tar.clone();
        padded.extend_from_slice(&[0u8; 8192]);
        let (s, _) = scan(&padded, Compression::None, false);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }

    #[test]
    fn truncation_is_a_problem_not_an_error() {
        let tar = tar_of(&[("a.npy", &[1u8; 3000]), ("b.npy", b"1")]);
        for cut in [100, 700, 2000] {
            let (s, _) = scan(&tar[..cut], Compression::None, false);
            assert_eq!(kinds(&s), vec!["truncated"], "cut {cut}: {:?}", s.problems);
            let (s, _) = scan(&tar[..cut], Compression::None, true);
            assert!(kinds(&s).contains(&"truncated"), "cut {cut}: {:?}", s.problems);
        }
        let z = zstd_of(&tar);
        let (s, _) = scan(&z[..z.len() / 2], Compression::Zstd, true);
        assert_eq!(kinds(&s), vec!["truncated"], "{:?}", s.problems);
    }

    #[test]
    fn bytes_after_the_zstd_frame() {
        let tar = tar_of(&[("a.npy", b"1")]);
        let mut z = zstd_of(&tar);
        z.extend_from_slice(&zstd_of(&tar));
        let (s, _) = scan(&z, Compression::Zstd, false);
        assert_eq!(kinds(&s), vec!["trailing-data"]);
        let (s, _) = scan(b"not zstd at all", Compression::Zstd, false);
        assert_eq!(kinds(&s), vec!["zstd-error"], "{:?}", s.problems);
    }

    #[test]
    fn checksum_error_is_reported() {
        let mut tar = tar_of(&[("a.npy", b"1"), ("b.npy", b"2")]);
        tar[512 + 512] ^= 1; // name of the second header
        let (s, seen) = scan(&tar, Compression::None, false);
        assert_eq!(kinds(&s), vec!["tar-error"]);
        assert!(s.problems[0].message.contains("checksum"), "{:?}", s.problems);
        assert_eq!(seen.len(), 1);
        assert!(!s.complete);
    }

    #[test]
    fn member_rules() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header("a.npy", 1);
        h.set_mode(0o755);
        h.set_uid(1000);
        h.set_cksum();
        b.append(&h, &b"1"[..]).expect("append");
        for (name, data) in [
            ("_x.npy", &b"1"[..]),
            ("c.b..npy", b"1"),
            ("d", b"1"),
            ("e.NPY", b"1"),
            ("f.npy", b"1"),
            ("f.npy", b"2"),
            ("g.npy", b"1"),
            ("f.json", b"1"),
        ] {
            b.append(&header(name, data.len() as u64), data).expect("append");
        }
        let mut dir = tar::Header::new_ustar();
        dir.set_path("dir/").expect("path");
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        dir.set_cksum();
        b.append(&dir, io::empty()).expect("append");
        let tar = b.into_inner().expect("finish");
        let (s, seen) = scan(&tar, Compression::None, false);
        let mut k = kinds(&s);
        k.sort();
        assert_eq!(
            k,
            vec![
                "bad-field",
                "bad-field",
                "bad-key",
                "bad-member-name",
                "bad-mode",
                "bad-owner",
                "duplicate-field",
                "non-adjacent",
                "non-regular-member"
            ],
            "{:#?}",
            s.problems
        );
        let msg =
            |kind: &str| s.problems.iter().filter(|p| p.kind == kind).map(|p| p.message.clone()).collect::<Vec<_>>();
        assert!(msg("bad-key")[0].contains("`_x`"));
        assert!(msg("bad-field")[0].contains("`b..npy`"));
        assert!(msg("bad-field")[1].contains("`NPY`"));
        assert!(msg("non-regular-member")[0].contains("directory"));
        assert!(msg("non-adjacent")[0].contains("`f`"));
        assert_eq!(seen.len(), 9);
        // `f` then `g` then `f` again: three samples, not two.
        assert_eq!(s.samples, 8);
    }

    #[test]
    fn gnu_long_name_is_rejected() {
        let long = format!("{}.npy", "k".repeat(120));
        let mut out = Vec::new();
        raw_member(&mut out, "././@LongLink", b'L', format!("{long}\0").as_bytes());
        let mut b = tar::Builder::new(out);
        b.append(&header(&long[..100], 1), &b"1"[..]).expect("append");
        b.append(&header("ok.npy", 1), &b"1"[..]).expect("append");
        let tar = b.into_inner().expect("finish");
        let (s, seen) = scan(&tar, Compression::None, false);
        let mut k = kinds(&s);
        k.sort();
        assert_eq!(k, vec!["bad-member-name", "non-regular-member", "not-ustar"], "{:#?}", s.problems);
        assert!(s.problems.iter().any(|p| p.message.contains("GNU long name")));
        // The raw view does not apply the long name: the member is seen with its 100-byte name.
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0.len(), 100);
    }

    #[test]
    fn problems_are_capped_per_kind() {
        let names: Vec<String> = (0..60).map(|i| format!("_k{i}.npy")).collect();
        let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"1"[..])).collect();
        let tar = tar_of(&members);
        let (s, _) = scan(&tar, Compression::None, false);
        assert_eq!(s.problems.len() as u64, MAX_PROBLEMS_PER_KIND + 1);
        assert!(s.problems.last().is_some_and(|p| p.message.contains("10 more")));
    }

    #[test]
    fn callback_errors_propagate() {
        let tar = tar_of(&[("a.npy", b"1")]);
        let err = scan_stream(&tar[..], Compression::None, "s.tar", |_, _| anyhow::bail!("nope"))
            .expect_err("callback error");
        assert!(format!("{err:#}").contains("nope"));
    }

    #[test]
    fn scan_shard_decides_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tar = tar_of(&[("a.npy", b"1")]);
        let plain = dir.path().join("x-000000.tar");
        let zst = dir.path().join("x-000000.tar.zst");
        fs::write(&plain, &tar).expect("write");
        fs::write(&zst, zstd_of(&tar)).expect("write");
        for p in [&plain, &zst] {
            let s = scan_shard(p, |_, _| Ok(())).expect("scan");
            assert!(s.problems.is_empty() && s.samples == 1, "{:?}", s.problems);
        }
        assert_eq!(scan_shard(&zst, |_, _| Ok(())).expect("scan").compression, Compression::Zstd);
        let err = scan_shard(&dir.path().join("x.zip"), |_, _| Ok(())).expect_err("bad name");
        assert!(err.to_string().contains("x.zip"));
        let err = scan_shard(&dir.path().join("gone.tar"), |_, _| Ok(())).expect_err("missing");
        assert!(err.to_string().contains("gone.tar"), "{err}");
    }
}
