//! The fetch journal (`journal.jsonl`): one JSON line per finished unit, appended and flushed as
//! each unit ends, so a killed run loses at most the units in flight. The failure ledger
//! (`failures.jsonl`) lists items that failed permanently.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fs_err as fs;
use serde::{Deserialize, Serialize};

/// One input file as fetch saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// Path relative to the source folder, with `/` separators.
    pub path: String,
    /// The sample field this file becomes (`fits`, `txt`, ...).
    pub field: String,
    pub size: u64,
    pub sha256: String,
    /// Modification time in nanoseconds since the epoch, to skip unchanged files on re-fetch.
    pub mtime_ns: i64,
}

/// A journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JournalEntry {
    /// A unit whose inputs are in place.
    Done { unit: String, inputs: Vec<InputRecord> },
    /// A unit recorded earlier whose inputs are gone from the source (local files deleted).
    Removed { unit: String },
}

impl JournalEntry {
    pub fn unit(&self) -> &str {
        match self {
            JournalEntry::Done { unit, .. } | JournalEntry::Removed { unit } => unit,
        }
    }
}

/// A line of `failures.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureEntry {
    pub unit: String,
    /// `fetch` or `shard`.
    pub stage: String,
    pub reason: String,
}

/// The journal, read at open and appended to afterwards.
pub struct FetchJournal {
    path: PathBuf,
    file: fs::File,
    /// Latest entry per unit.
    entries: BTreeMap<String, JournalEntry>,
}

impl FetchJournal {
    /// Open (creating) the journal. A torn last line from a killed run is cut off.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut file = fs::OpenOptions::new().create(true).truncate(false).read(true).append(true).open(path)?;
        let (entries, good_len) = read_entries(path)?;
        let len = file.metadata()?.len();
        if good_len < len {
            tracing::warn!("journal {} ends in an incomplete line (interrupted run); dropping it", path.display());
            file.file().set_len(good_len).with_context(|| format!("cannot truncate {}", path.display()))?;
            file.seek(SeekFrom::End(0))?;
        }
        Ok(FetchJournal { path: path.to_path_buf(), file, entries })
    }

    pub fn get(&self, unit: &str) -> Option<&JournalEntry> {
        self.entries.get(unit)
    }

    /// Units whose latest entry is `Done`.
    pub fn done_units(&self) -> impl Iterator<Item = &str> {
        self.entries.values().filter(|e| matches!(e, JournalEntry::Done { .. })).map(|e| e.unit())
    }

    /// Append one entry and flush it to the OS.
    pub fn append(&mut self, entry: JournalEntry) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()?;
        self.entries.insert(entry.unit().to_string(), entry);
        Ok(())
    }

    /// fsync the journal (at the end of a run).
    pub fn sync(&self) -> anyhow::Result<()> {
        self.file.file().sync_all().with_context(|| format!("cannot sync {}", self.path.display()))
    }
}

/// Where each unit's latest entry sits in the journal (byte offset and length of its line), for
/// units whose latest entry is `Done`. Lets `shard` hold a few bytes per unit instead of records.
pub type JournalIndex = BTreeMap<String, (u64, u32)>;

/// Index the journal (missing file: empty).
pub fn index(path: &Path) -> anyhow::Result<JournalIndex> {
    let mut index = JournalIndex::new();
    if !path.exists() {
        return Ok(index);
    }
    for_each_entry(path, |entry, offset, len| {
        match entry {
            JournalEntry::Done { unit, .. } => {
                let len =
                    u32::try_from(len).with_context(|| format!("{}: a journal line is too long", path.display()))?;
                index.insert(unit, (offset, len));
            }
            JournalEntry::Removed { unit } => {
                index.remove(&unit);
            }
        }
        Ok(())
    })?;
    Ok(index)
}

/// Call `f(entry, offset, length)` for each complete line of the journal; returns the length of
/// the complete lines (a torn last line from a killed run is not counted).
fn for_each_entry(
    path: &Path,
    mut f: impl FnMut(JournalEntry, u64, usize) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut reader = BufReader::new(fs::File::open(path)?);
    let mut line = Vec::new();
    let (mut offset, mut number) = (0u64, 0);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(offset);
        }
        number += 1;
        let entry: JournalEntry = serde_json::from_slice(&line)
            .with_context(|| format!("{}:{number}: not a journal entry", path.display()))?;
        f(entry, offset, n)?;
        offset += n as u64;
    }
}

