//! Fetching light curves from the ATLAS forced-photometry server (docs/archives.md 2.3 to 2.9).
//!
//! For each batch of targets: `POST /queue/` (one `radeclist`), and the answer's task URLs go to
//! the journal at once. Each task is then polled (`GET` its URL) with growing waits; when it has
//! finished, its `result_url` is downloaded, checked and stored, the unit is journaled as done,
//! and the task is deleted (`DELETE`, 204) and journaled as deleted. "No data returned" is a
//! permanent failure of that target. A rerun first deletes the tasks a killed run left behind,
//! then continues the tasks still on the server, resubmitting those that read 404.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use tokio::task::JoinSet;

use super::AtlasFpConfig;
use crate::failure::FailureKind;
use crate::net::client::{Auth, NetClient, NetError, Request, Secret};
use crate::report::Progress;
use crate::sources::engine::{Tally, UnitError};
use crate::store::raw::RawStore;
use crate::store::{FetchJournal, InputRecord, JournalEntry};
use crate::target::Target;

/// `{base}/{path}` (base is the `/forcedphot` root, with or without a trailing slash).
pub fn endpoint(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    url.set_path(&format!("{}/{path}", base.path().trim_end_matches('/')));
    url.set_query(None);
    url
}

/// The fields of the task JSON etd reads (docs/archives.md 2.5).
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    pub url: String,
    #[serde(default)]
    pub ra: Option<f64>,
    #[serde(default)]
    pub dec: Option<f64>,
    #[serde(default)]
    pub starttimestamp: Option<String>,
    #[serde(default)]
    pub finishtimestamp: Option<String>,
    #[serde(default)]
    pub result_url: Option<String>,
    #[serde(default)]
    pub error_msg: Option<String>,
}

/// The tasks of a `queue/` answer: a list of task JSON objects, or one object; empty when the
/// answer is neither.
pub fn submitted_tasks(body: &[u8]) -> Vec<Task> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Array(_)) => serde_json::from_value(v).unwrap_or_default(),
        Ok(v @ serde_json::Value::Object(_)) => serde_json::from_value(v).map(|t| vec![t]).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// What every job of one fetch shares.
pub struct AtlasFetcher {
    pub client: Arc<NetClient>,
    pub cfg: AtlasFpConfig,
    pub token: Secret,
    pub store: RawStore,
    /// Tags every task (`etd:<recipe name>`), so a user can tell etd's tasks from others.
    pub comment: String,
}

/// A target of this run: its index in the recipe's targets, id and key.
#[derive(Debug, Clone)]
pub struct Unit {
    pub index: usize,
    pub target: Target,
    pub key: String,
}

enum Event {
    Submitted { tasks: Vec<(Unit, String)>, orphans: Vec<String>, unmatched: Vec<Unit> },
    SubmitFailed { units: Vec<Unit>, error: UnitError, queue_full: bool },
    Polled { unit: Unit, task: String, outcome: Result<Polled, UnitError> },
    Stored { unit: Unit, task: String, result: Result<Vec<InputRecord>, UnitError> },
    Deleted { unit: String, task: String, result: Result<(), UnitError>, counted: bool },
}

enum Polled {
    Finished {
        result_url: String,
    },
    NoData,
    Error(String),
    /// 404: archived or expired.
    Gone,
    TimedOut,
}

/// 401/403: the token is wrong or lacks rights. No target can succeed; stop the run.
fn auth_error(e: NetError) -> UnitError {
    match &e {
        NetError::Refused { status: 401 | 403, .. } => UnitError::Fatal(
            crate::error::UserError::usage(format!("the ATLAS server refused the credentials: {e}"))
                .with_hint("check the token (or username and password); the API token page is /forcedphot/apitoken/")
                .into(),
        ),
        _ => e.into(),
    }
}

/// Bytes of one task's JSON an answer may take (a task is about 1 kB).
const TASK_JSON_MAX: u64 = 16 << 10;

/// Room for the header line and slack in a result's bound.
const RESULT_HEAD_ROOM: u64 = 64 << 10;

/// Result rows per day a target can have: ATLAS's four units observe a field about four times a
/// night each; 64 leaves room for twice as many units and reprocessed duplicates.
const RESULT_ROWS_PER_DAY: u64 = 64;

