//! The fetch journal (`journal.jsonl`): one JSON line per finished unit, appended and flushed as
//! each unit ends, so a killed run loses at most the units in flight. The failure ledger
//! (`failures.jsonl`) lists items that failed permanently.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fs_err as fs;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::failure::Stage;

/// One input file as fetch saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// Path relative to the source folder, with `/` separators.
    pub path: String,
    /// The sample field this file becomes (`fits`, `txt`, ...).
    pub field: String,
    pub size: u64,
    pub sha256: String,
    /// Modification time in nanoseconds since the epoch (local files; 0 for fetched payloads,
    /// and for a file modified or changed within [`RACY_NS`] of the fetch: see
    /// [`recordable_times`]).
    #[serde(default)]
    pub mtime_ns: i64,
    /// Status-change time (`ctime`) in nanoseconds since the epoch, recorded with `mtime_ns`
    /// (0 without it). A program can set a file's modification time back, not its ctime.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ctime_ns: i64,
    /// The URL the payload was fetched from (networked sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Times this close to the fetch (2 s) are not recorded: on a filesystem with coarse timestamps
/// a rewrite within the same tick would keep them, so such a file is hashed instead (git's
/// "racily clean" files). Both times count: a file copied with its modification time kept
/// (`cp -p`, `rsync -a`) has an old mtime but a change time of now.
pub const RACY_NS: i64 = 2_000_000_000;

/// A time in nanoseconds since the epoch (0 for a time before it or beyond `i64`).
fn epoch_ns(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).ok().and_then(|d| i64::try_from(d.as_nanos()).ok()).unwrap_or(0)
}

/// A file's modification and status-change times in nanoseconds since the epoch (0 if unknown;
/// the change time is 0 off Unix).
pub fn file_times(meta: &std::fs::Metadata) -> (i64, i64) {
    #[cfg(unix)]
    let ctime = {
        use std::os::unix::fs::MetadataExt;
        meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec())
    };
    #[cfg(not(unix))]
    let ctime = 0;
    (meta.modified().map_or(0, epoch_ns), ctime)
}

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    epoch_ns(std::time::SystemTime::now())
}

/// The `(mtime_ns, ctime_ns)` fetch records for a file stat'ed (before hashing) at `now`: its
/// times, or `(0, 0)` when it was modified or changed within [`RACY_NS`] of `now` or has no times.
pub fn recordable_times(meta: &std::fs::Metadata, now: i64) -> (i64, i64) {
    let (mtime, ctime) = file_times(meta);
    if mtime == 0 || ctime == 0 || now.saturating_sub(mtime.max(ctime)) < RACY_NS {
        (0, 0)
    } else {
        (mtime, ctime)
    }
}

impl InputRecord {
    /// Whether `meta` (the file now) shows it as fetch recorded it, without reading it: the same
    /// size, modification time and change time. Any write since changes both times, and setting
    /// the modification time back changes the change time. A record without times (a racy file,
    /// a payload, an older journal) never matches: the caller hashes the file.
    pub fn stat_matches(&self, meta: &std::fs::Metadata) -> bool {
        self.mtime_ns != 0
            && self.ctime_ns != 0
            && meta.len() == self.size
            && file_times(meta) == (self.mtime_ns, self.ctime_ns)
    }
}

/// A journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", try_from = "JournalLine")]
pub enum JournalEntry {
    /// A unit whose inputs are in place. `params` are the source settings that shaped the
    /// requests (filters, size, ...): a unit fetched with other settings is fetched again.
    Done {
        unit: String,
        inputs: Vec<InputRecord>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<String>,
        /// The archive's task that made the inputs (ATLAS), to be deleted on the server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<String>,
    },
    /// A unit recorded earlier whose inputs are gone from the source (local files deleted).
    Removed { unit: String },
    /// A unit that failed permanently (no coverage, refused by the archive, invalid answers).
    /// `params` as for `Done`: a failure with other settings or at another endpoint is tried again.
    Failed {
        unit: String,
        kind: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<String>,
    },
    /// The archive accepted a task for the unit (ATLAS), recorded the moment it answered, so a
    /// rerun continues the task instead of submitting another.
    Submitted {
        unit: String,
        task: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<String>,
    },
    /// A task was deleted on the server (or was already gone).
    TaskDeleted { unit: String, task: String },
}