/// Read the entry at `(offset, len)` of an open journal (safe to call from several threads).
pub fn read_entry_at(file: &std::fs::File, path: &Path, (offset, len): (u64, u32)) -> anyhow::Result<JournalEntry> {
    let mut buf = vec![0u8; len as usize];
    read_exact_at(file, &mut buf, offset)
        .with_context(|| format!("cannot read {} at byte {offset}", path.display()))?;
    serde_json::from_slice(&buf).with_context(|| format!("{} at byte {offset}: not a journal entry", path.display()))
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Entries (last one per unit wins) and the length of the complete lines.
fn read_entries(path: &Path) -> anyhow::Result<(BTreeMap<String, JournalEntry>, u64)> {
    let mut entries = BTreeMap::new();
    let good_len = for_each_entry(path, |entry, _, _| {
        entries.insert(entry.unit().to_string(), entry);
        Ok(())
    })?;
    Ok((entries, good_len))
}

/// Read `failures.jsonl` (missing file: empty).
pub fn read_failures(path: &Path) -> anyhow::Result<Vec<FailureEntry>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fs::read_to_string(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}: not a failure entry", path.display(), i + 1))
        })
        .collect()
}

/// Replace the entries of `stage` in `failures.jsonl` with `new` (sorted by unit), keeping the
/// other stages' entries, atomically.
pub fn replace_failures(path: &Path, stage: &str, mut new: Vec<FailureEntry>) -> anyhow::Result<()> {
    let mut all: Vec<FailureEntry> = read_failures(path)?.into_iter().filter(|f| f.stage != stage).collect();
    new.sort_by(|a, b| a.unit.cmp(&b.unit));
    all.extend(new);
    if all.is_empty() && !path.exists() {
        return Ok(());
    }
    let mut bytes = Vec::new();
    for f in &all {
        bytes.extend(serde_json::to_vec(f)?);
        bytes.push(b'\n');
    }
    super::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(unit: &str, size: u64) -> JournalEntry {
        JournalEntry::Done {
            unit: unit.into(),
            inputs: vec![InputRecord {
                path: format!("{unit}.fits"),
                field: "fits".into(),
                size,
                sha256: "00".into(),
                mtime_ns: 1,
            }],
        }
    }

    #[test]
    fn append_reopen_and_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = FetchJournal::open(&path).unwrap();
        j.append(done("a", 1)).unwrap();
        j.append(done("b", 2)).unwrap();
        j.append(done("a", 3)).unwrap();
        drop(j);
        // A run killed mid-write leaves half a line.
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"status\":\"done\",\"unit\":\"c\"").unwrap();
        drop(f);
        let mut j = FetchJournal::open(&path).unwrap();
        assert_eq!(j.get("a"), Some(&done("a", 3)));
        assert!(j.get("c").is_none());
        j.append(done("c", 4)).unwrap();
        let all = read_entries(&path).unwrap().0;
        assert_eq!(all.len(), 3);
        assert_eq!(all["c"], done("c", 4));
        j.append(JournalEntry::Removed { unit: "b".into() }).unwrap();
        let idx = index(&path).unwrap();
        assert_eq!(idx.keys().collect::<Vec<_>>(), ["a", "c"]);
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(read_entry_at(&file, &path, idx["a"]).unwrap(), done("a", 3));
        assert_eq!(read_entry_at(&file, &path, idx["c"]).unwrap(), done("c", 4));
    }

    #[test]
    fn failures_are_replaced_per_stage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failures.jsonl");
        let f = |u: &str, s: &str| FailureEntry { unit: u.into(), stage: s.into(), reason: "r".into() };
        replace_failures(&path, "fetch", vec![f("x", "fetch")]).unwrap();
        replace_failures(&path, "shard", vec![f("b", "shard"), f("a", "shard")]).unwrap();
        replace_failures(&path, "shard", vec![f("c", "shard")]).unwrap();
        let all = read_failures(&path).unwrap();
        assert_eq!(all, vec![f("x", "fetch"), f("c", "shard")]);
    }
}
