//! `RecipeFile` -> `Recipe`: defaults applied, paths made absolute, URLs parsed, limits checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use super::raw::{self, RecipeFile, SourceFile};
use super::targets::{self, Targets};
use super::{RecipeError, RecipeSource};
use crate::env_vars;
use crate::net::Politeness;
use crate::publish::config::{Origin, PublishConfig};
use crate::shard::{Compression, ShardConfig};
use crate::sources::{astrocut, atlas_fp, atlas_var, local, ps1, SourceConfig};
use crate::transform::image::{ImageOutput, ImageTransform};
use crate::transform::lightcurve::LightCurveTransform;
use crate::transform::Section;
use crate::units::Size;

/// A checked recipe with every default filled in. Commands see only this.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The recipe file, absolute.
    pub path: PathBuf,
    /// Folder relative paths are resolved against.
    pub dir: PathBuf,
    /// sha256 of the recipe file's bytes (recorded in the manifest).
    pub sha256: String,
    pub name: String,
    pub description: Option<String>,
    pub targets: Option<Targets>,
    pub source: SourceConfig,
    pub politeness: Politeness,
    pub image: ImageTransform,
    pub lightcurve: LightCurveTransform,
    pub shard: ShardConfig,
    pub publish: Option<PublishConfig>,
    /// Things worth telling the user that are not errors.
    pub warnings: Vec<String>,
}

pub const DEFAULT_MAX_SAMPLES: u64 = 10_000;
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

pub use crate::spec::relative_path;

pub(super) fn resolve(
    file: RecipeFile,
    path: &Path,
    sha256: String,
    src: &RecipeSource,
    exceed_archive_limits: bool,
) -> Result<Recipe, RecipeError> {
    if file.version != 1 {
        return Err(src.error_hint(
            "version",
            format!("unsupported recipe version {}", file.version),
            format!("etd {} reads recipe version 1", crate::VERSION),
        ));
    }
    check_name(&file.name, src)?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let mut warnings = Vec::new();

    let source = resolve_source(file.source, &dir, src)?;
    let targets = match (file.targets, source.needs_targets()) {
        (Some(t), true) => Some(targets::resolve(t, &dir, src)?),
        (None, true) => {
            return Err(src.error_hint(
                "targets",
                format!("the {} source needs targets", source.kind()),
                "add `targets: {file: targets.csv}` or `targets: {list: [{id: a, ra: 10.5, dec: -2.1}]}`",
            ))
        }
        (Some(_), false) => {
            return Err(src.error_hint(
                "targets",
                format!("the {} source does not use targets", source.kind()),
                "remove the `targets` section",
            ))
        }
        (None, false) => None,
    };
    let has_politeness = file.politeness.is_some();
    let politeness = resolve_politeness(file.politeness.unwrap_or_default(), source.default_politeness(), src)?;
    if has_politeness && !source.source().networked() {
        warnings.push(format!("`politeness` has no effect with the {} source: it makes no requests", source.kind()));
    }
    warnings.extend(source.source().check_politeness(&politeness, exceed_archive_limits).map_err(|e| src.upgrade(e))?);
    let transform = file.transform.unwrap_or_default();
    check_transforms(&source, &transform, src)?;
    let image = resolve_image(transform.image.unwrap_or_default(), src)?;
    let lightcurve = resolve_lightcurve(transform.lightcurve.unwrap_or_default(), src)?;
    source.source().check_image(&image).map_err(|e| src.upgrade(e))?;
    let shard = resolve_shard(file.shard.unwrap_or_default(), src)?;
    let publish = file.publish.map(|p| resolve_publish(p, &dir, src)).transpose()?;
    Ok(Recipe {
        path: abs,
        dir,
        sha256,
        name: file.name,
        description: file.description,
        targets,
        source,
        politeness,
        image,
        lightcurve,
        shard,
        publish,
        warnings,
    })
}

