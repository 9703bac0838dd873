//! Sources: one module per archive. Each turns its recipe section into units of work with stable
//! keys, knows its archive's protocol and politeness defaults, and plans requests for `etd check`.
//! No source writes files itself; the store does.

pub mod atlas_fp;
pub mod atlas_var;
pub mod local;
pub mod ps1;

use serde::Serialize;

use crate::net::Politeness;
use crate::recipe::Recipe;

/// The recipe's `source`, resolved.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    Ps1(ps1::Ps1Config),
    AtlasFp(atlas_fp::AtlasFpConfig),
    AtlasVar(atlas_var::AtlasVarConfig),
    Local(local::LocalConfig),
}

impl SourceConfig {
    /// The source's name as written in recipes.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Ps1(_) => "ps1-cutouts",
            SourceConfig::AtlasFp(_) => "atlas-fp",
            SourceConfig::AtlasVar(_) => "atlas-var",
            SourceConfig::Local(_) => "local",
        }
    }

    /// Whether the recipe must have `targets`.
    pub fn needs_targets(&self) -> bool {
        matches!(self, SourceConfig::Ps1(_) | SourceConfig::AtlasFp(_))
    }

    /// Politeness when the recipe does not say otherwise: inside the archive's published limits.
    pub fn default_politeness(&self) -> Politeness {
        match self {
            SourceConfig::Ps1(_) => ps1::default_politeness(),
            SourceConfig::AtlasFp(_) => atlas_fp::default_politeness(),
            SourceConfig::AtlasVar(_) => atlas_var::default_politeness(),
            SourceConfig::Local(_) => local::default_politeness(),
        }
    }

    /// The issue that brings fetching for sources this version cannot fetch yet.
    pub fn not_yet_available(&self) -> Option<&'static str> {
        match self {
            SourceConfig::Local(_) => None,
            SourceConfig::Ps1(_) => Some("the polite fetch engine and the PS1 cutout source"),
            SourceConfig::AtlasFp(_) => Some("the ATLAS forced-photometry source"),
            SourceConfig::AtlasVar(_) => Some("the ATLAS-VAR source"),
        }
    }
}

/// What a fetch would do, for `etd check` and `--dry-run`.
#[derive(Debug, Clone, Serialize)]
pub struct FetchPlan {
    /// Units of work (one sample each).
    pub units: u64,
    /// Input files (local source) or targets.
    pub items: u64,
    /// What `items` counts: `files` or `targets`.
    pub items_kind: &'static str,
    /// Requests a fetch makes without retries; None when it depends on the archive's answers.
    pub requests: Option<u64>,
    /// How the request count is made up.
    pub requests_note: String,
    /// Total input bytes when known (local source).
    pub input_bytes: Option<u64>,
}

/// Plan the fetch of a resolved recipe. Reads local files (directory listing) but never the network.
pub fn plan(recipe: &Recipe) -> anyhow::Result<FetchPlan> {
    let targets = recipe.targets.as_ref().map(|t| t.rows.len() as u64).unwrap_or(0);
    Ok(match &recipe.source {
        SourceConfig::Local(l) => local::plan(l)?,
        SourceConfig::Ps1(p) => ps1::plan(p, targets),
        SourceConfig::AtlasFp(a) => atlas_fp::plan(a, targets),
        SourceConfig::AtlasVar(a) => atlas_var::plan(a),
    })
}
