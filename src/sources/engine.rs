//! The fetch engine shared by the networked sources: runs units of work concurrently (the host
//! limiter in `net` decides how many requests actually fly), records each permanently failed unit
//! in the journal the moment it ends and each finished one once its payloads are committed (with
//! the units that finished close to it), and stops early when the archive looks down.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::failure::FailureKind;
use crate::fsx::Staged;
use crate::net::client::{Fetched, NetClient, NetError, Request};
use crate::report::Progress;
use crate::stop::{self, StopSignal};
use crate::store::raw::RawStore;
use crate::store::{FetchJournal, InputRecord, JournalEntry};

/// The runtime a request-bound fetch runs on: one thread. The work between requests (parsing
/// and checking answers) is small, and everything heavier (storing payloads) is handed to
/// blocking threads, so a second worker thread would only add wake-ups between the two
/// (measured with the PS1 emulator: about a quarter of the CPU per request, bench/README.md).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Why a unit did not finish.
#[derive(Debug)]
pub enum UnitError {
    /// Retrying cannot help (no coverage, refused, invalid answers): recorded in the journal and
    /// `failures.jsonl`, skipped by later runs unless `--retry-failed`.
    Permanent { kind: FailureKind, reason: String },
    /// Transient failures beyond the retry budget (archive down, throttled): not recorded, so
    /// the next run tries again; the run exits 75.
    Transient(String),
    /// Something is wrong on this side (disk full, bad configuration): the run stops.
    Fatal(anyhow::Error),
}

impl From<NetError> for UnitError {
    fn from(e: NetError) -> Self {
        match &e {
            NetError::Refused { status, .. } => UnitError::Permanent {
                kind: if *status == 404 { FailureKind::NotFound } else { FailureKind::Refused },
                reason: e.to_string(),
            },
            NetError::Invalid { .. } => {
                UnitError::Permanent { kind: FailureKind::InvalidAnswer, reason: e.to_string() }
            }
            NetError::Exhausted { .. } => UnitError::Transient(e.to_string()),
            NetError::Fatal { .. } | NetError::Local { .. } | NetError::NothingListening { .. } => {
                UnitError::Fatal(e.into())
            }
        }
    }
}