/// A journal line as read: every field of every kind of entry, in one flat struct. Reading
/// through it and then [`JournalEntry::try_from`] gives what the internally tagged enum's own
/// `Deserialize` gives, without buffering each line into serde's generic content first (that
/// buffering was most of the parse, and `shard` parses every line twice: scan, then per sample).
#[derive(Deserialize)]
struct JournalLine {
    status: Status,
    unit: String,
    #[serde(default)]
    inputs: Option<Vec<InputRecord>>,
    #[serde(default)]
    params: Option<String>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Done,
    Removed,
    Failed,
    Submitted,
    TaskDeleted,
}

impl TryFrom<JournalLine> for JournalEntry {
    type Error = String;

    fn try_from(l: JournalLine) -> Result<Self, String> {
        let missing = |field: &str| format!("missing field `{field}`");
        Ok(match l.status {
            Status::Done => JournalEntry::Done {
                unit: l.unit,
                inputs: l.inputs.ok_or_else(|| missing("inputs"))?,
                params: l.params,
                task: l.task,
            },
            Status::Removed => JournalEntry::Removed { unit: l.unit },
            Status::Failed => JournalEntry::Failed {
                unit: l.unit,
                kind: l.kind.ok_or_else(|| missing("kind"))?,
                reason: l.reason.ok_or_else(|| missing("reason"))?,
                task: l.task,
                params: l.params,
            },
            Status::Submitted => {
                JournalEntry::Submitted { unit: l.unit, task: l.task.ok_or_else(|| missing("task"))?, params: l.params }
            }
            Status::TaskDeleted => {
                JournalEntry::TaskDeleted { unit: l.unit, task: l.task.ok_or_else(|| missing("task"))? }
            }
        })
    }
}

impl JournalEntry {
    pub fn unit(&self) -> &str {
        match self {
            JournalEntry::Done { unit, .. }
            | JournalEntry::Removed { unit }
            | JournalEntry::Failed { unit, .. }
            | JournalEntry::Submitted { unit, .. }
            | JournalEntry::TaskDeleted { unit, .. } => unit,
        }
    }
}

/// A line of `failures.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureEntry {
    pub unit: String,
    /// `fetch` or `shard`.
    pub stage: String,
    /// A short category (`no-coverage`, `refused`, `invalid-answer`, ...), for summaries.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub reason: String,
}

/// The journal, read at open and appended to afterwards.
pub struct FetchJournal {
    path: PathBuf,
    file: fs::File,
    /// Latest entry per unit as earlier runs left it (when opened with `open`).
    entries: BTreeMap<String, JournalEntry>,
}

impl FetchJournal {
    /// Open (creating) the journal and keep its entries in memory (the local source compares
    /// files with what it recorded). What this run appends is not added to them: the local
    /// source compares each unit once, and a map of every unit just recorded was built only to
    /// be freed between `fetch` and `shard` in `etd run`. A torn last line from a killed run is
    /// cut off.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_with(path, true)
    }

    /// Open (creating) the journal for appending only: nothing is held in memory, so a fetch of
    /// millions of units does not grow with the journal. A torn last line is cut off.
    pub fn open_append(path: &Path) -> anyhow::Result<Self> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, keep: bool) -> anyhow::Result<Self> {
        let mut file = fs::OpenOptions::new().create(true).truncate(false).read(true).append(true).open(path)?;
        let mut entries = BTreeMap::new();
        let good_len = for_each_entry(path, |entry, _, _| {
            if keep {
                entries.insert(entry.unit().to_string(), entry);
            }
            Ok(())
        })?;
        let len = file.metadata()?.len();
        if good_len < len {
            tracing::warn!("journal {} ends in an incomplete line (interrupted run); dropping it", path.display());
            file.file().set_len(good_len).with_context(|| format!("cannot truncate {}", path.display()))?;
            file.seek(SeekFrom::End(0))?;
        }
        Ok(FetchJournal { path: path.to_path_buf(), file, entries })
    }

    /// The latest entry an earlier run recorded for `unit`.
    pub fn get(&self, unit: &str) -> Option<&JournalEntry> {
        self.entries.get(unit)
    }

    /// Units whose latest entry, as earlier runs left it, is `Done`.
    pub fn done_units(&self) -> impl Iterator<Item = &str> {
        self.entries.values().filter(|e| matches!(e, JournalEntry::Done { .. })).map(|e| e.unit())
    }

    /// Append one entry and flush it to the OS.
    pub fn append(&mut self, entry: JournalEntry) -> anyhow::Result<()> {
        self.append_all([entry])
    }

    /// Append entries in one write to the OS (units finished together: one system call, not one
    /// per line; a kill during it leaves at most a torn last line, cut off at the next open).
    pub fn append_all(&mut self, entries: impl IntoIterator<Item = JournalEntry>) -> anyhow::Result<()> {
        let mut lines = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut lines, &entry)?;
            lines.push(b'\n');
        }
        self.file.write_all(&lines)?;
        Ok(())
    }

    /// fsync the journal (at the end of a run).
    pub fn sync(&self) -> anyhow::Result<()> {
        self.file.file().sync_all().with_context(|| format!("cannot sync {}", self.path.display()))
    }
}