/// Bytes per result row (the rows are about 150 bytes).
const RESULT_ROW_MAX: u64 = 256;

/// The largest result a task can need: [`RESULT_ROWS_PER_DAY`] rows of at most
/// [`RESULT_ROW_MAX`] bytes for every day of its MJD range (the server's default range is the
/// last 30 days; no upper bound is today), plus a header. Ten years: 60 MB.
pub fn result_max_body(mjd_min: Option<f64>, mjd_max: Option<f64>, now_mjd: f64) -> u64 {
    let from = mjd_min.unwrap_or(now_mjd - 30.0);
    let upto = mjd_max.unwrap_or(now_mjd).min(now_mjd + 1.0);
    let days = (upto - from).ceil().clamp(1.0, 1e6) as u64 + 1;
    RESULT_HEAD_ROOM + days * RESULT_ROWS_PER_DAY * RESULT_ROW_MAX
}

/// Today as a Modified Julian Date.
fn now_mjd() -> f64 {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    40587.0 + unix.as_secs_f64() / 86400.0
}

impl AtlasFetcher {
    fn request(&self, method: Method, url: url::Url) -> Request {
        Request::new(method, url).header("Accept", "application/json").auth(Some(Auth::Token(self.token.clone())))
    }

    /// `POST /queue/` for a batch: one task per target (`ra`/`dec` alone, else `radeclist`).
    async fn submit(self: Arc<Self>, units: Vec<Unit>) -> Event {
        let cfg = &self.cfg;
        let mut form: Vec<(String, Secret)> = Vec::new();
        let mut field = |k: &str, v: String| form.push((k.to_string(), Secret::new(v)));
        if let [one] = units.as_slice() {
            field("ra", one.target.ra.to_string());
            field("dec", one.target.dec.to_string());
        } else {
            let lines: Vec<String> = units.iter().map(|u| format!("{} {}", u.target.ra, u.target.dec)).collect();
            field("radeclist", lines.join("\n"));
        }
        if let Some(v) = cfg.mjd_min {
            field("mjd_min", v.to_string());
        }
        if let Some(v) = cfg.mjd_max {
            field("mjd_max", v.to_string());
        }
        field("use_reduced", cfg.use_reduced.to_string());
        field("send_email", "false".into());
        field("comment", self.comment.clone());
        let req = self
            .request(Method::POST, endpoint(&cfg.base_url, "queue/"))
            .form(form)
            .max_body(TASK_JSON_MAX * (units.len() as u64 + 1));
        let answer = match self.client.send(&req).await {
            Ok(a) => a,
            Err(e) => {
                let queue_full =
                    matches!(&e, NetError::Refused { status: 400, body, .. } if body.contains("too many queued tasks"));
                return Event::SubmitFailed { units, error: auth_error(e), queue_full };
            }
        };
        let tasks = submitted_tasks(&answer.body);
        if tasks.is_empty() {
            let reason = format!("POST {}: the answer is not task JSON", req.url);
            return Event::SubmitFailed { units, error: UnitError::Transient(reason), queue_full: false };
        }
        // Match tasks to targets by position (the answer lists them in order; check it).
        let mut open: Vec<Option<Unit>> = units.into_iter().map(Some).collect();
        let mut matched = Vec::new();
        let mut orphans = Vec::new();
        for task in tasks {
            let same = |u: &Unit| match (task.ra, task.dec) {
                (Some(ra), Some(dec)) => (ra - u.target.ra).abs() < 1e-6 && (dec - u.target.dec).abs() < 1e-6,
                _ => false,
            };
            match open.iter_mut().find(|u| u.as_ref().is_some_and(same)).and_then(Option::take) {
                Some(unit) => matched.push((unit, task.url)),
                None => orphans.push(task.url),
            }
        }
        Event::Submitted { tasks: matched, orphans, unmatched: open.into_iter().flatten().collect() }
    }

    /// Poll a task until it finishes, is gone, or `give_up_after` passes.
    async fn poll(self: Arc<Self>, unit: Unit, task: String) -> Event {
        let outcome = self.poll_task(&task).await;
        Event::Polled { unit, task, outcome }
    }

