//! The `local` source: files already on this machine (a DTN's mirror, simulation output), matched by
//! a glob below `dir` and grouped into samples by file stem. Fetch copies nothing: it records each
//! input's path, size and sha256 in the journal so `shard` can refuse inputs changed since.

pub mod source;

/// The recipe key of this source.
pub const KIND: &str = "local";

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use fs_err as fs;
use rayon::prelude::*;

use super::FetchPlan;
use crate::transform::image::ImageTransform;
use crate::transform::Section;

/// The `transform` sections local samples are made with (for their FITS files).
pub const TRANSFORMS: &[Section] = &[Section::Image];

/// The key-length budget: the longest field name a sample can have, from the image transform's
/// outputs (every sample may get a generated `json`) and the fields of the recorded files `inputs`.
pub fn longest_field<'a>(image: &ImageTransform, inputs: impl IntoIterator<Item = &'a str>) -> usize {
    crate::keys::longest(image.outputs.iter().map(|o| o.field()).chain(inputs))
}
use crate::digest::hash_file;
use crate::error::UserError;
use crate::net::Politeness;
use crate::report::Reporter;
use crate::spec::KeyError;
use crate::store::journal::{now_ns, recordable_times};
use crate::store::{FetchJournal, InputRecord, JournalEntry};

/// `source.local` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalFile {
    pub dir: String,
    #[serde(default)]
    pub pattern: Option<String>,
}

pub const DEFAULT_PATTERN: &str = "**/*";

#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    pub dir: PathBuf,
    pub pattern: String,
}

/// One sample's files: the unit id is the path below `dir` without the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUnit {
    pub id: String,
    /// (path relative to `dir` with `/`, field name), sorted by field.
    pub files: Vec<(String, String)>,
}

pub fn default_politeness() -> Politeness {
    Politeness {
        concurrency: 1,
        rate: crate::units::rate(1.0, 1),
        retries: 0,
        timeout: Duration::from_secs(60),
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(1),
        read_rate: None,
    }
}

pub(crate) fn resolve(raw: LocalFile, dir: &Path) -> Result<LocalConfig, KeyError> {
    let path = crate::spec::relative_path(dir, &raw.dir);
    if !path.is_dir() {
        return Err(KeyError::with_hint(
            "source.local.dir",
            format!("{} is not a folder", path.display()),
            "`dir` is relative to the recipe file",
        ));
    }
    let pattern = raw.pattern.unwrap_or_else(|| DEFAULT_PATTERN.into());
    if let Err(e) = glob::Pattern::new(&pattern) {
        return Err(KeyError::with_hint(
            "source.local.pattern",
            format!("`{pattern}` is not a valid glob: {e}"),
            "e.g. `**/*.fits` or `*.{fits,json}` is not supported; use one pattern such as `**/*`",
        ));
    }
    Ok(LocalConfig { dir: path, pattern })
}

/// The field a file becomes, and its stem: `x.fits` -> (`x`, `fits`); `x.fit`/`x.fts` count as
/// `fits`; `x.fits.fz` (tile-compressed FITS) is `fits` with stem `x`.
pub fn field_of(name: &str) -> Option<(&str, String)> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".fits.fz") {
        return Some((&name[..name.len() - 8], "fits".into()));
    }
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let ext = ext.to_ascii_lowercase();
    let field = match ext.as_str() {
        "fit" | "fts" => "fits".to_string(),
        _ => ext,
    };
    Some((stem, field))
}

/// List the matching files and group them into units, sorted by id.
pub fn discover(cfg: &LocalConfig) -> anyhow::Result<Vec<LocalUnit>> {
    let full = format!("{}/{}", glob::Pattern::escape(&cfg.dir.to_string_lossy()), cfg.pattern);
    let opts =
        glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: true };
    let mut units: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let paths = glob::glob_with(&full, opts)
        .with_context(|| format!("bad pattern {full}"))?
        .collect::<Result<Vec<PathBuf>, _>>()
        .with_context(|| format!("cannot list {}", cfg.dir.display()))?;
    // One stat per match, on every core (serial, it was a third of a fetch's first 0.15 s on
    // 20,000 files, with one core idle).
    let is_file: Vec<bool> = paths.par_iter().map(|p| p.is_file()).collect();
    for path in paths.into_iter().zip(is_file).filter_map(|(p, file)| file.then_some(p)) {
        let rel = path.strip_prefix(&cfg.dir).unwrap_or(&path);
        let rel_text = rel
            .to_str()
            .ok_or_else(|| UserError::failure(format!("file name is not UTF-8: {}", path.display())))?
            .replace(std::path::MAIN_SEPARATOR, "/");
        let name = rel_text.rsplit('/').next().unwrap_or(&rel_text);
        let (stem, field) = field_of(name).ok_or_else(|| {
            UserError::usage(format!("{} has no file extension to name its sample field", path.display()))
                .with_hint("narrow `source.local.pattern` to files with extensions, e.g. `**/*.fits`")
        })?;
        let parent = &rel_text[..rel_text.len() - name.len()];
        let id = format!("{parent}{stem}");
        let files = units.entry(id.clone()).or_default();
        if let Some((other, _)) = files.iter().find(|(_, f)| *f == field) {
            return Err(UserError::usage(format!(
                "{other} and {rel_text} would both become field `{field}` of sample `{id}`"
            ))
            .with_hint("rename one of them or narrow `source.local.pattern`")
            .into());
        }
        files.push((rel_text.clone(), field));
    }
    Ok(units
        .into_iter()
        .map(|(id, mut files)| {
            files.sort_by(|a, b| a.1.cmp(&b.1));
            LocalUnit { id, files }
        })
        .collect())
}