/// Where a unit's latest `Done` entry is: (journal number in its set, byte offset, line length).
/// Lets `shard` hold a few bytes per unit instead of records.
pub type JournalPos = (u16, u64, u32);

/// What the journals of a workdir say, latest entry per unit (later journals win).
#[derive(Debug, Default)]
pub struct JournalScan {
    /// Units whose latest entry is `Done` (with the expected params, see `scan_for`).
    pub done: BTreeMap<String, JournalPos>,
    /// Units done (or failed) with other source settings than expected: to be fetched again.
    pub stale: u64,
    /// The stale units by the params they were recorded with (None: none recorded).
    pub stale_from: BTreeMap<Option<String>, u64>,
    /// Units whose latest entry is `Failed`: (kind, reason).
    pub failed: BTreeMap<String, (String, String)>,
    /// Units with a task on the server still to finish: unit -> task URL.
    pub submitted: BTreeMap<String, String>,
    /// Tasks to delete on the server: task URL -> unit (finished, failed or stale ones not yet
    /// deleted).
    pub undeleted: BTreeMap<String, String>,
}

impl JournalScan {
    /// The fetch failures as failure-ledger entries, sorted by unit.
    pub fn failure_entries(&self) -> Vec<FailureEntry> {
        self.failed
            .iter()
            .map(|(unit, (kind, reason))| FailureEntry {
                unit: unit.clone(),
                stage: Stage::Fetch.into(),
                kind: kind.clone(),
                reason: reason.clone(),
            })
            .collect()
    }
}

/// Every journal of a workdir (its own and those of batch tasks), read together. Safe to use
/// while other processes append to them: a torn last line is not read.
pub struct JournalSet {
    paths: Vec<PathBuf>,
    files: Vec<fs::File>,
}