fn check_name(name: &str, src: &RecipeSource) -> Result<(), RecipeError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(src.error_hint(
            "name",
            format!("expected [a-z0-9][a-z0-9-]* of at most 64 characters, found `{name}`"),
            "the name is used in shard and publish paths, e.g. `ps1-galaxy-morphology`",
        ))
    }
}

fn resolve_source(raw: SourceFile, dir: &Path, src: &RecipeSource) -> Result<SourceConfig, RecipeError> {
    Ok(match raw {
        SourceFile::Local(l) => SourceConfig::Local(local::resolve(l, dir).map_err(|e| src.upgrade(e))?),
        SourceFile::Ps1Cutouts(p) => SourceConfig::Ps1(ps1::resolve(p).map_err(|e| src.upgrade(e))?),
        SourceFile::AtlasFp(a) => SourceConfig::AtlasFp(atlas_fp::resolve(a, dir).map_err(|e| src.upgrade(e))?),
        SourceFile::AtlasVar(a) => SourceConfig::AtlasVar(atlas_var::resolve(a).map_err(|e| src.upgrade(e))?),
        SourceFile::Astrocut(a) => SourceConfig::Astrocut(astrocut::resolve(a).map_err(|e| src.upgrade(e))?),
    })
}

/// Every `transform` section the recipe sets must be one the source makes its samples with.
fn check_transforms(source: &SourceConfig, raw: &raw::TransformFile, src: &RecipeSource) -> Result<(), RecipeError> {
    let used = source.transforms();
    let given = [(Section::Image, raw.image.is_some()), (Section::LightCurve, raw.lightcurve.is_some())];
    let Some(section) = given.into_iter().find(|(s, set)| *set && !used.contains(s)).map(|(s, _)| s) else {
        return Ok(());
    };
    let kind = source.kind();
    let uses = match used {
        [] => format!("the {kind} source uses no transform section: its samples' fields are fixed"),
        _ => format!("the {kind} source uses {}", used.iter().map(|s| s.key()).collect::<Vec<_>>().join(" and ")),
    };
    Err(src.section_error(
        section.key(),
        format!("the {kind} source makes no use of {}", section.key()),
        format!("{uses}; remove `{}`", section.key()),
    ))
}

/// Parse a URL for key `key`, accepting only the given schemes.
pub(crate) fn parse_url(text: &str, key: &str, schemes: &[&str], src: &RecipeSource) -> Result<url::Url, RecipeError> {
    crate::spec::parse_url(text, key, schemes).map_err(|e| src.upgrade(e))
}

fn positive(value: i64, key: &str, what: &str, src: &RecipeSource) -> Result<u64, RecipeError> {
    if value > 0 {
        Ok(value as u64)
    } else {
        Err(src.error(key, format!("expected {what} above zero, found {value}")))
    }
}

fn resolve_politeness(
    raw: raw::PolitenessFile,
    default: Politeness,
    src: &RecipeSource,
) -> Result<Politeness, RecipeError> {
    let mut p = default;
    if let Some(c) = raw.concurrency {
        let c = positive(c, "politeness.concurrency", "a number of requests", src)?;
        p.concurrency =
            u32::try_from(c).map_err(|_| src.error("politeness.concurrency", format!("{c} is out of range")))?;
    }
    if let Some(r) = raw.rate {
        p.rate = r;
    }
    if let Some(r) = raw.read_rate {
        if p.read_rate.is_none() {
            return Err(src.error_hint(
                "politeness.read_rate",
                "this source does not limit reads apart from writes",
                "`rate` covers every request of this source; remove `read_rate`",
            ));
        }
        p.read_rate = Some(r);
    }
    if let Some(r) = raw.retries {
        p.retries = u32::try_from(r)
            .map_err(|_| src.error("politeness.retries", format!("expected 0 to {} retries, found {r}", u32::MAX)))?;
    }
    if let Some(t) = raw.timeout {
        if t.0 < Duration::from_millis(100) {
            return Err(src.error("politeness.timeout", format!("a timeout of {t} is too short to complete a request")));
        }
        p.timeout = t.0;
    }
    if let Some(b) = raw.backoff {
        if let Some(i) = b.initial {
            p.backoff_initial = i.0;
        }
        if let Some(m) = b.max {
            p.backoff_max = m.0;
        }
        if p.backoff_max < p.backoff_initial {
            return Err(src.error("politeness.backoff.max", "backoff.max is shorter than backoff.initial"));
        }
    }
    Ok(p)
}

