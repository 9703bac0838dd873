//! `store`: the workdir. Raw payloads, the append-only journal, the failure ledger, atomic writes
//! and the lock that keeps two etd processes from writing one workdir at once.

pub mod journal;
pub mod raw;

use std::path::PathBuf;

use anyhow::Context;
use fs_err as fs;

use crate::error::UserError;

pub use journal::{FailureEntry, FetchJournal, InputRecord, JournalEntry};

/// Paths inside a workdir (docs/design.md §4).
#[derive(Debug, Clone)]
pub struct Workdir {
    pub root: PathBuf,
}

impl Workdir {
    pub fn new(root: PathBuf) -> Self {
        Workdir { root }
    }

    pub fn raw(&self, source: &str) -> PathBuf {
        self.root.join("raw").join(source)
    }
    /// Answers of `source` that arrived whole but did not parse, kept as received.
    pub fn rejected(&self, source: &str) -> PathBuf {
        self.root.join("rejected").join(source)
    }
    /// The journal of a whole-workdir fetch.
    pub fn journal(&self) -> PathBuf {
        self.root.join("journal.jsonl")
    }
    /// The journal of task `index` of `count` (batch work split); each task appends to its own.
    pub fn task_journal(&self, index: u32, count: u32) -> PathBuf {
        self.root.join(format!("journal.task-{index}-of-{count}.jsonl"))
    }
    /// Every journal in the workdir: `journal.jsonl` first, then the tasks' in name order.
    pub fn journals(&self) -> anyhow::Result<Vec<PathBuf>> {
        let mut tasks = Vec::new();
        if self.root.is_dir() {
            for entry in fs::read_dir(&self.root)? {
                let name = entry?.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("journal.task-") && name.ends_with(".jsonl") {
                    tasks.push(self.root.join(name.as_ref()));
                }
            }
        }
        tasks.sort();
        let mut all = vec![self.journal()];
        all.extend(tasks);
        Ok(all)
    }
    /// The parts of a split shard run (`shard-I-of-N/`), for `etd shard --merge`.
    pub fn parts(&self) -> PathBuf {
        self.root.join("parts")
    }
    pub fn failures(&self) -> PathBuf {
        self.root.join("failures.jsonl")
    }
    pub fn shards(&self) -> PathBuf {
        self.root.join("shards")
    }
    /// Where a shard run writes before it replaces `shards/` as a whole.
    pub fn shards_partial(&self) -> PathBuf {
        self.root.join("shards.partial")
    }
    /// The previous `shards/` while it is being replaced.
    pub fn shards_old(&self) -> PathBuf {
        self.root.join("shards.old")
    }

    /// Create the workdir and take its lock for the life of the returned guard.
    pub fn lock(&self) -> anyhow::Result<WorkdirLock> {
        fs::create_dir_all(&self.root)?;
        let file = self.take_lock(".lock", false)?;
        Ok(WorkdirLock { _files: vec![file] })
    }

    /// The lock of batch task `index` of `count`: the workdir lock shared with the other tasks
    /// (so tasks run side by side while `shard` or a whole-workdir fetch waits), and the task's
    /// own lock exclusively (so one task does not run twice at once).
    pub fn lock_task(&self, index: u32, count: u32) -> anyhow::Result<WorkdirLock> {
        fs::create_dir_all(&self.root)?;
        let shared = self.take_lock(".lock", true)?;
        let own = self.take_lock(&format!(".lock.task-{index}-of-{count}"), false)?;
        Ok(WorkdirLock { _files: vec![shared, own] })
    }

    fn take_lock(&self, name: &str, shared: bool) -> anyhow::Result<fs::File> {
        let path = self.root.join(name);
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        let taken = if shared { file.file().try_lock_shared() } else { file.file().try_lock() };
        match taken {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(UserError::failure(format!("another etd process is using the workdir {}", self.root.display()))
                    .with_hint(if name == ".lock" {
                        "wait for it to finish, or give this run its own --workdir"
                    } else {
                        "this task is already running; each --task-index runs once at a time"
                    })
                    .into())
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }
}

/// `journal.task-I-of-N.jsonl` -> (I, N).
pub fn parse_task_journal(name: &str) -> Option<(u32, u32)> {
    let (i, n) = name.strip_prefix("journal.task-")?.strip_suffix(".jsonl")?.split_once("-of-")?;
    let (i, n) = (i.parse::<u32>().ok()?, n.parse::<u32>().ok()?);
    (i < n).then_some((i, n))
}

/// Held while a command writes to a workdir; released on drop (also when the process dies).
#[derive(Debug)]
pub struct WorkdirLock {
    _files: Vec<fs::File>,
}
