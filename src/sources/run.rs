//! What every source's fetch and shard share, written once: the recipe parts a source sees
//! (`Inputs`), the fetch run of one task split (`FetchRun`: lock, journal path, scan, pending set,
//! stale notes, partial-file cleanup, failure ledger, summary line and exit code) and the shard
//! input (`ShardInput`: the journals and the units they record as done).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::error::Exit;
use crate::failure::Stage;
use crate::human::human_duration;
use crate::net::client::NetClient;
use crate::net::Politeness;
use crate::report::{plural, Reporter};
use crate::shard::Job;
use crate::sources::engine::Tally;
use crate::store::journal::{replace_failures, JournalPos, JournalScan, JournalSet};
use crate::store::raw::RawStore;
use crate::store::{Workdir, WorkdirLock};
use crate::target::Target;
use crate::transform::image::ImageTransform;
use crate::transform::lightcurve::LightCurveTransform;

use super::TaskSplit;

/// The parts of the recipe a source works with (sources do not import the recipe).
pub struct Inputs<'a> {
    /// The recipe's name (ATLAS-FP tags its submissions with it).
    pub name: &'a str,
    /// The recipe's targets (empty when it has none).
    pub targets: &'a [Target],
    /// The targets' distinct labels, sorted: the manifest's class list.
    pub classes: Vec<String>,
    pub image: &'a ImageTransform,
    pub lightcurve: &'a LightCurveTransform,
    pub politeness: &'a Politeness,
}

/// One `etd fetch` of one task split.
pub struct FetchRun<'a> {
    pub inputs: &'a Inputs<'a>,
    pub workdir: &'a Workdir,
    pub split: TaskSplit,
    pub retry_failed: bool,
    pub reporter: &'a Reporter,
    /// Writes data for scripts (the dry-run plan) to stdout; the library never prints.
    pub print: &'a dyn Fn(&str) -> anyhow::Result<()>,
}

/// What the journals say about the targets this task owns.
pub struct Pending {
    /// Indexes into the targets, in target order.
    pub todo: Vec<usize>,
    pub owned: usize,
    pub done: usize,
    /// Failed earlier and not retried.
    pub failed: usize,
}

/// A started networked fetch: the task's lock (held until drop), its journal and what is left.
pub struct Started {
    pub _lock: WorkdirLock,
    pub journal_path: std::path::PathBuf,
    pub scan: JournalScan,
    pub pending: Pending,
}

