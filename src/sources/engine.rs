//! The fetch engine shared by the networked sources: runs units of work concurrently (the host
//! limiter in `net` decides how many requests actually fly), records each finished or permanently
//! failed unit in the journal the moment it ends, and stops early when the archive looks down.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::failure::FailureKind;
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
    pub result: Result<Vec<InputRecord>, UnitError>,
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

/// Run `jobs` with at most `parallel` units under way; record each outcome in `journal`, done
/// units with the source settings `params`.
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
        while tally.stopped.is_none() && deadline.is_none() && running.len() < parallel.max(1) {
            match jobs.next() {
                Some(job) => {
                    running.spawn(job);
                }
                None => break,
            }
        }
        let joined = match deadline {
            None => tokio::select! {
                joined = running.join_next() => joined,
                _ = stop::wait() => continue,
            },
            Some(deadline) => tokio::select! {
                joined = running.join_next() => joined,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    tally.abandoned = running.len() as u64;
                    running.abort_all();
                    break;
                }
            },
        };
        let Some(joined) = joined else { break };
        let outcome = joined.map_err(|e| anyhow::anyhow!("a fetch task failed: {e}"))?;
        match outcome.result {
            Ok(inputs) => {
                streak = 0;
                let bytes: u64 = inputs.iter().map(|i| i.size).sum();
                journal.append(JournalEntry::Done {
                    unit: outcome.unit,
                    inputs,
                    params: Some(params.to_string()),
                    task: None,
                })?;
                tally.done += 1;
                tally.bytes += bytes;
                progress.advance(1, bytes);
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
                running.abort_all();
                journal.sync()?;
                return Err(e);
            }
        }
        if last_detail.elapsed() >= Duration::from_millis(250) {
            last_detail = Instant::now();
            progress.set_detail(detail(client, started.elapsed()));
        }
    }
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