fn resolve_image(raw: raw::ImageFile, src: &RecipeSource) -> Result<ImageTransform, RecipeError> {
    let mut outputs = raw.outputs.unwrap_or_else(|| vec![ImageOutput::Npy, ImageOutput::Json]);
    if outputs.is_empty() {
        return Err(src.error_hint("transform.image.outputs", "expected at least one output", "e.g. `[npy, json]`"));
    }
    let n = outputs.len();
    outputs.sort();
    outputs.dedup();
    if outputs.len() != n {
        return Err(src.error("transform.image.outputs", "an output is listed twice"));
    }
    Ok(ImageTransform {
        stack_filters: raw.stack_filters.unwrap_or(true),
        nan: raw.nan.unwrap_or_default(),
        scale: raw.scale.unwrap_or_default(),
        outputs,
    })
}

fn resolve_lightcurve(raw: raw::LightCurveFile, src: &RecipeSource) -> Result<LightCurveTransform, RecipeError> {
    use crate::transform::lightcurve::{LightCurveOutputs, Quality};
    let quality = match raw.quality {
        None | Some(raw::QualityName::All) => Quality::All,
        Some(raw::QualityName::FaqCuts) => Quality::FaqCuts,
    };
    let list = raw
        .outputs
        .unwrap_or_else(|| vec![raw::LightCurveOutput::Npy, raw::LightCurveOutput::Json, raw::LightCurveOutput::Txt]);
    if list.is_empty() {
        return Err(src.error_hint(
            "transform.lightcurve.outputs",
            "expected at least one output",
            "e.g. `[npy, json, txt]`",
        ));
    }
    let mut sorted = list.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != list.len() {
        return Err(src.error("transform.lightcurve.outputs", "an output is listed twice"));
    }
    let has = |o: raw::LightCurveOutput| list.contains(&o);
    Ok(LightCurveTransform {
        quality,
        outputs: LightCurveOutputs {
            npy: has(raw::LightCurveOutput::Npy),
            json: has(raw::LightCurveOutput::Json),
            txt: has(raw::LightCurveOutput::Txt),
        },
    })
}

fn resolve_shard(raw: raw::ShardFile, src: &RecipeSource) -> Result<ShardConfig, RecipeError> {
    let max_samples = match raw.max_samples {
        Some(v) => positive(v, "shard.max_samples", "a number of samples", src)?,
        None => DEFAULT_MAX_SAMPLES,
    };
    let max_bytes = match raw.max_bytes {
        Some(Size(0)) => return Err(src.error("shard.max_bytes", "expected a size above zero, found 0")),
        Some(Size(b)) => b,
        None => DEFAULT_MAX_BYTES,
    };
    let compression = raw.compression.unwrap_or_default();
    let level = match raw.level {
        Some(l) if !(1..=19).contains(&l) => {
            return Err(src.error_hint(
                "shard.level",
                format!("expected a zstd level from 1 to 19, found {l}"),
                "3 is fast; 19 is smallest",
            ))
        }
        Some(_) if compression == Compression::None => {
            return Err(src.error_hint(
                "shard.level",
                "`level` needs `compression: zstd`",
                "set `compression: zstd` or remove `level`",
            ))
        }
        Some(l) => l as i32,
        None => DEFAULT_ZSTD_LEVEL,
    };
    let splits = match raw.split {
        None => vec![(crate::shard::manifest::ALL_SPLIT.to_string(), 1.0)],
        Some(map) => resolve_splits(map, src)?,
    };
    let mtime = match raw.mtime {
        Some(m) => m,
        None => match std::env::var(env_vars::SOURCE_DATE_EPOCH) {
            Ok(v) => v.trim().parse().map_err(|_| {
                src.error_hint(
                    "shard.mtime",
                    format!("${} is `{v}`, not a whole number of seconds", env_vars::SOURCE_DATE_EPOCH),
                    "set it to a Unix time such as 1700000000, or set `shard.mtime` in the recipe",
                )
            })?,
            Err(_) => 0,
        },
    };
    if mtime > crate::shard::writer::USTAR_MAX {
        return Err(src.error(
            "shard.mtime",
            format!("mtime {mtime} does not fit a ustar header (at most {})", crate::shard::writer::USTAR_MAX),
        ));
    }
    Ok(ShardConfig {
        max_samples,
        max_bytes,
        compression,
        level,
        splits,
        shuffle_seed: raw.shuffle_seed,
        mtime,
        md5: raw.md5.unwrap_or(false),
    })
}

