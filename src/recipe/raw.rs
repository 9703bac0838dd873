//! `RecipeFile`: the recipe exactly as written, before defaults and checks. Every struct denies
//! unknown keys; `resolve` turns it into a `Recipe`.

use indexmap::IndexMap;
use serde::Deserialize;

pub use crate::shard::Compression;
pub use crate::sources::astrocut::AstrocutFile;
pub use crate::sources::atlas_fp::{AtlasFpFile, PollFile};
pub use crate::sources::atlas_var::{AtlasVarFile, RegionFile};
pub use crate::sources::local::LocalFile;
pub use crate::sources::ps1::Ps1File;
pub use crate::spec::SampleFile;
pub use crate::transform::image::{ImageOutput, NanPolicy};
use crate::transform::scale::Scale;
use crate::units::{Rate, Size, Span};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeFile {
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub targets: Option<TargetsFile>,
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub source: SourceFile,
    #[serde(default)]
    pub politeness: Option<PolitenessFile>,
    #[serde(default)]
    pub transform: Option<TransformFile>,
    #[serde(default)]
    pub shard: Option<ShardFile>,
    #[serde(default)]
    pub publish: Option<PublishFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsFile {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub list: Option<Vec<IndexMap<String, serde_yaml::Value>>>,
    #[serde(default)]
    pub columns: Option<ColumnsFile>,
    #[serde(default)]
    pub sample: Option<SampleFile>,
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnsFile {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub ra: Option<String>,
    #[serde(default)]
    pub dec: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

/// Exactly one source kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum SourceFile {
    #[serde(rename = "ps1-cutouts")]
    Ps1Cutouts(Ps1File),
    #[serde(rename = "atlas-fp")]
    AtlasFp(AtlasFpFile),
    #[serde(rename = "atlas-var")]
    AtlasVar(AtlasVarFile),
    #[serde(rename = "local")]
    Local(LocalFile),
    #[serde(rename = "astrocut")]
    Astrocut(AstrocutFile),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolitenessFile {
    #[serde(default)]
    pub concurrency: Option<i64>,
    #[serde(default)]
    pub rate: Option<Rate>,
    #[serde(default)]
    pub retries: Option<i64>,
    #[serde(default)]
    pub timeout: Option<Span>,
    #[serde(default)]
    pub backoff: Option<BackoffFile>,
    #[serde(default)]
    pub read_rate: Option<Rate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffFile {
    #[serde(default)]
    pub initial: Option<Span>,
    #[serde(default)]
    pub max: Option<Span>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformFile {
    #[serde(default)]
    pub image: Option<ImageFile>,
    #[serde(default)]
    pub lightcurve: Option<LightCurveFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightCurveFile {
    #[serde(default)]
    pub quality: Option<QualityName>,
    #[serde(default)]
    pub outputs: Option<Vec<LightCurveOutput>>,
}

/// `transform.lightcurve.quality`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QualityName {
    All,
    FaqCuts,
}

/// Fields the light-curve transform can emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LightCurveOutput {
    Npy,
    Json,
    Txt,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFile {
    #[serde(default)]
    pub stack_filters: Option<bool>,
    #[serde(default)]
    pub nan: Option<NanPolicy>,
    #[serde(default)]
    pub scale: Option<Scale>,
    #[serde(default)]
    pub outputs: Option<Vec<ImageOutput>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardFile {
    #[serde(default)]
    pub max_samples: Option<i64>,
    #[serde(default)]
    pub max_bytes: Option<Size>,
    #[serde(default)]
    pub compression: Option<Compression>,
    #[serde(default)]
    pub level: Option<i64>,
    #[serde(default)]
    pub split: Option<IndexMap<String, f64>>,
    #[serde(default)]
    pub shuffle_seed: Option<u64>,
    #[serde(default)]
    pub mtime: Option<u64>,
    #[serde(default)]
    pub md5: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishFile {
    pub origin: String,
    pub path: String,
    pub version: String,
    #[serde(default)]
    pub token_file: Option<String>,
}