impl JournalSet {
    /// Open the journals that exist among `paths` (in this order).
    pub fn open(paths: Vec<PathBuf>) -> anyhow::Result<Self> {
        let paths: Vec<PathBuf> = paths.into_iter().filter(|p| p.exists()).collect();
        anyhow::ensure!(paths.len() <= usize::from(u16::MAX), "too many journals");
        let files = paths
            .iter()
            .map(|p| fs::File::open(p).with_context(|| format!("cannot open the journal {}", p.display())))
            .collect::<anyhow::Result<_>>()?;
        Ok(JournalSet { paths, files })
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Latest entry per unit over all journals.
    pub fn scan(&self) -> anyhow::Result<JournalScan> {
        self.scan_for(None)
    }

    /// Latest entry per unit; a `Done` unit whose params differ from `params` (when given)
    /// counts as not done (`stale`).
    pub fn scan_for(&self, params: Option<&str>) -> anyhow::Result<JournalScan> {
        let mut scan = JournalScan::default();
        // Stale unit -> its recorded params, interned (a few distinct values for many units).
        let mut stale: BTreeMap<String, usize> = BTreeMap::new();
        let mut seen: Vec<Option<String>> = Vec::new();
        let mut intern = |p: Option<String>| match seen.iter().position(|s| *s == p) {
            Some(i) => i,
            None => {
                seen.push(p);
                seen.len() - 1
            }
        };
        for (n, path) in self.paths.iter().enumerate() {
            for_each_entry(path, |entry, offset, len| {
                match entry {
                    JournalEntry::Done { unit, params: got, task, .. } => {
                        let len = u32::try_from(len)
                            .with_context(|| format!("{}: a journal line is too long", path.display()))?;
                        scan.failed.remove(&unit);
                        scan.submitted.remove(&unit);
                        if let Some(task) = task {
                            scan.undeleted.insert(task, unit.clone());
                        }
                        if params.is_some_and(|want| got.as_deref() != Some(want)) {
                            scan.done.remove(&unit);
                            stale.insert(unit, intern(got));
                        } else {
                            stale.remove(&unit);
                            scan.done.insert(unit, (n as u16, offset, len));
                        }
                    }
                    JournalEntry::Removed { unit } => {
                        scan.done.remove(&unit);
                        scan.failed.remove(&unit);
                        stale.remove(&unit);
                    }
                    JournalEntry::Failed { unit, kind, reason, task, params: got } => {
                        scan.done.remove(&unit);
                        scan.submitted.remove(&unit);
                        if let Some(task) = task {
                            scan.undeleted.insert(task, unit.clone());
                        }
                        if params.is_some_and(|want| got.as_deref() != Some(want)) {
                            // Failed with other settings or elsewhere: try again.
                            scan.failed.remove(&unit);
                            stale.insert(unit, intern(got));
                        } else {
                            stale.remove(&unit);
                            scan.failed.insert(unit, (kind, reason));
                        }
                    }
                    JournalEntry::Submitted { unit, task, params: got } => {
                        scan.done.remove(&unit);
                        scan.failed.remove(&unit);
                        stale.remove(&unit);
                        if params.is_some_and(|want| got.as_deref() != Some(want)) {
                            // Asked with other settings: cancel it, ask again.
                            scan.submitted.remove(&unit);
                            scan.undeleted.insert(task, unit);
                        } else {
                            scan.submitted.insert(unit, task);
                        }
                    }
                    JournalEntry::TaskDeleted { task, .. } => {
                        scan.undeleted.remove(&task);
                    }
                }
                Ok(())
            })?;
        }
        scan.stale = stale.len() as u64;
        for i in stale.into_values() {
            *scan.stale_from.entry(seen[i].clone()).or_default() += 1;
        }
        Ok(scan)
    }

    /// Read the entry at `pos` (safe to call from several threads).
    pub fn read(&self, (n, offset, len): JournalPos) -> anyhow::Result<JournalEntry> {
        let (file, path) = (&self.files[usize::from(n)], &self.paths[usize::from(n)]);
        let mut buf = vec![0u8; len as usize];
        crate::fsx::read_exact_at(file, &mut buf, offset)
            .with_context(|| format!("cannot read {} at byte {offset}", path.display()))?;
        serde_json::from_slice(&buf)
            .with_context(|| format!("{} at byte {offset}: not a journal entry", path.display()))
    }

    /// The inputs of the `Done` entry at `pos`.
    pub fn inputs(&self, pos: JournalPos) -> anyhow::Result<Vec<InputRecord>> {
        match self.read(pos)? {
            JournalEntry::Done { inputs, .. } => Ok(inputs),
            other => anyhow::bail!("journal index points at a non-`done` entry of {}", other.unit()),
        }
    }
}

/// Call `f(entry, offset, length)` for each complete line of the journal; returns the length of
/// the complete lines (a torn last line from a killed run is not counted). Lines are parsed a
/// batch at a time on every core and handed to `f` in order (a journal of 20,000 lines was
/// tens of milliseconds on one core at the start of every `shard`).
fn for_each_entry(
    path: &Path,
    mut f: impl FnMut(JournalEntry, u64, usize) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    /// Lines parsed together (bounds what is held at once).
    const BATCH: usize = 4096;
    let mut reader = BufReader::new(fs::File::open(path)?);
    let (mut offset, mut number) = (0u64, 0);
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        let mut end = false;
        while batch.len() < BATCH {
            let mut line = Vec::new();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                end = true;
                break;
            }
            batch.push(line);
        }
        let parsed: Vec<serde_json::Result<JournalEntry>> = if batch.len() > 1 {
            batch.par_iter().map(|line| serde_json::from_slice(line)).collect()
        } else {
            batch.iter().map(|line| serde_json::from_slice(line)).collect()
        };
        for (line, entry) in batch.iter().zip(parsed) {
            number += 1;
            let entry = entry.with_context(|| format!("{}:{number}: not a journal entry", path.display()))?;
            f(entry, offset, line.len())?;
            offset += line.len() as u64;
        }
        if end {
            return Ok(offset);
        }
    }
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
pub fn replace_failures(path: &Path, stage: Stage, mut new: Vec<FailureEntry>) -> anyhow::Result<()> {
    let mut all: Vec<FailureEntry> = read_failures(path)?.into_iter().filter(|f| f.stage != stage.as_str()).collect();
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
    crate::fsx::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(unit: &str, size: u64) -> JournalEntry {
        JournalEntry::Done {
            params: None,
            task: None,
            unit: unit.into(),
            inputs: vec![InputRecord {
                path: format!("{unit}.fits"),
                field: "fits".into(),
                size,
                sha256: "00".into(),
                mtime_ns: 1,
                ctime_ns: 0,
                url: None,
            }],
        }
    }

    #[test]
    fn every_kind_of_line_reads_back_as_written_and_bad_lines_are_named() {
        let entries = [
            done("a", 1),
            match done("b", 2) {
                JournalEntry::Done { unit, inputs, .. } => {
                    JournalEntry::Done { unit, inputs, params: Some("p".into()), task: Some("t".into()) }
                }
                other => other,
            },
            JournalEntry::Removed { unit: "c".into() },
            JournalEntry::Failed { unit: "d".into(), kind: "k".into(), reason: "r".into(), task: None, params: None },
            JournalEntry::Failed {
                unit: "e".into(),
                kind: "k".into(),
                reason: "r".into(),
                task: Some("t".into()),
                params: Some("p".into()),
            },
            JournalEntry::Submitted { unit: "f".into(), task: "t".into(), params: Some("p".into()) },
            JournalEntry::TaskDeleted { unit: "g".into(), task: "t".into() },
        ];
        for e in entries {
            let line = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<JournalEntry>(&line).unwrap(), e, "{line}");
        }
        // Field order does not matter, unknown fields are ignored (as by the tagged enum).
        let e: JournalEntry = serde_json::from_str(r#"{"unit":"c","later":1,"status":"removed"}"#).unwrap();
        assert_eq!(e, JournalEntry::Removed { unit: "c".into() });
        for (line, says) in [
            (r#"{"status":"done","unit":"a"}"#, "missing field `inputs`"),
            (r#"{"status":"failed","unit":"a","kind":"k"}"#, "missing field `reason`"),
            (r#"{"status":"submitted","unit":"a"}"#, "missing field `task`"),
            (r#"{"status":"removed"}"#, "missing field `unit`"),
            (r#"{"status":"gone","unit":"a"}"#, "unknown variant `gone`"),
            (r#"{"unit":"a"}"#, "missing field `status`"),
            (r#"{"status":"removed","unit":"a","unit":"b"}"#, "duplicate field `unit`"),
        ] {
            let e = serde_json::from_str::<JournalEntry>(line).unwrap_err().to_string();
            assert!(e.contains(says), "{line}: {e}");
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
        drop(j);
        let j = FetchJournal::open(&path).unwrap();
        assert_eq!(j.done_units().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(j.get("c"), Some(&done("c", 4)));
        drop(j);
        let mut j = FetchJournal::open_append(&path).unwrap();
        j.append(JournalEntry::Removed { unit: "b".into() }).unwrap();
        let set = JournalSet::open(vec![path.clone(), dir.path().join("missing.jsonl")]).unwrap();
        let scan = set.scan().unwrap();
        assert_eq!(scan.done.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(set.read(scan.done["a"]).unwrap(), done("a", 3));
        assert_eq!(set.read(scan.done["c"]).unwrap(), done("c", 4));
    }

    #[test]
    fn journals_longer_than_a_batch_are_read_in_order_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = FetchJournal::open_append(&path).unwrap();
        // 9,000 lines (three batches), unit u0005 recorded again near the end.
        j.append_all((0..8999).map(|i| done(&format!("u{i:04}"), i))).unwrap();
        j.append(done("u0005", 77)).unwrap();
        drop(j);
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"status\":\"done\"").unwrap();
        drop(f);
        let j = FetchJournal::open(&path).unwrap();
        assert_eq!(j.done_units().count(), 8999);
        assert_eq!(j.get("u0005"), Some(&done("u0005", 77)));
        assert_eq!(j.get("u8998"), Some(&done("u8998", 8998)));
        let set = JournalSet::open(vec![path.clone()]).unwrap();
        let scan = set.scan().unwrap();
        assert_eq!(scan.done.len(), 8999);
        assert_eq!(set.read(scan.done["u4097"]).unwrap(), done("u4097", 4097));
        assert_eq!(set.read(scan.done["u0005"]).unwrap(), done("u0005", 77));
        // A broken line in the second batch is named by its line number.
        let text = fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[5000] = "{\"status\":\"done\",\"unit\":3}";
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let e = format!("{:#}", JournalSet::open(vec![path.clone()]).unwrap().scan().unwrap_err());
        assert!(e.contains("journal.jsonl:5001: not a journal entry"), "{e}");
    }

    #[test]
    fn tasks_are_followed_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = FetchJournal::open_append(&path).unwrap();
        let p = Some("p1".to_string());
        let sub = |u: &str, t: &str, p: &Option<String>| JournalEntry::Submitted {
            unit: u.into(),
            task: t.into(),
            params: p.clone(),
        };
        j.append(sub("a", "T1", &p)).unwrap();
        j.append(sub("b", "T2", &p)).unwrap();
        j.append(sub("c", "T3", &Some("old".into()))).unwrap();
        j.append(sub("d", "T4", &p)).unwrap();
        j.append(JournalEntry::Done { unit: "a".into(), inputs: vec![], params: p.clone(), task: Some("T1".into()) })
            .unwrap();
        j.append(JournalEntry::Failed {
            unit: "d".into(),
            kind: "no-data".into(),
            reason: "r".into(),
            task: Some("T4".into()),
            params: p.clone(),
        })
        .unwrap();
        j.append(JournalEntry::TaskDeleted { unit: "d".into(), task: "T4".into() }).unwrap();
        let scan = JournalSet::open(vec![path]).unwrap().scan_for(Some("p1")).unwrap();
        assert_eq!(scan.done.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(scan.submitted, BTreeMap::from([("b".to_string(), "T2".to_string())]));
        // T1 finished but not deleted yet; T3 was asked with other settings.
        assert_eq!(scan.undeleted.keys().collect::<Vec<_>>(), ["T1", "T3"]);
        assert_eq!(scan.failed.keys().collect::<Vec<_>>(), ["d"]);
    }

    #[test]
    fn units_done_or_failed_with_other_params_are_stale_by_their_params() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = FetchJournal::open_append(&path).unwrap();
        let with = |e: JournalEntry, p: Option<&str>| match e {
            JournalEntry::Done { unit, inputs, task, .. } => {
                JournalEntry::Done { unit, inputs, task, params: p.map(String::from) }
            }
            other => other,
        };
        let failed = |u: &str, p: Option<&str>| JournalEntry::Failed {
            unit: u.into(),
            kind: "no-coverage".into(),
            reason: "r".into(),
            task: None,
            params: p.map(String::from),
        };
        j.append(with(done("a", 1), Some("p endpoint=A"))).unwrap();
        j.append(with(done("b", 1), Some("p endpoint=B"))).unwrap();
        j.append(with(done("c", 1), None)).unwrap();
        j.append(failed("d", Some("p endpoint=A"))).unwrap();
        j.append(failed("e", Some("p endpoint=B"))).unwrap();
        // A stale unit fetched again with the wanted params is no longer stale.
        j.append(with(done("f", 1), Some("p endpoint=A"))).unwrap();
        j.append(with(done("f", 1), Some("p endpoint=B"))).unwrap();
        let scan = JournalSet::open(vec![path]).unwrap().scan_for(Some("p endpoint=B")).unwrap();
        assert_eq!(scan.done.keys().collect::<Vec<_>>(), ["b", "f"]);
        assert_eq!(scan.failed.keys().collect::<Vec<_>>(), ["e"]);
        assert_eq!(scan.stale, 3);
        assert_eq!(scan.stale_from, BTreeMap::from([(None, 1), (Some("p endpoint=A".to_string()), 2)]));
    }

    #[test]
    fn later_journals_win_and_failures_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (dir.path().join("journal.jsonl"), dir.path().join("journal.task-1-of-2.jsonl"));
        let failed = |u: &str| JournalEntry::Failed {
            unit: u.into(),
            kind: "no-coverage".into(),
            reason: "r".into(),
            task: None,
            params: None,
        };
        let mut j1 = FetchJournal::open_append(&p1).unwrap();
        j1.append(done("a", 1)).unwrap();
        j1.append(failed("b")).unwrap();
        j1.append(failed("c")).unwrap();
        let mut j2 = FetchJournal::open_append(&p2).unwrap();
        j2.append(done("b", 2)).unwrap();
        j2.append(failed("a")).unwrap();
        let set = JournalSet::open(vec![p1, p2]).unwrap();
        let scan = set.scan().unwrap();
        assert_eq!(scan.done.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(scan.done["b"].0, 1);
        assert_eq!(set.inputs(scan.done["b"]).unwrap()[0].size, 2);
        let f = scan.failure_entries();
        assert_eq!(f.iter().map(|f| f.unit.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!((f[0].stage.as_str(), f[0].kind.as_str()), ("fetch", "no-coverage"));
    }

    #[test]
    fn failures_are_replaced_per_stage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failures.jsonl");
        let f = |u: &str, s: &str| FailureEntry {
            unit: u.into(),
            stage: s.into(),
            kind: String::new(),
            reason: "r".into(),
        };
        replace_failures(&path, Stage::Fetch, vec![f("x", "fetch")]).unwrap();
        replace_failures(&path, Stage::Shard, vec![f("b", "shard"), f("a", "shard")]).unwrap();
        replace_failures(&path, Stage::Shard, vec![f("c", "shard")]).unwrap();
        let all = read_failures(&path).unwrap();
        assert_eq!(all, vec![f("x", "fetch"), f("c", "shard")]);
    }

    #[test]
    fn racy_times_are_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        fs_err::write(&path, b"x").unwrap();
        let meta = fs_err::metadata(&path).unwrap();
        let (mtime, ctime) = file_times(&meta);
        assert!(mtime > 0 && ctime > 0);
        assert_eq!(recordable_times(&meta, now_ns()), (0, 0), "modified just now");
        let latest = mtime.max(ctime);
        assert_eq!(recordable_times(&meta, latest + RACY_NS - 1), (0, 0));
        assert_eq!(recordable_times(&meta, latest + RACY_NS), (mtime, ctime));
        // An old modification time does not make a file changed just now recordable.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs_err::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        let aged = fs_err::metadata(&path).unwrap();
        assert!(file_times(&aged).0 < mtime - RACY_NS);
        assert_eq!(recordable_times(&aged, now_ns()), (0, 0), "changed just now");
        let rec = |mtime_ns, ctime_ns| InputRecord {
            path: "x".into(),
            field: "x".into(),
            size: 1,
            sha256: String::new(),
            mtime_ns,
            ctime_ns,
            url: None,
        };
        assert!(rec(mtime, ctime).stat_matches(&meta));
        assert!(!rec(mtime, 0).stat_matches(&meta), "a record without a change time is hashed");
        assert!(!rec(0, 0).stat_matches(&meta));
        assert!(!rec(mtime, ctime + 1).stat_matches(&meta));
        assert!(!InputRecord { size: 2, ..rec(mtime, ctime) }.stat_matches(&meta));
    }
}
