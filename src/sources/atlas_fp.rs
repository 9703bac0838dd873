//! The ATLAS forced-photometry server (ARCHIVES.md section 2): token auth, a task queue, and 60
//! writes per minute per user. This version resolves and plans; fetching arrives with its issue.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::net::Politeness;
use crate::recipe::raw::AtlasFpFile;
use crate::recipe::{RecipeError, RecipeSource};

use super::FetchPlan;

pub const DEFAULT_BASE_URL: &str = "https://fallingstar-data.com/forcedphot";
pub const DEFAULT_TOKEN_ENV: &str = "ATLAS_TOKEN";
/// The server takes at most 100 lines in one `radeclist`.
pub const MAX_BATCH: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct AtlasFpConfig {
    pub base_url: url::Url,
    pub credentials: Credentials,
    pub mjd_min: Option<f64>,
    pub mjd_max: Option<f64>,
    pub use_reduced: bool,
    pub batch: u32,
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
        rate: crate::recipe::rate(50.0, 60),
        retries: 6,
        timeout: Duration::from_secs(60),
        backoff_initial: Duration::from_secs(2),
        backoff_max: Duration::from_secs(300),
    }
}

pub(crate) fn resolve(raw: AtlasFpFile, dir: &Path, src: &RecipeSource) -> Result<AtlasFpConfig, RecipeError> {
    const KEY: &str = "source.atlas-fp";
    let base_url = crate::recipe::base_url(raw.base_url.as_deref(), DEFAULT_BASE_URL, &format!("{KEY}.base_url"), src)?;
    let credentials = match (raw.token_env, raw.token_file, raw.username_env, raw.password_env) {
        (None, None, None, None) => Credentials::TokenEnv(DEFAULT_TOKEN_ENV.into()),
        (Some(env), None, None, None) => Credentials::TokenEnv(env),
        (None, Some(file), None, None) => Credentials::TokenFile(crate::recipe::relative_path(dir, &file)),
        (None, None, Some(u), Some(p)) => Credentials::Login { username_env: u, password_env: p },
        (None, None, Some(_), None) | (None, None, None, Some(_)) => {
            return Err(src.error_hint(
                KEY,
                "`username_env` and `password_env` go together",
                "give both, or use `token_env`/`token_file`",
            ))
        }
        _ => {
            return Err(src.error_hint(
                KEY,
                "more than one way to authenticate is given",
                "use one of `token_env`, `token_file`, or `username_env` + `password_env`",
            ))
        }
    };
    for (key, v) in [("mjd_min", raw.mjd_min), ("mjd_max", raw.mjd_max)] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                return Err(src.error(&format!("{KEY}.{key}"), format!("expected a positive MJD, found {v}")));
            }
        }
    }
    if let (Some(lo), Some(hi)) = (raw.mjd_min, raw.mjd_max) {
        if hi <= lo {
            return Err(src.error(&format!("{KEY}.mjd_max"), format!("mjd_max {hi} is not after mjd_min {lo}")));
        }
    }
    let batch = match raw.batch {
        None => MAX_BATCH,
        Some(b) if b >= 1 && b <= MAX_BATCH as i64 => b as u32,
        Some(b) => {
            return Err(src.error_hint(
                &format!("{KEY}.batch"),
                format!("expected 1 to {MAX_BATCH} targets per request, found {b}"),
                "the server accepts at most 100 lines in one radeclist",
            ))
        }
    };
    Ok(AtlasFpConfig {
        base_url,
        credentials,
        mjd_min: raw.mjd_min,
        mjd_max: raw.mjd_max,
        use_reduced: raw.use_reduced.unwrap_or(false),
        batch,
    })
}

/// Writes (the throttled requests): one POST per batch and one DELETE per target. Reads (polls and
/// downloads) depend on how long the queue takes and are not counted.
pub fn plan(cfg: &AtlasFpConfig, targets: u64) -> FetchPlan {
    let posts = targets.div_ceil(cfg.batch as u64);
    FetchPlan {
        units: targets,
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