    async fn poll_task(&self, task: &str) -> Result<Polled, UnitError> {
        let url = url::Url::parse(task).map_err(|e| UnitError::Permanent {
            kind: FailureKind::InvalidAnswer,
            reason: format!("task URL `{task}` is not a URL: {e}"),
        })?;
        let started = Instant::now();
        let mut wait = self.cfg.poll_initial;
        loop {
            tokio::time::sleep(wait).await;
            let poll = self.request(Method::GET, url.clone()).max_body(TASK_JSON_MAX);
            let answer = match self.client.send(&poll).await {
                Ok(a) => a,
                Err(NetError::Refused { status: 404, .. }) => return Ok(Polled::Gone),
                Err(e) => return Err(auth_error(e)),
            };
            let t: Task = serde_json::from_slice(&answer.body)
                .map_err(|e| UnitError::Transient(format!("GET {task}: the answer is not task JSON ({e})")))?;
            if t.finishtimestamp.is_some() {
                let error = t.error_msg.unwrap_or_default();
                return Ok(match (error.trim(), t.result_url) {
                    ("No data returned", _) => Polled::NoData,
                    ("", Some(result_url)) => Polled::Finished { result_url },
                    ("", None) => Polled::Error("finished without a result_url".into()),
                    (other, _) => Polled::Error(other.to_string()),
                });
            }
            if started.elapsed() >= self.cfg.give_up_after {
                return Ok(Polled::TimedOut);
            }
            wait = (wait.mul_f64(1.5)).min(self.cfg.poll_max);
        }
    }

    /// Download, check and store a finished task's result.
    async fn store_result(self: Arc<Self>, unit: Unit, task: String, result_url: String) -> Event {
        let result = self.download(&unit, &result_url).await;
        Event::Stored { unit, task, result }
    }

    async fn download(&self, unit: &Unit, result_url: &str) -> Result<Vec<InputRecord>, UnitError> {
        let url = url::Url::parse(result_url).map_err(|e| UnitError::Permanent {
            kind: FailureKind::InvalidAnswer,
            reason: format!("result_url `{result_url}` is not a URL: {e}"),
        })?;
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
            .unwrap_or("result.txt")
            .to_string();
        let bound = result_max_body(self.cfg.mjd_min, self.cfg.mjd_max, now_mjd());
        let req = self.request(Method::GET, url.clone()).max_body(bound);
        let answer = crate::sources::engine::fetch_checked(&self.client, &self.store, &unit.key, &name, &req, |f| {
            crate::transform::lightcurve::parse_bytes(&f.body).map(|_| ()).map_err(|e| format!("result {url} {e}"))
        })
        .await?;
        let store = self.store.clone();
        let key = unit.key.clone();
        let stored = tokio::task::spawn_blocking(move || store.write(&key, &name, &answer.body))
            .await
            .map_err(|e| UnitError::Fatal(anyhow::anyhow!("storing a result failed: {e}")))?
            .map_err(UnitError::Fatal)?;
        Ok(vec![stored.record("txt", &url)])
    }

    /// `DELETE` a task (204; 404 means it is gone already).
    async fn delete(self: Arc<Self>, unit: String, task: String, counted: bool) -> Event {
        let result = match url::Url::parse(&task) {
            Err(e) => Err(UnitError::Permanent {
                kind: FailureKind::InvalidAnswer,
                reason: format!("task URL `{task}`: {e}"),
            }),
            Ok(url) => match self.client.send(&self.request(Method::DELETE, url).max_body(TASK_JSON_MAX)).await {
                Ok(_) | Err(NetError::Refused { status: 404, .. }) => Ok(()),
                Err(e) => Err(auth_error(e)),
            },
        };
        Event::Deleted { unit, task, result, counted }
    }
}

/// The whole fetch: clean up, resume, submit, follow, store, delete. Returns the tally.
pub struct Plan {
    /// Tasks to delete first (left by an earlier run): task URL -> unit id.
    pub undeleted: BTreeMap<String, String>,
    /// Units with a task on the server to continue.
    pub resume: Vec<(Unit, String)>,
    /// Units to submit.
    pub submit: Vec<Unit>,
}

