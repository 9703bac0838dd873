//! Tasks, their lifecycle in real time, the result files they produce, and their JSON.

use super::json::{iso_utc, J};
use super::validate::TaskFields;
use super::FakeResult;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// The real result files served by default (thespacedoctor's `job*.txt`, see docs/archives.md 5).
pub(crate) const DEFAULTS: [&str; 3] = ["job00128", "job01064", "job01088"];

/// The real result file `name` (one of [`crate::fixtures::ATLAS_RESULTS`]), read from the fixtures
/// folder; `None` for another name.
pub(crate) fn fixture(name: &str) -> Option<&'static str> {
    if !crate::fixtures::ATLAS_RESULTS.contains(&name) {
        return None;
    }
    let text = crate::fixtures::text(&crate::fixtures::atlas_result(name))
        .unwrap_or_else(|e| panic!("the ATLAS emulator: {e}"));
    Some(text)
}

fn default_by_hash(h: u64) -> &'static str {
    let name = DEFAULTS[(h % DEFAULTS.len() as u64) as usize];
    fixture(name).expect("default fixtures are ATLAS results")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The default fixture for a position: a stable hash of the coordinates (-0.0 taken as 0.0).
pub(crate) fn default_fixture(ra: f64, dec: f64) -> &'static str {
    let norm = |x: f64| if x == 0.0 { 0.0f64.to_bits() } else { x.to_bits() };
    let mut key = norm(ra).to_le_bytes().to_vec();
    key.extend_from_slice(&norm(dec).to_le_bytes());
    default_by_hash(fnv1a(&key))
}

/// What a finished task produced.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Data(Cow<'static, [u8]>),
    Error(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Queued,
    Running,
    Finished,
}

#[derive(Clone, Debug)]
pub(crate) struct Task {
    pub id: u64,
    /// Index into the configured users.
    pub user: usize,
    pub fields: TaskFields,
    pub created: Instant,
    /// `timestamp`: the submission time truncated to the second, as `perform_create` stores it.
    pub timestamp: SystemTime,
    /// Wall-clock submission time (start and finish are reckoned from it).
    pub created_wall: SystemTime,
    pub outcome: Outcome,
    pub userqueuedtasks_on_submit: u64,
    /// Finished and then deleted by its owner, or expired via `archive_task`.
    pub archived: bool,
    /// Deleted by its owner before it finished: the row is gone.
    pub cancelled: bool,
    /// Deleted by its owner (archived or cancelled).
    pub deleted: bool,
}

/// How long tasks wait in the queue and then run, counted from submission.
pub(crate) struct Timing {
    pub queue: Duration,
    pub run: Duration,
}

impl Task {
    pub fn phase(&self, now: Instant, t: &Timing) -> Phase {
        let since = now.saturating_duration_since(self.created);
        if since < t.queue {
            Phase::Queued
        } else if since < t.queue + t.run {
            Phase::Running
        } else {
            Phase::Finished
        }
    }

    /// Visible to readers: not cancelled (archived rows still exist, but answer 404).
    pub fn exists(&self) -> bool {
        !self.cancelled
    }

    pub fn live(&self) -> bool {
        !self.cancelled && !self.archived
    }

    pub fn state(&self, now: Instant, t: &Timing) -> &'static str {
        if self.cancelled {
            "cancelled"
        } else if self.archived {
            "archived"
        } else {
            match self.phase(now, t) {
                Phase::Queued => "queued",
                Phase::Running => "running",
                Phase::Finished => "finished",
            }
        }
    }

    /// The result file bytes while they are being served.
    pub fn result_file(&self, now: Instant, t: &Timing) -> Option<&[u8]> {
        match (&self.outcome, self.live() && self.phase(now, t) == Phase::Finished) {
            (Outcome::Data(bytes), true) => Some(bytes),
            _ => None,
        }
    }
}

/// Everything the emulator remembers about tasks.
#[derive(Default)]
pub(crate) struct Store {
    pub tasks: BTreeMap<u64, Task>,
    pub next_id: u64,
    pub overrides: Vec<(f64, f64, FakeResult)>,
}

impl Store {
    /// What a new task at this target will produce (overrides win, then the default fixture).
    pub fn outcome_for(&self, f: &TaskFields) -> Outcome {
        let (ra, dec) = match (f.ra, f.dec, &f.mpc_name) {
            (_, _, Some(name)) if !name.is_empty() => {
                let h = fnv1a(name.as_bytes());
                return Outcome::Data(default_by_hash(h).as_bytes().into());
            }
            (Some(ra), Some(dec), _) => (ra, dec),
            _ => return Outcome::Error("No data returned".into()),
        };
        let hit = self.overrides.iter().rev().find(|(r, d, _)| (r - ra).abs() < 1e-9 && (d - dec).abs() < 1e-9);
        match hit.map(|(_, _, f)| f) {
            Some(FakeResult::Fixture(name)) => {
                Outcome::Data(fixture(name).unwrap_or_else(|| default_fixture(ra, dec)).as_bytes().into())
            }
            Some(FakeResult::NoData) => Outcome::Error("No data returned".into()),
            Some(FakeResult::Error(msg)) => Outcome::Error(msg.clone()),
            Some(FakeResult::Bytes(bytes)) => Outcome::Data(bytes.clone().into()),
            None => Outcome::Data(default_fixture(ra, dec).as_bytes().into()),
        }
    }

