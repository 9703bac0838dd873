//! The ATLAS forced-photometry server (docs/archives.md section 2): token auth, a task queue, and 60
//! writes per minute per user. `fetch` submits targets in batches, follows each task on the
//! server until it finishes, downloads the light curve and deletes the task; the journal records
//! every task the moment the server accepts it, so a rerun continues instead of resubmitting.

pub mod auth;
pub mod fetch;
pub mod source;

/// The recipe key of this source and its `raw/` folder.
pub const KIND: &str = "atlas-fp";

use crate::units::Span;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::net::Politeness;
use crate::spec::KeyError;

use super::FetchPlan;
use crate::transform::lightcurve::LightCurveOutputs;
use crate::transform::Section;

/// The `transform` sections ATLAS forced-photometry samples are made with.
pub const TRANSFORMS: &[Section] = &[Section::LightCurve];

/// `source.atlas-fp` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlasFpFile {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<String>,
    #[serde(default)]
    pub username_env: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub mjd_min: Option<f64>,
    #[serde(default)]
    pub mjd_max: Option<f64>,
    #[serde(default)]
    pub use_reduced: Option<bool>,
    #[serde(default)]
    pub batch: Option<i64>,
    #[serde(default)]
    pub max_in_flight: Option<i64>,
    #[serde(default)]
    pub poll: Option<PollFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollFile {
    #[serde(default)]
    pub initial: Option<Span>,
    #[serde(default)]
    pub max: Option<Span>,
    #[serde(default)]
    pub give_up_after: Option<Span>,
}

pub const DEFAULT_BASE_URL: &str = "https://fallingstar-data.com/forcedphot";
pub const DEFAULT_TOKEN_ENV: &str = "ATLAS_TOKEN";
/// The server takes at most 100 lines in one `radeclist`.
pub const MAX_BATCH: u32 = 100;
/// The server refuses more than 500 queued tasks per user.
pub const SERVER_MAX_QUEUED: u32 = 500;
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct AtlasFpConfig {
    pub base_url: url::Url,
    pub credentials: Credentials,
    pub mjd_min: Option<f64>,
    pub mjd_max: Option<f64>,
    pub use_reduced: bool,
    pub batch: u32,
    /// Tasks of this run on the server at once (submitted and not yet deleted).
    pub max_in_flight: u32,
    /// First wait before polling a task, growing by half each poll up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// A task not finished this long after it was submitted (or resumed) is left for a later run.
    pub give_up_after: Duration,
}

impl AtlasFpConfig {
    /// The settings that shape a task's result and the endpoint that runs it, recorded with each
    /// task and finished unit: a task is only followed at the endpoint it was submitted to.
    pub fn params(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "server-default".into());
        super::params_at(
            format!(
                "atlas-fp mjd_min={} mjd_max={} use_reduced={}",
                opt(self.mjd_min),
                opt(self.mjd_max),
                self.use_reduced
            ),
            &self.base_url,
        )
    }

    /// Whether a task URL belongs to this recipe's endpoint (tasks elsewhere are never polled,
    /// nor sent this endpoint's token).
    pub fn owns_task(&self, task: &str) -> bool {
        let base = format!("{}/", super::endpoint_id(&self.base_url));
        url::Url::parse(task).is_ok_and(|u| u.as_str().starts_with(&base))
    }
}

/// Where the token comes from. Only names are kept here, never the secret.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    TokenEnv(String),
    TokenFile(PathBuf),
    Login { username_env: String, password_env: String },
}

pub fn default_politeness() -> Politeness {
    Politeness {
        concurrency: 4,
        rate: crate::units::rate(50.0, 60),
        retries: 6,
        timeout: Duration::from_secs(60),
        backoff_initial: Duration::from_secs(2),
        backoff_max: Duration::from_secs(300),
        read_rate: Some(crate::units::rate(300.0, 60)),
    }
}