/// Record a target whose task ended without a light curve; returns its id for the `DELETE`.
#[allow(clippy::too_many_arguments)]
fn fail_task(
    journal: &mut FetchJournal,
    params: &str,
    tally: &mut Tally,
    progress: &Progress,
    unit: &Unit,
    task: &str,
    kind: FailureKind,
    reason: String,
) -> anyhow::Result<String> {
    tracing::warn!("{}: {reason}", unit.target.id);
    let id = unit.target.id.clone();
    journal.append(JournalEntry::Failed {
        unit: id.clone(),
        kind: kind.into(),
        reason,
        task: Some(task.to_string()),
        params: Some(params.to_string()),
    })?;
    *tally.failed.entry(kind).or_default() += 1;
    progress.advance(1, 0);
    Ok(id)
}

/// A target left for a later run: its task stays on the server and the journal keeps it.
fn left_for_later(in_flight: &mut usize, queue_full: &mut bool, tally: &mut Tally, progress: &Progress) {
    *in_flight -= 1;
    *queue_full = false;
    tally.transient += 1;
    progress.advance(1, 0);
}

pub async fn run(
    fetcher: Arc<AtlasFetcher>,
    plan: Plan,
    params: &str,
    journal: &mut FetchJournal,
    progress: &Progress,
) -> anyhow::Result<Tally> {
    let started = Instant::now();
    let cfg = fetcher.cfg.clone();
    let mut tally = Tally::default();
    let mut jobs: JoinSet<Event> = JoinSet::new();
    let append = |journal: &mut FetchJournal, e: JournalEntry| journal.append(e);
    for (task, unit) in plan.undeleted {
        jobs.spawn(Arc::clone(&fetcher).delete(unit, task, false));
    }
    // Tasks of this run on the server (submitted, not yet deleted or abandoned).
    let mut in_flight = 0usize;
    for (unit, task) in plan.resume {
        in_flight += 1;
        jobs.spawn(Arc::clone(&fetcher).poll(unit, task));
    }
    let mut queue: VecDeque<Unit> = plan.submit.into();
    // Units the server refused as part of a batch are sent alone, to find the one it refuses.
    let mut alone: VecDeque<Unit> = VecDeque::new();
    let mut queue_full = false;
    // Consecutive submissions that failed with transient errors.
    let mut streak = 0u64;
    let max = cfg.max_in_flight as usize;
    let mut last_detail = Instant::now();
    // When a signal asked to stop: the time after which jobs still under way are abandoned
    // (their tasks stay recorded, so the next run continues them, as after a crash).
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() {
            if let Some(signal) = crate::stop::requested() {
                deadline = Some(crate::sources::engine::stopping(signal, in_flight, &mut tally));
            }
        }
        while tally.stopped.is_none() && deadline.is_none() && !queue_full && in_flight < max {
            let room = max - in_flight;
            let batch: Vec<Unit> = if let Some(u) = alone.pop_front() {
                vec![u]
            } else {
                // Whole batches only (a POST is a throttled write): wait for room for one.
                let n = (cfg.batch as usize).min(max).min(queue.len());
                if n > room {
                    break;
                }
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            in_flight += batch.len();
            jobs.spawn(Arc::clone(&fetcher).submit(batch));
        }
        let joined = match deadline {
            None => tokio::select! {
                joined = jobs.join_next() => joined,
                _ = crate::stop::wait() => continue,
            },
            Some(deadline) => tokio::select! {
                joined = jobs.join_next() => joined,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    tally.abandoned = in_flight as u64;
                    jobs.abort_all();
                    break;
                }
            },
        };
        let Some(joined) = joined else { break };
        let event = joined.map_err(|e| anyhow::anyhow!("an ATLAS job failed: {e}"))?;
        match event {
            Event::Submitted { tasks, orphans, unmatched } => {
                streak = 0;
                for (unit, task) in tasks {
                    append(
                        journal,
                        JournalEntry::Submitted {
                            unit: unit.target.id.clone(),
                            task: task.clone(),
                            params: Some(params.to_string()),
                        },
                    )?;
                    jobs.spawn(Arc::clone(&fetcher).poll(unit, task));
                }
                for task in orphans {
                    tracing::warn!("the server created task {task} for no target of this batch; deleting it");
                    jobs.spawn(Arc::clone(&fetcher).delete(String::new(), task, false));
                }
                in_flight -= unmatched.len();
                for unit in unmatched {
                    tracing::warn!("{}: no task came back for it; submitting it again", unit.target.id);
                    alone.push_back(unit);
                }
            }
            Event::SubmitFailed { units, error, queue_full: full } => {
                in_flight -= units.len();
                match error {
                    _ if full => {
                        tracing::warn!(
                            "the server's queue for this user is full; waiting for tasks to finish before submitting more"
                        );
                        queue_full = true;
                        for u in units.into_iter().rev() {
                            queue.push_front(u);
                        }
                    }
                    UnitError::Permanent { .. } if units.len() > 1 => {
                        tracing::warn!("the server refused a batch of {}; submitting them one by one", units.len());
                        alone.extend(units);
                    }
                    UnitError::Permanent { kind, reason } => {
                        streak = 0;
                        for u in units {
                            tracing::warn!("{}: {reason}", u.target.id);
                            let entry = JournalEntry::Failed {
                                unit: u.target.id,
                                kind: kind.into(),
                                reason: reason.clone(),
                                task: None,
                                params: Some(params.to_string()),
                            };
                            append(journal, entry)?;
                            *tally.failed.entry(kind).or_default() += 1;
                            progress.advance(1, 0);
                        }
                    }
                    UnitError::Transient(reason) => {
                        streak += 1;
                        tracing::warn!(
                            "submitting {}: {reason}; left for a later run",
                            crate::report::plural(units.len(), "target")
                        );
                        tally.transient += units.len() as u64;
                        progress.advance(units.len() as u64, 0);
                        if streak >= 3 && tally.stopped.is_none() {
                            tracing::error!("submissions keep failing; the archive looks unavailable ({reason})");
                            tally.stopped = Some(reason);
                        }
                    }
                    UnitError::Fatal(e) => {
                        jobs.abort_all();
                        journal.sync()?;
                        return Err(e);
                    }
                }
            }
            Event::Polled { unit, task, outcome } => match outcome {
                Ok(Polled::Finished { result_url }) => {
                    jobs.spawn(Arc::clone(&fetcher).store_result(unit, task, result_url));
                }
                Ok(Polled::NoData) | Ok(Polled::Error(_)) => {
                    let (kind, reason) = match outcome {
                        Ok(Polled::NoData) => {
                            (FailureKind::NoData, "No data returned (the server found no photometry)".into())
                        }
                        Ok(Polled::Error(msg)) => {
                            (FailureKind::ServerError, format!("the task failed on the server: {msg}"))
                        }
                        _ => unreachable!(),
                    };
                    let id = fail_task(journal, params, &mut tally, progress, &unit, &task, kind, reason)?;
                    jobs.spawn(Arc::clone(&fetcher).delete(id, task, true));
                }
                Ok(Polled::Gone) => {
                    tracing::info!(
                        "{}: task {task} is gone from the server (archived or expired); submitting again",
                        unit.target.id
                    );
                    in_flight -= 1;
                    queue_full = false;
                    alone.push_back(unit);
                }
                Ok(Polled::TimedOut) => {
                    tracing::warn!(
                        "{}: task {task} did not finish within {}; a later run continues it",
                        unit.target.id,
                        crate::human::human_duration(cfg.give_up_after)
                    );
                    left_for_later(&mut in_flight, &mut queue_full, &mut tally, progress);
                }
                Err(UnitError::Fatal(e)) => {
                    jobs.abort_all();
                    journal.sync()?;
                    return Err(e);
                }
                Err(e) => {
                    let reason = match e {
                        UnitError::Permanent { reason, .. } | UnitError::Transient(reason) => reason,
                        UnitError::Fatal(_) => unreachable!(),
                    };
                    tracing::warn!("{}: following task {task}: {reason}; a later run continues it", unit.target.id);
                    left_for_later(&mut in_flight, &mut queue_full, &mut tally, progress);
                }
            },
            Event::Stored { unit, task, result } => match result {
                Ok(inputs) => {
                    streak = 0;
                    let bytes: u64 = inputs.iter().map(|i| i.size).sum();
                    let id = unit.target.id.clone();
                    append(
                        journal,
                        JournalEntry::Done {
                            unit: id.clone(),
                            inputs,
                            params: Some(params.to_string()),
                            task: Some(task.clone()),
                        },
                    )?;
                    tally.done += 1;
                    tally.bytes += bytes;
                    progress.advance(1, bytes);
                    jobs.spawn(Arc::clone(&fetcher).delete(id, task, true));
                }
                Err(UnitError::Permanent { kind, reason }) => {
                    let id = fail_task(journal, params, &mut tally, progress, &unit, &task, kind, reason)?;
                    jobs.spawn(Arc::clone(&fetcher).delete(id, task, true));
                }
                Err(UnitError::Transient(reason)) => {
                    tracing::warn!("{}: downloading its result: {reason}; a later run continues it", unit.target.id);
                    left_for_later(&mut in_flight, &mut queue_full, &mut tally, progress);
                }
                Err(UnitError::Fatal(e)) => {
                    jobs.abort_all();
                    journal.sync()?;
                    return Err(e);
                }
            },
            Event::Deleted { unit, task, result, counted } => {
                if counted {
                    in_flight -= 1;
                    queue_full = false;
                }
                match result {
                    Ok(()) => append(journal, JournalEntry::TaskDeleted { unit, task })?,
                    Err(UnitError::Fatal(e)) => {
                        jobs.abort_all();
                        journal.sync()?;
                        return Err(e);
                    }
                    Err(e) => {
                        let reason = match e {
                            UnitError::Permanent { reason, .. } | UnitError::Transient(reason) => reason,
                            UnitError::Fatal(e) => e.to_string(),
                        };
                        tracing::warn!("could not delete task {task} ({reason}); the next run deletes it");
                        tally.undeleted += 1;
                    }
                }
            }
        }
        if last_detail.elapsed() >= Duration::from_millis(250) {
            last_detail = Instant::now();
            progress.set_detail(format!(
                "{}, {} on the server",
                crate::sources::engine::detail(&fetcher.client, started.elapsed()),
                crate::report::plural(in_flight, "task")
            ));
        }
    }
    tally.not_attempted = (queue.len() + alone.len()) as u64;
    tally.elapsed = started.elapsed();
    journal.sync()?;
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_bound_grows_with_the_mjd_range() {
        let now = 61000.0;
        // The server's default: the last 30 days.
        assert_eq!(result_max_body(None, None, now), 65536 + 31 * 64 * 256);
        assert_eq!(result_max_body(Some(60000.0), Some(60000.5), now), 65536 + 2 * 64 * 256);
        // Ten years: about 60 MB, however far in the future mjd_max is.
        let ten = result_max_body(Some(now - 3650.0), Some(99999.0), now);
        assert!((59_000_000..61_000_000).contains(&ten), "{ten}");
    }

    #[test]
    fn endpoints_keep_the_base_path() {
        let base = url::Url::parse("https://fallingstar-data.com/forcedphot").unwrap();
        assert_eq!(endpoint(&base, "queue/").as_str(), "https://fallingstar-data.com/forcedphot/queue/");
        let base = url::Url::parse("http://127.0.0.1:9/forcedphot/").unwrap();
        assert_eq!(endpoint(&base, "api-token-auth/").as_str(), "http://127.0.0.1:9/forcedphot/api-token-auth/");
    }

    #[test]
    fn task_json_is_read() {
        let t: Task = serde_json::from_str(
            r#"{"url":"https://x/forcedphot/queue/7/","id":7,"ra":10.5,"dec":-2.0,"finishtimestamp":"2026-01-01T00:00:00Z",
               "result_url":"https://x/forcedphot/static/results/job00007.txt","error_msg":null,"comment":"etd:x"}"#,
        )
        .unwrap();
        assert_eq!(t.result_url.as_deref(), Some("https://x/forcedphot/static/results/job00007.txt"));
        assert!(t.error_msg.is_none() && t.starttimestamp.is_none());
    }
}