pub fn plan(cfg: &LocalConfig) -> anyhow::Result<FetchPlan> {
    let units = discover(cfg)?;
    let files: Vec<PathBuf> = units.iter().flat_map(|u| u.files.iter().map(|(p, _)| cfg.dir.join(p))).collect();
    let mut bytes = 0;
    for f in &files {
        bytes += fs::metadata(f)?.len();
    }
    Ok(FetchPlan {
        units: units.len() as u64,
        samples_per_unit: crate::sources::ONE_SAMPLE_EACH,
        items: files.len() as u64,
        items_kind: "files",
        requests: Some(0),
        requests_note: "local files: no requests".into(),
        input_bytes: Some(bytes),
    })
}

/// Outcome of a local fetch.
#[derive(Debug, Default)]
pub struct LocalFetchSummary {
    /// Units whose files are new or changed.
    pub recorded: u64,
    /// Units whose files are as recorded (some recorded again with their times).
    pub unchanged: u64,
    /// Units recorded before whose files are gone now.
    pub removed: u64,
    /// The signal that stopped the fetch between units (nothing is then marked removed).
    pub interrupted: Option<crate::stop::StopSignal>,
}

/// Record every unit's inputs in the journal; units whose files have the same size and times as
/// recorded are skipped (see `record_unit`). Units are hashed in parallel and journaled in id
/// order, a group at a time.
pub fn fetch(
    cfg: &LocalConfig,
    journal: &mut FetchJournal,
    reporter: &Reporter,
    split: crate::sources::TaskSplit,
) -> anyhow::Result<LocalFetchSummary> {
    let mut units = discover(cfg)?;
    // A task of a split records its share of the units (in its own journal).
    units.retain(|u| split.owns(&u.id));
    // Units recorded before whose files are gone (`units` is sorted by id).
    let gone: Vec<String> = journal
        .done_units()
        .filter(|u| split.owns(u) && units.binary_search_by(|x| x.id.as_str().cmp(u)).is_err())
        .map(str::to_string)
        .collect();
    let progress = reporter.start("fetch", units.len() as u64);
    let mut summary = LocalFetchSummary::default();
    // Groups of 32 units per thread: small enough to stop soon after a signal, large enough
    // that the workers are not woken and parked for every few files (at 4 per thread, rayon's
    // sleep and wake-up was a tenth of a fetch's CPU on 20 KB files).
    let chunk = rayon::current_num_threads().max(1) * 32;
    for group in units.chunks(chunk) {
        if let Some(signal) = crate::stop::requested() {
            summary.interrupted = Some(signal);
            journal.sync()?;
            return Ok(summary);
        }
        let records: Vec<anyhow::Result<Recording>> =
            group.par_iter().map(|u| record_unit(cfg, u, journal.get(&u.id))).collect();
        // The group's lines are written together, in id order, up to the first unit that failed
        // (whose error ends the fetch after them).
        let mut lines = Vec::new();
        let mut failed = None;
        for (unit, rec) in group.iter().zip(records) {
            match rec {
                Err(e) => {
                    failed = Some(e);
                    break;
                }
                Ok(Recording::Unchanged) => {
                    summary.unchanged += 1;
                    progress.advance(1, 0);
                }
                Ok(Recording::Retimed(inputs)) => {
                    lines.push(JournalEntry::Done { unit: unit.id.clone(), inputs, params: None, task: None });
                    summary.unchanged += 1;
                    progress.advance(1, 0);
                }
                Ok(Recording::Changed(inputs)) => {
                    let bytes = inputs.iter().map(|i| i.size).sum();
                    lines.push(JournalEntry::Done { unit: unit.id.clone(), inputs, params: None, task: None });
                    summary.recorded += 1;
                    progress.advance(1, bytes);
                }
            }
        }
        journal.append_all(lines)?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    for unit in gone {
        tracing::info!("{unit}: its files are gone from {}; dropping it", cfg.dir.display());
        journal.append(JournalEntry::Removed { unit })?;
        summary.removed += 1;
    }
    journal.sync()?;
    Ok(summary)
}

/// What a unit's files are against what the journal recorded.
enum Recording {
    /// The same files with the same size and times, or (recorded without times, and still
    /// without recordable ones) the same size and sha256: nothing to write.
    Unchanged,
    /// The same bytes with new times (touched, or aged past the racy window since a fetch
    /// recorded them without times): recorded again so `shard` need not hash them; counted as
    /// unchanged.
    Retimed(Vec<InputRecord>),
    /// New or changed files.
    Changed(Vec<InputRecord>),
}

/// Compare a unit's files with what the journal recorded, hashing them unless their size and
/// times show them unchanged.
fn record_unit(cfg: &LocalConfig, unit: &LocalUnit, known: Option<&JournalEntry>) -> anyhow::Result<Recording> {
    // Stat'ed before hashing: a change while hashing shows as a newer time at shard.
    let now = now_ns();
    let mut metas = Vec::new();
    for (rel, field) in &unit.files {
        metas.push((rel, field, fs::metadata(cfg.dir.join(rel))?));
    }
    let recorded_before = matches!(known, Some(JournalEntry::Done { .. }));
    let known = match known {
        Some(JournalEntry::Done { inputs, .. })
            if inputs.len() == metas.len()
                && inputs.iter().zip(&metas).all(|(i, (rel, field, _))| &i.path == *rel && &i.field == *field) =>
        {
            Some(inputs)
        }
        _ => None,
    };
    if let Some(inputs) = known {
        if inputs.iter().zip(&metas).all(|(i, (_, _, meta))| i.stat_matches(meta)) {
            return Ok(Recording::Unchanged);
        }
    }
    let mut records = Vec::new();
    for (rel, field, meta) in metas {
        let (mtime_ns, ctime_ns) = recordable_times(&meta, now);
        let (size, sha256) = hash_file(&cfg.dir.join(rel))?;
        records.push(InputRecord {
            path: rel.clone(),
            field: field.clone(),
            size,
            sha256,
            mtime_ns,
            ctime_ns,
            url: None,
        });
    }
    let same_bytes =
        known.is_some_and(|k| k.iter().zip(&records).all(|(i, r)| i.size == r.size && i.sha256 == r.sha256));
    if same_bytes {
        // Nothing new to record while the times are still not recordable either.
        if records.iter().all(|r| r.mtime_ns == 0) {
            return Ok(Recording::Unchanged);
        }
        tracing::debug!("{}: inputs unchanged; recording their times", unit.id);
        return Ok(Recording::Retimed(records));
    }
    if recorded_before {
        tracing::info!("{}: inputs changed since the last fetch; recording them again", unit.id);
    }
    Ok(Recording::Changed(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_stems() {
        assert_eq!(field_of("a.fits"), Some(("a", "fits".into())));
        assert_eq!(field_of("a.b.FIT"), Some(("a.b", "fits".into())));
        assert_eq!(field_of("x.fits.fz"), Some(("x", "fits".into())));
        assert_eq!(field_of("job01088.txt"), Some(("job01088", "txt".into())));
        assert_eq!(field_of("README"), None);
        assert_eq!(field_of(".hidden"), None);
        assert_eq!(field_of("a.tar-gz"), None);
    }

    #[test]
    fn grouping_by_stem() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("sub")).unwrap();
        for f in ["a.fits", "a.json", "b.txt", "sub/a.fits", ".hidden.txt"] {
            fs::write(d.join(f), f).unwrap();
        }
        let cfg = LocalConfig { dir: d.to_path_buf(), pattern: DEFAULT_PATTERN.into() };
        let units = discover(&cfg).unwrap();
        let ids: Vec<_> = units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "sub/a"]);
        assert_eq!(units[0].files, vec![("a.fits".into(), "fits".into()), ("a.json".into(), "json".into())]);
        fs::write(d.join("a.fit"), "x").unwrap();
        let err = discover(&cfg).unwrap_err().to_string();
        assert!(err.contains("a.fit") && err.contains("field `fits`"), "{err}");
    }
}