pub(crate) fn resolve(raw: AtlasFpFile, dir: &Path) -> Result<AtlasFpConfig, KeyError> {
    const KEY: &str = "source.atlas-fp";
    let base_url = crate::spec::base_url(raw.base_url.as_deref(), DEFAULT_BASE_URL, &format!("{KEY}.base_url"))?;
    let credentials = match (raw.token_env, raw.token_file, raw.username_env, raw.password_env) {
        (None, None, None, None) => Credentials::TokenEnv(DEFAULT_TOKEN_ENV.into()),
        (Some(env), None, None, None) => Credentials::TokenEnv(env),
        (None, Some(file), None, None) => Credentials::TokenFile(crate::spec::relative_path(dir, &file)),
        (None, None, Some(u), Some(p)) => Credentials::Login { username_env: u, password_env: p },
        (None, None, Some(_), None) | (None, None, None, Some(_)) => {
            return Err(KeyError::with_hint(
                KEY,
                "`username_env` and `password_env` go together",
                "give both, or use `token_env`/`token_file`",
            ))
        }
        _ => {
            return Err(KeyError::with_hint(
                KEY,
                "more than one way to authenticate is given",
                "use one of `token_env`, `token_file`, or `username_env` + `password_env`",
            ))
        }
    };
    for (key, v) in [("mjd_min", raw.mjd_min), ("mjd_max", raw.mjd_max)] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                return Err(KeyError::new(&format!("{KEY}.{key}"), format!("expected a positive MJD, found {v}")));
            }
        }
    }
    if let (Some(lo), Some(hi)) = (raw.mjd_min, raw.mjd_max) {
        if hi <= lo {
            return Err(KeyError::new(&format!("{KEY}.mjd_max"), format!("mjd_max {hi} is not after mjd_min {lo}")));
        }
    }
    let batch = match raw.batch {
        None => MAX_BATCH,
        Some(b) if b >= 1 && b <= MAX_BATCH as i64 => b as u32,
        Some(b) => {
            return Err(KeyError::with_hint(
                &format!("{KEY}.batch"),
                format!("expected 1 to {MAX_BATCH} targets per request, found {b}"),
                "the server accepts at most 100 lines in one radeclist",
            ))
        }
    };
    let max_in_flight = match raw.max_in_flight {
        None => DEFAULT_MAX_IN_FLIGHT,
        Some(m) if m >= 1 && m <= SERVER_MAX_QUEUED as i64 => m as u32,
        Some(m) => {
            return Err(KeyError::with_hint(
                &format!("{KEY}.max_in_flight"),
                format!("expected 1 to {SERVER_MAX_QUEUED} tasks, found {m}"),
                "the server refuses more than 500 queued tasks per user, counting your other clients",
            ))
        }
    };
    let poll = raw.poll.unwrap_or(PollFile { initial: None, max: None, give_up_after: None });
    let poll_initial = poll.initial.map(|s| s.0).unwrap_or(Duration::from_secs(2));
    let poll_max = poll.max.map(|s| s.0).unwrap_or(Duration::from_secs(30));
    let give_up_after = poll.give_up_after.map(|s| s.0).unwrap_or(Duration::from_secs(6 * 3600));
    if poll_initial.is_zero() || poll_max < poll_initial {
        return Err(KeyError::new(
            &format!("{KEY}.poll"),
            "expected 0 < poll.initial <= poll.max (the wait between polls of a task)",
        ));
    }
    Ok(AtlasFpConfig {
        base_url,
        credentials,
        mjd_min: raw.mjd_min,
        mjd_max: raw.mjd_max,
        use_reduced: raw.use_reduced.unwrap_or(false),
        batch,
        max_in_flight,
        poll_initial,
        poll_max,
        give_up_after,
    })
}

/// Writes (the throttled requests): one POST per batch and one DELETE per target. Reads (polls and
/// downloads) depend on how long the queue takes and are not counted.
pub fn plan(cfg: &AtlasFpConfig, targets: u64) -> FetchPlan {
    let posts = targets.div_ceil(cfg.batch as u64);
    FetchPlan {
        units: targets,
        samples_per_unit: crate::sources::ONE_SAMPLE_EACH,
        items: targets,
        items_kind: "targets",
        requests: Some(posts + targets),
        requests_note: format!(
            "writes: {posts} POST /queue/ (batches of {}) + {targets} DELETE; polls and downloads not counted",
            cfg.batch
        ),
        input_bytes: None,
    }
}

/// The key-length budget: the longest field name a sample can have with these outputs (`cls`
/// included: labelled targets get one).
pub fn longest_field(outputs: LightCurveOutputs) -> usize {
    crate::keys::longest(outputs.fields().into_iter().chain(["cls"]))
}

/// Sample keys of all targets (in target order), from every target's id (see `ps1::target_keys`).
pub fn target_keys(
    targets: &[crate::target::Target],
    outputs: LightCurveOutputs,
) -> Result<Vec<String>, crate::error::UserError> {
    crate::keys::assign_keys(targets.iter().map(|t| t.id.as_str()), longest_field(outputs)).map_err(|e| {
        crate::error::UserError::usage(format!("target ids: {e}"))
            .with_hint("sample keys keep only [A-Za-z0-9_-]; make the ids differ in those characters")
    })
}