    /// Live tasks of a user that have not started (`MAX_USER_TASKS` counts these).
    pub fn unstarted(&self, user: usize, now: Instant, t: &Timing) -> usize {
        self.tasks.values().filter(|k| k.user == user && k.live() && k.phase(now, t) == Phase::Queued).count()
    }

    /// Ids of live unfinished tasks, ascending (queue positions are ranks in this list).
    pub fn unfinished(&self, now: Instant, t: &Timing) -> Vec<u64> {
        self.tasks.values().filter(|k| k.live() && k.phase(now, t) != Phase::Finished).map(|k| k.id).collect()
    }
}

/// Who is asking and where the server is, for the task JSON.
pub(crate) struct View<'a> {
    /// `http://host:port/forcedphot` as the request's Host header names it.
    pub base: &'a str,
    pub users: &'a [(String, String, String)],
    pub requester: Option<usize>,
    pub now: Instant,
    pub timing: &'a Timing,
    /// From [`Store::unfinished`].
    pub unfinished: &'a [u64],
}

fn secs(d: Duration) -> J {
    J::Float((d.as_secs_f64() * 10.0).round() / 10.0)
}

/// The 2026 serializer's fields, in order (docs/archives.md 2.5).
pub(crate) fn task_json(t: &Task, v: &View) -> J {
    let f = &t.fields;
    let phase = t.phase(v.now, v.timing);
    let start = t.created_wall + v.timing.queue;
    let finish = start + v.timing.run;
    let started = phase != Phase::Queued;
    let finished = phase == Phase::Finished;
    let result_url = match (&t.outcome, finished && !t.archived) {
        (Outcome::Data(_), true) => J::str(format!("{}/static/results/job{:05}.txt", v.base, t.id)),
        _ => J::Null,
    };
    let error_msg = match (&t.outcome, finished) {
        (Outcome::Error(m), true) => J::str(m.clone()),
        _ => J::Null,
    };
    let queuepos = if finished { J::Null } else { J::Int(v.unfinished.partition_point(|&id| id < t.id) as i64) };
    let callback = if v.requester == Some(t.user) { J::opt_s(f.callback_url.as_deref()) } else { J::Null };
    let waittime = if started { secs(start.duration_since(t.timestamp).unwrap_or_default()) } else { J::Null };
    let runtime = if finished { secs(v.timing.run) } else { J::Null };
    J::obj(vec![
        ("url", J::str(format!("{}/queue/{}/", v.base, t.id))),
        ("id", J::Int(t.id as i64)),
        ("user_id", J::Int(t.user as i64 + 1)),
        ("username", J::str(v.users.get(t.user).map_or("", |u| u.0.as_str()))),
        ("timestamp", J::str(iso_utc(t.timestamp))),
        ("mpc_name", J::opt_s(f.mpc_name.as_deref())),
        ("ra", J::opt_f(f.ra)),
        ("dec", J::opt_f(f.dec)),
        ("mjd_min", J::opt_f(f.mjd_min)),
        ("mjd_max", J::opt_f(f.mjd_max)),
        ("radec_epoch_year", J::opt_s(f.radec_epoch_year.as_deref())),
        ("propermotion_ra", J::opt_f(f.propermotion_ra)),
        ("propermotion_dec", J::opt_f(f.propermotion_dec)),
        ("use_reduced", J::Bool(f.use_reduced)),
        ("finished", J::Bool(finished)),
        ("result_url", result_url),
        ("comment", J::opt_s(f.comment.as_deref())),
        ("send_email", J::Bool(f.send_email)),
        ("callback_url", callback),
        ("starttimestamp", if started { J::str(iso_utc(start)) } else { J::Null }),
        ("finishtimestamp", if finished { J::str(iso_utc(finish)) } else { J::Null }),
        ("error_msg", error_msg),
        ("previewimage_url", J::Null),
        ("parent_task_id", J::Null),
        ("parent_task_url", J::Null),
        ("request_type", J::str(f.request_type.clone())),
        ("pdfplot_url", J::Null),
        ("queuepos", queuepos),
        ("imagerequest_task_id", J::Null),
        ("imagerequest_url", J::Null),
        ("imagerequest_finished", J::Null),
        ("result_imagestack_url", J::Null),
        ("result_imagezip_url", J::Null),
        ("userqueuedtasks_on_submit", J::Int(t.userqueuedtasks_on_submit as i64)),
        ("waittime", waittime),
        ("runtime", runtime),
        ("attempt_count", J::Int(i64::from(started))),
    ])
}