fn resolve_splits(map: IndexMap<String, f64>, src: &RecipeSource) -> Result<Vec<(String, f64)>, RecipeError> {
    if map.is_empty() {
        return Err(src.error_hint("shard.split", "expected at least one split", "e.g. `{train: 0.9, val: 0.1}`"));
    }
    let mut total = 0.0;
    for (name, fraction) in &map {
        let key = format!("shard.split.{name}");
        let ok_name = !name.is_empty()
            && name.len() <= 16
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name != crate::shard::manifest::ALL_SPLIT;
        if !ok_name {
            return Err(src.error_hint(
                &key,
                format!("split name `{name}` is not [a-z0-9]{{1,16}}"),
                "names such as train, val, test; `all` is reserved",
            ));
        }
        if !(fraction.is_finite() && *fraction > 0.0 && *fraction <= 1.0) {
            return Err(src.error(&key, format!("expected a fraction in (0, 1], found {fraction}")));
        }
        total += fraction;
    }
    if (total - 1.0).abs() > 1e-9 {
        return Err(src.error_hint(
            "shard.split",
            format!("split fractions sum to {total}, not 1"),
            "e.g. `{train: 0.8, val: 0.1, test: 0.1}`",
        ));
    }
    Ok(map.into_iter().collect())
}

fn resolve_publish(raw: raw::PublishFile, dir: &Path, src: &RecipeSource) -> Result<PublishConfig, RecipeError> {
    let origin = if raw.origin.contains("://") {
        Origin::Url(parse_url(&raw.origin, "publish.origin", &["https", "http"], src)?)
    } else {
        Origin::Folder(relative_path(dir, &raw.origin))
    };
    // Segments of letters, digits, `.`, `_`, `-` and `+` only: no `\` (a separator on Windows),
    // `:` (a drive), control characters or NUL can make a path that leaves the origin.
    let segment_ok = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
    };
    let path_ok = !raw.path.starts_with('/') && raw.path.split('/').all(segment_ok);
    if !path_ok {
        let shown: String = raw.path.escape_debug().take(200).collect();
        return Err(src.error_hint(
            "publish.path",
            format!("expected a relative namespace path such as `ifa/ps1-galaxies`, found `{shown}`"),
            "`/`-separated segments of letters, digits, `.`, `_`, `-` and `+`; no leading `/`, no empty, `.` or `..` segments",
        ));
    }
    let version_ok = !raw.version.is_empty()
        && raw.version != "."
        && raw.version != ".."
        && raw.version.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !version_ok {
        return Err(
            src.error("publish.version", format!("expected a version name such as `v1`, found `{}`", raw.version))
        );
    }
    let token_file = raw.token_file.map(|t| relative_path(dir, &t));
    if token_file.is_some() && matches!(origin, Origin::Folder(_)) {
        return Err(src.error_hint(
            "publish.token_file",
            "a token is only used with an https:// origin",
            "remove `token_file`",
        ));
    }
    Ok(PublishConfig { origin, path: raw.path, version: raw.version, token_file })
}