/// Send `req` and check the answer with `valid` (see [`NetClient::send_valid`]: an answer that
/// arrived whole but does not pass gets one more try). Every source fetches what it parses
/// through here. An answer refused for good is kept as received under
/// `rejected/<source>/<key>/<name>` (the `Content-Disposition` file name if the archive sent one,
/// else `name`: what the archive called it) and fails the unit as
/// `invalid-answer`, the reason being `valid`'s (which names the file, line and value).
pub async fn fetch_checked(
    client: &NetClient,
    store: &RawStore,
    key: &str,
    name: &str,
    req: &Request,
    valid: impl Fn(&Fetched) -> Result<(), String>,
) -> Result<Fetched, UnitError> {
    match client.send_valid(req, valid).await {
        Ok(fetched) => Ok(fetched),
        Err(NetError::Invalid { reason, body, retries, headers, .. }) => {
            let named = headers.get(reqwest::header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok());
            let name = named.and_then(disposition_filename).unwrap_or_else(|| name.to_string());
            let (store, key) = (store.clone(), key.to_string());
            let kept = tokio::task::spawn_blocking(move || store.reject(&key, &name, &body.0))
                .await
                .map_err(|e| UnitError::Fatal(anyhow::anyhow!("keeping a refused answer failed: {e}")))?
                .map_err(UnitError::Fatal)?;
            let tries = if retries == 0 { "1 try".to_string() } else { format!("{} tries", retries + 1) };
            // `valid`'s reasons name the URL; the client's own (an answer past its bound, a head
            // that is not HTTP) do not.
            let reason = if reason.contains(req.url.as_str()) {
                reason
            } else {
                format!("{} {}: {reason}", req.method, req.url)
            };
            Err(UnitError::Permanent {
                kind: FailureKind::InvalidAnswer,
                reason: format!("{reason} (after {tries}; the answer is kept in {})", kept.display()),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The `filename` of a `Content-Disposition` value (quoted or bare), without any folder part, if
/// it is a plain file name (letters, digits, `.`, `_`, `-`; not starting with `.`; at most 100
/// bytes): a server does not get to choose a path, a hidden file or control characters.
fn disposition_filename(value: &str) -> Option<String> {
    let (_, v) =
        value.split(';').filter_map(|p| p.split_once('=')).find(|(k, _)| k.trim().eq_ignore_ascii_case("filename"))?;
    let v = v.trim().trim_matches('"');
    let base = v.rsplit(['/', '\\']).next()?;
    let plain = base.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (plain && !base.is_empty() && !base.starts_with('.') && base.len() <= 100).then(|| base.to_string())
}

/// A unit's result.
pub struct Outcome {
    pub unit: String,
    pub result: Result<Finished, UnitError>,
}

/// A unit fetched whole: its input records, and its payloads staged in the raw store
/// ([`RawStore::stage`]) for the engine to commit, with other units', before it journals it.
pub struct Finished {
    pub inputs: Vec<InputRecord>,
    pub staged: Staged,
}

impl Finished {
    /// Take `more` (a later part of the same unit) into this one, records in order.
    pub fn append(&mut self, more: Finished) {
        self.inputs.extend(more.inputs);
        self.staged.append(more.staged);
    }
}

/// A validated answer on its way to the raw store: its file name there, the input field it
/// becomes, the answer, and the URL it came from.
pub struct Answer {
    pub file: String,
    pub field: String,
    pub fetched: Fetched,
    pub url: url::Url,
}

/// Stage the answers of the unit `key` in `store` (off the async threads; see
/// [`RawStore::stage`]): their input records in the order given, and the staged files for
/// [`drive`] to commit.
pub async fn stage(store: &RawStore, key: &str, answers: Vec<Answer>) -> Result<Finished, UnitError> {
    let (store, key) = (store.clone(), key.to_string());
    tokio::task::spawn_blocking(move || {
        let files: Vec<(&str, &[u8])> = answers.iter().map(|a| (a.file.as_str(), &a.fetched.body[..])).collect();
        let (stored, staged) = store.stage(&key, &files)?;
        let inputs = answers.into_iter().zip(stored).map(|(a, s)| s.record(a.field, &a.url)).collect();
        Ok(Finished { inputs, staged })
    })
    .await
    .map_err(|e| UnitError::Fatal(anyhow::anyhow!("storing payloads failed: {e}")))?
    .map_err(UnitError::Fatal)
}

/// What a fetch did, for the summary and the exit code.
#[derive(Debug, Default)]
pub struct Tally {
    pub done: u64,
    pub bytes: u64,
    /// Permanent failures by kind.
    pub failed: BTreeMap<FailureKind, u64>,
    /// Units left for a later run after transient failures.
    pub transient: u64,
    /// Units not attempted because the run stopped early.
    pub not_attempted: u64,
    /// Why the run stopped early (the archive looks down).
    pub stopped: Option<String>,
    /// Server-side tasks that could not be deleted (the next run deletes them).
    pub undeleted: u64,
    /// The signal that stopped the run (SIGINT/SIGTERM): no unit started after it.
    pub interrupted: Option<StopSignal>,
    /// Units under way when the run stopped on a signal that did not finish within the grace
    /// time: nothing recorded for them, so the next run does them again.
    pub abandoned: u64,
    pub elapsed: Duration,
}

/// Consecutive units that end in transient failures, with no success between them, after which
/// the archive is taken to be down and no new unit starts.
pub fn give_up_after(parallel: usize) -> u64 {
    (2 * parallel as u64).max(10)
}

/// Units finished close together are made durable in one commit ([`Staged::commit`]) before
/// their lines go to the journal. A commit starts when this many units wait,
const COMMIT_UNITS: usize = 64;
/// or this many staged files (each is an open file until it is committed),
const COMMIT_FILES: usize = 256;
/// or the first waiting unit has waited this long. While as many wait as start a commit and
/// every commit slot is busy, no new unit starts, so what waits stays bounded (by those limits
/// plus the units under way). A kill before a unit's commit loses only that unit (nothing names
/// it in the journal, so the next run fetches it again) and leaves no file under a final name.
const COMMIT_WAIT: Duration = Duration::from_millis(100);
/// Commits running at once, each on a blocking thread: on local disks one is nearly always
/// enough; on storage slow to sync (a network file system) fsyncs in flight together finish
/// sooner.
const COMMITS_IN_FLIGHT: usize = 4;

/// Units fetched whole and their input records, in the order they finished.
type DoneUnits = Vec<(String, Vec<InputRecord>)>;

/// Finished units on their way to the journal: those waiting for a commit, and the commits
/// running on blocking threads.
#[derive(Default)]
struct Commits {
    waiting: DoneUnits,
    staged: Staged,
    since: Option<Instant>,
    running: JoinSet<(DoneUnits, anyhow::Result<()>)>,
}

impl Commits {
    fn add(&mut self, unit: String, done: Finished) {
        self.since.get_or_insert_with(Instant::now);
        self.waiting.push((unit, done.inputs));
        self.staged.append(done.staged);
    }

    /// As many units or files wait as start a commit.
    fn full(&self) -> bool {
        self.waiting.len() >= COMMIT_UNITS || self.staged.files() >= COMMIT_FILES
    }

    /// Start a commit of the waiting units if a slot is free and they are enough, have waited
    /// long enough, or `now` (nothing else will come).
    fn start_if_due(&mut self, now: bool) {
        let Some(since) = self.since else { return };
        let due = now || self.full() || since.elapsed() >= COMMIT_WAIT;
        if due && self.running.len() < COMMITS_IN_FLIGHT {
            let staged = std::mem::take(&mut self.staged);
            let units = std::mem::take(&mut self.waiting);
            self.running.spawn_blocking(move || {
                let result = staged.commit();
                (units, result)
            });
            self.since = None;
        }
    }

    /// When the waiting units' commit is due by time (a slot is free).
    fn due_at(&self) -> Option<Instant> {
        self.since.filter(|_| self.running.len() < COMMITS_IN_FLIGHT).map(|t| t + COMMIT_WAIT)
    }

    fn busy(&self) -> bool {
        !self.running.is_empty() || self.since.is_some()
    }

    /// Wait for a running commit to end; its units (pending forever when none runs: a
    /// `select!` branch is guarded by `!running.is_empty()`).
    async fn wait(&mut self) -> anyhow::Result<DoneUnits> {
        match self.running.join_next().await {
            Some(Ok((units, Ok(())))) => Ok(units),
            Some(Ok((_, Err(e)))) => Err(e),
            Some(Err(e)) => Err(anyhow::anyhow!("storing payloads failed: {e}")),
            None => std::future::pending().await,
        }
    }

    /// Journal the units of a finished commit.
    fn journal(units: DoneUnits, params: &str, journal: &mut FetchJournal, tally: &mut Tally) -> anyhow::Result<()> {
        for (_, inputs) in &units {
            tally.done += 1;
            tally.bytes += inputs.iter().map(|i| i.size).sum::<u64>();
        }
        journal.append_all(units.into_iter().map(|(unit, inputs)| JournalEntry::Done {
            unit,
            inputs,
            params: Some(params.to_string()),
            task: None,
        }))
    }

    /// Commit and journal everything left: every running commit is waited for, and the units
    /// waiting committed. The first error, if any (the units of a failed commit are not
    /// journaled; the others are).
    async fn finish(&mut self, params: &str, journal: &mut FetchJournal, tally: &mut Tally) -> anyhow::Result<()> {
        let mut first = None;
        while self.busy() {
            self.start_if_due(true);
            match self.wait().await {
                Ok(units) => {
                    if let Err(e) = Self::journal(units, params, journal, tally) {
                        first.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Stop the run on `error`: units under way are dropped, units fetched whole are still
    /// committed and journaled where this side can (what fails meanwhile is logged), the journal
    /// synced. Returns `error`.
    async fn fail(
        &mut self,
        error: anyhow::Error,
        running: &mut JoinSet<Outcome>,
        params: &str,
        journal: &mut FetchJournal,
        tally: &mut Tally,
    ) -> anyhow::Error {
        running.abort_all();
        if let Err(e) = self.finish(params, journal, tally).await {
            tracing::error!("{e:#}");
        }
        if let Err(e) = journal.sync() {
            tracing::error!("{e:#}");
        }
        error
    }
}

/// What woke the engine.
enum Event {
    Joined(Option<Result<Outcome, tokio::task::JoinError>>),
    Committed(anyhow::Result<DoneUnits>),
    Tick,
    Abandon,
}

/// Run `jobs` with at most `parallel` units under way; record each outcome in `journal`, done
/// units with the source settings `params` once their payloads are durable (units finishing
/// close together are committed together, see [`COMMIT_WAIT`]).
pub async fn drive<I, Fut>(
    jobs: I,
    parallel: usize,
    params: &str,
    journal: &mut FetchJournal,
    progress: &Progress,
    client: &NetClient,
) -> anyhow::Result<Tally>
where
    I: ExactSizeIterator<Item = Fut>,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut jobs = jobs;
    let mut running = JoinSet::new();
    let mut commits = Commits::default();
    let mut streak = 0u64;
    let limit = give_up_after(parallel);
    let mut last_detail = Instant::now();
    // When a signal asked to stop: the time after which units still under way are abandoned.
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() {
            if let Some(signal) = stop::requested() {
                deadline = Some(stopping(signal, running.len(), &mut tally));
            }
        }
        while tally.stopped.is_none() && deadline.is_none() && running.len() < parallel.max(1) && !commits.full() {
            match jobs.next() {
                Some(job) => {
                    running.spawn(job);
                }
                None => break,
            }
        }
        // With nothing under way, no unit starts any more: commit what waits.
        commits.start_if_due(running.is_empty());
        if running.is_empty() && !commits.busy() {
            break;
        }
        let tick = commits.due_at();
        let event = tokio::select! {
            joined = running.join_next(), if !running.is_empty() => Event::Joined(joined),
            units = commits.wait(), if !commits.running.is_empty() => Event::Committed(units),
            _ = tokio::time::sleep_until(tick.unwrap_or(started).into()), if tick.is_some() => Event::Tick,
            _ = stop::wait(), if deadline.is_none() => Event::Tick,
            _ = tokio::time::sleep_until(deadline.unwrap_or(started).into()), if deadline.is_some() => Event::Abandon,
        };
        let joined = match event {
            Event::Joined(Some(joined)) => joined,
            Event::Joined(None) | Event::Tick => continue,
            Event::Committed(Ok(units)) => {
                Commits::journal(units, params, journal, &mut tally)?;
                continue;
            }
            Event::Committed(Err(e)) => {
                return Err(commits.fail(e, &mut running, params, journal, &mut tally).await);
            }
            Event::Abandon => {
                tally.abandoned = running.len() as u64;
                running.abort_all();
                break;
            }
        };
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(e) => {
                let e = anyhow::anyhow!("a fetch task failed: {e}");
                return Err(commits.fail(e, &mut running, params, journal, &mut tally).await);
            }
        };
        match outcome.result {
            Ok(done) => {
                streak = 0;
                progress.advance(1, done.inputs.iter().map(|i| i.size).sum());
                commits.add(outcome.unit, done);
            }
            Err(UnitError::Permanent { kind, reason }) => {
                // The archive answered: it is up.
                streak = 0;
                tracing::warn!("{}: {reason}", outcome.unit);
                journal.append(JournalEntry::Failed {
                    unit: outcome.unit,
                    kind: kind.into(),
                    reason,
                    task: None,
                    params: Some(params.to_string()),
                })?;
                *tally.failed.entry(kind).or_default() += 1;
                progress.advance(1, 0);
            }
            Err(UnitError::Transient(reason)) => {
                streak += 1;
                tracing::warn!("{}: {reason}; left for a later run", outcome.unit);
                tally.transient += 1;
                progress.advance(1, 0);
                if streak >= limit && tally.stopped.is_none() {
                    tracing::error!(
                        "{streak} units in a row failed with transient errors; the archive looks unavailable, \
                         so no new requests start (last: {reason})"
                    );
                    tally.stopped = Some(reason);
                }
            }
            Err(UnitError::Fatal(e)) => {
                // Units fetched whole before it are kept, if this side still can.
                return Err(commits.fail(e, &mut running, params, journal, &mut tally).await);
            }
        }
        if last_detail.elapsed() >= Duration::from_millis(250) {
            last_detail = Instant::now();
            progress.set_detail(detail(client, started.elapsed()));
        }
    }
    commits.finish(params, journal, &mut tally).await?;
    tally.not_attempted = jobs.len() as u64;
    tally.elapsed = started.elapsed();
    journal.sync()?;
    Ok(tally)
}

/// Note a stop request in the tally and the log; returns until when units under way may finish.
pub fn stopping(signal: StopSignal, under_way: usize, tally: &mut Tally) -> Instant {
    tally.interrupted = Some(signal);
    tracing::warn!(
        "{}: no new units start; waiting up to {} for the {under_way} under way (a second signal ends etd at once)",
        signal.name(),
        crate::human::human_duration(stop::GRACE)
    );
    Instant::now() + stop::GRACE
}

/// `12.3 req/s, 45.6 MB, 7 retries, 30s throttled`.
pub fn detail(client: &NetClient, elapsed: Duration) -> String {
    let stats = &client.stats;
    let requests = stats.requests.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!(
        "{:.1} req/s, {:.1} MB, {}, {} throttled",
        requests as f64 / secs,
        stats.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        crate::report::plural(stats.retries.load(Ordering::Relaxed), "retry"),
        crate::human::human_duration(client.throttled())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    type Job = std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>>;

    /// Every unit the journal in `dir` names as done has its files under their final names, with
    /// the bytes recorded (checked by units while a run goes on).
    fn journaled_units_are_named(dir: &std::path::Path, store: &RawStore) -> usize {
        let text = fs_err::read_to_string(dir.join("journal.jsonl")).unwrap_or_default();
        let mut done = 0;
        for line in text.lines() {
            let entry: JournalEntry = serde_json::from_str(line).unwrap();
            if let JournalEntry::Done { inputs, .. } = entry {
                for input in &inputs {
                    let bytes = fs_err::read(store.root().join(&input.path)).unwrap();
                    assert_eq!(bytes.len() as u64, input.size, "{}", input.path);
                }
                done += 1;
            }
        }
        done
    }

    /// A unit that stages two payloads in `store` after `delay_ms`, having checked that every
    /// unit journaled so far is named.
    fn staging(store: &RawStore, unit: String, delay_ms: u64) -> Job {
        let store = store.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let dir = store.root().parent().and_then(|p| p.parent()).unwrap().to_path_buf();
            journaled_units_are_named(&dir, &store);
            let url = url::Url::parse("http://127.0.0.1:9/").unwrap();
            let result = store
                .stage(&unit, &[("ps1filenames.txt", unit.as_bytes()), ("g.fits", b"SIMPLE")])
                .map(|(stored, staged)| Finished {
                    inputs: stored.into_iter().map(|s| s.record("g", &url)).collect(),
                    staged,
                })
                .map_err(UnitError::Fatal);
            Outcome { unit, result }
        })
    }

    fn failing(unit: &str, delay_ms: u64, error: UnitError) -> Job {
        let unit = unit.to_string();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            Outcome { unit, result: Err(error) }
        })
    }

    /// Run `jobs` with `parallel` under way; the result and the journal as read back.
    fn run(dir: &std::path::Path, jobs: Vec<Job>, parallel: usize) -> (anyhow::Result<Tally>, FetchJournal) {
        let path = dir.join("journal.jsonl");
        let client = NetClient::new(crate::publish::https::politeness(), 1).unwrap();
        let progress = crate::report::Reporter::silent().start("fetch", jobs.len() as u64);
        let result = {
            let mut journal = FetchJournal::open_append(&path).unwrap();
            runtime().unwrap().block_on(drive(jobs.into_iter(), parallel, "p", &mut journal, &progress, &client))
        };
        (result, FetchJournal::open(&path).unwrap())
    }

    /// Every file name under `dir`, relative to it.
    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut names = Vec::new();
        for entry in fs_err::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                names.extend(files(&entry.path()).into_iter().map(|n| format!("{name}/{n}")));
            } else {
                names.push(name);
            }
        }
        names.sort();
        names
    }

    #[test]
    fn finished_units_are_journaled_once_committed_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().to_path_buf()), "ps1-cutouts");
        // More units than one commit takes, finishing close together, and one failing for good.
        let mut jobs: Vec<Job> = (0..150).map(|i| staging(&store, format!("u{i:03}"), (i % 7) as u64)).collect();
        jobs.insert(
            75,
            failing("nocov", 1, UnitError::Permanent { kind: FailureKind::NoCoverage, reason: "none".into() }),
        );
        let (tally, journal) = run(dir.path(), jobs, 8);
        let tally = tally.unwrap();
        assert_eq!((tally.done, tally.bytes), (150, 150 * (4 + 6)));
        assert_eq!(journal.done_units().count(), 150);
        assert!(matches!(journal.get("nocov"), Some(JournalEntry::Failed { .. })));
        let Some(JournalEntry::Done { inputs, params, .. }) = journal.get("u149") else { panic!("u149 not done") };
        assert_eq!((inputs[0].path.as_str(), params.as_deref()), ("u149/ps1filenames.txt", Some("p")));
        assert_eq!(journaled_units_are_named(dir.path(), &store), 150);
        let names = files(store.root());
        assert_eq!(names.len(), 300, "two files per unit, no temporary files: {:?}", &names[..4]);
        assert!(names.iter().all(|n| !n.contains(crate::fsx::TEMP_PREFIX)));
    }

    #[test]
    fn a_fatal_error_keeps_the_units_finished_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().to_path_buf()), "ps1-cutouts");
        let mut jobs: Vec<Job> = (0..5).map(|i| staging(&store, format!("u{i}"), 0)).collect();
        jobs.push(failing("full", 30, UnitError::Fatal(anyhow::anyhow!("No space left on device"))));
        let (result, journal) = run(dir.path(), jobs, 8);
        assert!(format!("{:#}", result.unwrap_err()).contains("No space left"));
        assert_eq!(journal.done_units().count(), 5, "fetched whole before the error: kept");
        assert_eq!(files(store.root()).len(), 10);
    }

    #[test]
    fn a_failed_commit_journals_none_of_its_units_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().to_path_buf()), "ps1-cutouts");
        let path = dir.path().join("journal.jsonl");
        let mut journal = FetchJournal::open_append(&path).unwrap();
        let mut tally = Tally::default();
        let runtime = runtime().unwrap();
        let result = runtime.block_on(async {
            let mut commits = Commits::default();
            for unit in ["good", "bad"] {
                let outcome = staging(&store, unit.into(), 0).await;
                commits.add(outcome.unit, outcome.result.unwrap_or_else(|_| panic!("{unit} staged")));
            }
            // A folder where one of `bad`'s files is to be named: its rename fails.
            fs_err::create_dir(store.root().join("bad/g.fits")).unwrap();
            commits.finish("p", &mut journal, &mut tally).await
        });
        let err = format!("{:#}", result.unwrap_err());
        assert!(err.contains("bad/g.fits"), "{err}");
        drop(journal);
        let journal = FetchJournal::open(&path).unwrap();
        assert_eq!((journal.done_units().count(), tally.done), (0, 0), "one commit: none of it journaled");
        let left: Vec<String> =
            files(store.root()).into_iter().filter(|n| n.contains(crate::fsx::TEMP_PREFIX)).collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");

        // Through the engine: the unit whose folder is gone before its commit is not journaled.
        let lost = {
            let store = store.clone();
            Box::pin(async move {
                let outcome = staging(&store, "lost".into(), 0).await;
                fs_err::remove_dir_all(store.root().join("lost")).unwrap();
                outcome
            }) as Job
        };
        let (result, journal) = run(dir.path(), vec![lost], 1);
        let err = format!("{:#}", result.unwrap_err());
        assert!(err.contains("lost/g.fits") || err.contains("lost/ps1filenames.txt"), "{err}");
        assert!(journal.get("lost").is_none());
    }

    #[test]
    fn units_fetched_before_the_archive_looked_down_are_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(&crate::store::Workdir::new(dir.path().to_path_buf()), "ps1-cutouts");
        let mut jobs: Vec<Job> = (0..5).map(|i| staging(&store, format!("u{i}"), 0)).collect();
        jobs.extend((0..30).map(|i| failing(&format!("t{i}"), 0, UnitError::Transient("503".into()))));
        jobs.push(staging(&store, "never".into(), 0));
        let (tally, journal) = run(dir.path(), jobs, 1);
        let tally = tally.unwrap();
        assert!(tally.stopped.is_some());
        assert_eq!((tally.done, tally.transient, tally.not_attempted), (5, 10, 21));
        assert_eq!(journal.done_units().count(), 5);
        assert_eq!(journaled_units_are_named(dir.path(), &store), 5);
    }

    #[test]
    fn refused_answers_are_named_as_the_archive_names_them() {
        assert_eq!(disposition_filename("attachment; filename=\"r.fits\"").as_deref(), Some("r.fits"));
        assert_eq!(disposition_filename("inline; FILENAME=a/b/c.txt").as_deref(), Some("c.txt"));
        assert_eq!(disposition_filename("attachment"), None);
        assert_eq!(disposition_filename("attachment; filename=\"\""), None);
        for hostile in ["..", "a/..", ".hidden", "x\u{7}y", "a b.txt", "nul\0.txt"] {
            assert_eq!(disposition_filename(&format!("attachment; filename=\"{hostile}\"")), None, "{hostile:?}");
        }
        assert_eq!(disposition_filename(&format!("attachment; filename={}", "a".repeat(101))), None);
    }
}