impl FetchRun<'_> {
    /// ` (task I of N)` for a split run, empty for the whole job.
    pub fn task_label(&self) -> String {
        if self.split.is_whole() {
            String::new()
        } else {
            format!(" (task {} of {})", self.split.index, self.split.count)
        }
    }

    /// The journals' state for `params`, read-only (no lock, nothing created; empty without a workdir).
    pub fn scan_read_only(&self, params: &str) -> anyhow::Result<JournalScan> {
        if self.workdir.root.is_dir() {
            self.scan(params)
        } else {
            Ok(JournalScan::default())
        }
    }

    pub fn scan(&self, params: &str) -> anyhow::Result<JournalScan> {
        JournalSet::open(self.workdir.journals()?)?.scan_for(Some(params))
    }

    /// Which of the recipe's targets this task still has to fetch.
    pub fn pending(&self, scan: &JournalScan) -> Pending {
        let mut p = Pending { todo: Vec::new(), owned: 0, done: 0, failed: 0 };
        for (i, t) in self.inputs.targets.iter().enumerate() {
            if !self.split.owns(&t.id) {
                continue;
            }
            p.owned += 1;
            if scan.done.contains_key(&t.id) {
                p.done += 1;
            } else if scan.failed.contains_key(&t.id) && !self.retry_failed {
                p.failed += 1;
            } else {
                p.todo.push(i);
            }
        }
        p
    }

    /// The politeness of one task of the split (the rate is shared by all tasks).
    pub fn task_share(&self) -> Politeness {
        let mut share = self.inputs.politeness.clone();
        share.rate = crate::units::rate(share.rate.per_second() / f64::from(self.split.count), 1);
        share
    }

    /// Take the lock of this task, scan the journals, count targets whose raw files went missing
    /// as not done, and log the stale notes: what every networked fetch does before its plan.
    pub fn start(&self, kind: &str, params: &str) -> anyhow::Result<Started> {
        let split = self.split;
        let lock =
            if split.is_whole() { self.workdir.lock()? } else { self.workdir.lock_task(split.index, split.count)? };
        let journal_path =
            if split.is_whole() { self.workdir.journal() } else { self.workdir.task_journal(split.index, split.count) };
        let mut scan = self.scan(params)?;
        self.forget_missing_raw(kind, &mut scan)?;
        let pending = self.pending(&scan);
        for note in super::stale_notes(&scan, params, "fetching them again") {
            tracing::info!("{note}");
        }
        Ok(Started { _lock: lock, journal_path, scan, pending })
    }

    /// Targets recorded as done whose raw files are gone or changed size (deleted by hand, a disk
    /// restored from backup) count as not done, so this fetch gets them again. Returns how many.
    fn forget_missing_raw(&self, source: &str, scan: &mut JournalScan) -> anyhow::Result<usize> {
        let journals = JournalSet::open(self.workdir.journals()?)?;
        let root = self.workdir.raw(source);
        let mut missing = Vec::new();
        for (unit, pos) in &scan.done {
            if !self.split.owns(unit) {
                continue;
            }
            let whole = journals
                .inputs(*pos)?
                .iter()
                .all(|i| fs_err::metadata(root.join(&i.path)).is_ok_and(|m| m.len() == i.size));
            if !whole {
                missing.push(unit.clone());
            }
        }
        for unit in &missing {
            scan.done.remove(unit);
        }
        if !missing.is_empty() {
            tracing::warn!(
                "{} recorded as done {} raw files missing or changed; fetching {} again",
                plural(missing.len(), "target"),
                if missing.len() == 1 { "has" } else { "have" },
                if missing.len() == 1 { "it" } else { "them" }
            );
        }
        Ok(missing.len())
    }

    /// Remove what killed runs left half-written in the raw folders of the targets about to be fetched.
    pub fn clean_partials(&self, store: &RawStore, keys: &[String], todo: &[usize]) -> anyhow::Result<()> {
        let mut cleaned = 0;
        for &i in todo {
            cleaned += store.clean_partial(&keys[i])?;
        }
        if cleaned > 0 {
            tracing::info!("removed {cleaned} partial files left by an interrupted run");
        }
        Ok(())
    }

    /// After the engine: refresh the failure ledger as all journals have it now (other tasks may
    /// still add to theirs), log the summary, and return how many owned targets failed.
    pub fn finish(&self, params: &str, tally: &Tally, client: &NetClient) -> anyhow::Result<usize> {
        let scan = self.scan(params)?;
        replace_failures(&self.workdir.failures(), Stage::Fetch, scan.failure_entries())?;
        let failed_owned =
            self.inputs.targets.iter().filter(|t| self.split.owns(&t.id) && scan.failed.contains_key(&t.id)).count();
        self.summarize(tally, client, failed_owned);
        Ok(failed_owned)
    }

    /// The final summary: done, failed by reason, requests, retries, time waited on throttles.
    fn summarize(&self, tally: &Tally, client: &NetClient, failed_owned: usize) {
        let task = self.task_label();
        let stats = &client.stats;
        let failed: u64 = tally.failed.values().sum();
        let by_kind: BTreeMap<&str, u64> = tally.failed.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let kinds: Vec<String> = by_kind.iter().map(|(k, v)| format!("{v} {k}")).collect();
        tracing::info!(
            "fetch{task}: {} done, {failed} failed{}, {} left for a later run; {}, {}, \
             {} waited on throttles, {:.1} MB in {}",
            tally.done,
            if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) },
            tally.transient + tally.not_attempted + tally.abandoned,
            plural(stats.requests.load(Ordering::Relaxed), "request"),
            plural(stats.retries.load(Ordering::Relaxed), "retry"),
            human_duration(client.throttled()),
            stats.bytes.load(Ordering::Relaxed) as f64 / 1e6,
            human_duration(tally.elapsed),
        );
        if let Some(signal) = tally.interrupted {
            tracing::warn!(
                "stopped by {}: {} targets not started, {} under way left unfinished; the journal keeps everything \
                 done. Run the same command again to continue",
                signal.name(),
                tally.not_attempted,
                tally.abandoned
            );
        } else if let Some(why) = &tally.stopped {
            tracing::error!(
                "stopped early: the archive looks unavailable ({why}); {} not attempted. \
                 Run the same command later to continue",
                plural(tally.not_attempted, "target")
            );
        } else if tally.transient > 0 {
            tracing::warn!(
                "{} hit transient failures; run the same command later to continue",
                plural(tally.transient, "target")
            );
        }
        if failed_owned > 0 {
            tracing::warn!(
                "{} failed permanently; see {}",
                plural(failed_owned, "target"),
                self.workdir.failures().display()
            );
        }
    }
}

/// The exit code of a networked fetch: a signal's first, then 75 (try again later), then 3.
pub fn exit_code(tally: &Tally, failed_owned: usize, tempfail: bool) -> Exit {
    if let Some(signal) = tally.interrupted {
        signal.exit()
    } else if tempfail || tally.transient > 0 || tally.stopped.is_some() {
        Exit::TempFail
    } else if failed_owned > 0 {
        Exit::SomeFailed
    } else {
        Exit::Success
    }
}

/// What `etd shard` hands a source to make its samples from.
pub struct ShardInput<'a> {
    pub inputs: &'a Inputs<'a>,
    pub workdir: &'a Workdir,
    pub journals: &'a JournalSet,
    /// The units the journals record as done (with the current settings), by unit id.
    pub done: BTreeMap<String, JournalPos>,
}

impl ShardInput<'_> {
    /// Jobs for the targets that were fetched, keyed with `keys` (one per target, from every
    /// target's id, so keys do not depend on which targets were fetched); each job's input is its
    /// target's index.
    pub fn target_jobs(&self, keys: Vec<String>) -> Vec<Job<usize>> {
        let mut jobs = Vec::new();
        for (i, (target, key)) in self.inputs.targets.iter().zip(keys).enumerate() {
            if self.done.contains_key(&target.id) {
                jobs.push(Job { key, id: target.id.clone(), input: i });
            }
        }
        let extra = self.done.len() - jobs.len();
        if extra > 0 {
            tracing::info!("{extra} fetched units are not among the recipe's targets now; leaving them out");
        }
        jobs
    }

    /// Where the journals hold the done entry of the unit a job was made for.
    pub fn pos(&self, job: &Job<usize>) -> anyhow::Result<JournalPos> {
        self.done.get(&job.id).copied().ok_or_else(|| anyhow::anyhow!("{}: not recorded as fetched", job.id))
    }

    /// The manifest's class list: the targets' labels, when they have any.
    pub fn target_classes(&self) -> Option<Vec<String>> {
        (!self.inputs.classes.is_empty()).then(|| self.inputs.classes.clone())
    }

    /// The class index of a target's label in the manifest's class list.
    pub fn class_of(&self, target: &Target) -> Option<usize> {
        target.label.as_ref().and_then(|l| self.inputs.classes.binary_search(l).ok())
    }
}
