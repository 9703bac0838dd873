//! `etd shard RECIPE`: raw data -> samples -> shards + manifest.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use crate::error::{Exit, UserError};
use crate::failure::{FailureKind, Stage};
use crate::keys;
use crate::recipe::raw::ImageOutput;
use crate::recipe::Recipe;
use crate::report::plural;
use crate::sample::{Fields, SampleError};
use crate::shard::{self, DatasetInfo, Job};
use crate::sources::ps1::sample::ps1_fields;
use crate::sources::ps1::{self, Ps1Config};
use crate::sources::{local, SourceConfig};
use crate::store::journal::{replace_failures, FailureEntry, JournalPos, JournalSet};
use crate::store::raw::{read_checked, RawStore, Recorded};
use crate::store::{InputRecord, JournalEntry};
use crate::target::Target;
use crate::transform::image::{fits_fields, Provenance};
use crate::transform::lightcurve::{lightcurve_fields, LightCurveMeta};

use super::Ctx;

pub fn run(ctx: &Ctx, recipe_path: &Path) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(recipe_path, false)?;
    shard_recipe(ctx, &recipe)
}

/// Shard a loaded recipe (shared with `run`).
pub fn shard_recipe(ctx: &Ctx, recipe: &Recipe) -> anyhow::Result<Exit> {
    let workdir = ctx.workdir(recipe);
    let _lock = workdir.lock()?;
    shard::recover_swap(&workdir.shards(), &workdir.shards_old())?;
    let journals = JournalSet::open(workdir.journals()?)?;
    let params = match &recipe.source {
        SourceConfig::Ps1(cfg) => Some(cfg.params()),
        SourceConfig::AtlasFp(cfg) => Some(cfg.params()),
        SourceConfig::AtlasVar(cfg) => Some(cfg.params()),
        _ => None,
    };
    let scan = journals.scan_for(params.as_deref())?;
    if let (true, Some(params)) = (scan.stale > 0, &params) {
        for note in super::stale_notes(&scan, params, "leaving them out") {
            tracing::warn!("{note}");
        }
        tracing::warn!("hint: run `etd fetch {}` to fetch them with the current settings", recipe.path.display());
    }
    // The fetch failures as the journals have them now (batch tasks may have finished since).
    replace_failures(&workdir.failures(), Stage::Fetch, scan.failure_entries())?;
    if scan.done.is_empty() {
        let hint = if scan.failed.is_empty() {
            format!("run `etd fetch {}` first", recipe.path.display())
        } else {
            format!("all {} fetched units failed; see {}", scan.failed.len(), workdir.failures().display())
        };
        return Err(UserError::usage(format!("nothing has been fetched into {}", workdir.root.display()))
            .with_hint(hint)
            .into());
    }
    let partial = workdir.shards_partial();
    let written = write_shards(ctx, recipe, &workdir, scan.done, &journals, &partial).and_then(|report| {
        // Stopped after the last sample: keep the previous shards all the same.
        crate::stop::check(|| "shard did not finish; the previous shards are intact".into())?;
        Ok(report)
    });
    let report = match written {
        Ok(report) => report,
        Err(e) => {
            // Nothing half-written stays behind (the next run would remove it anyway).
            let _ = fs_err::remove_dir_all(&partial);
            return Err(e);
        }
    };
    shard::swap_into_place(&partial, &workdir.shards(), &workdir.shards_old())?;
    let failures: Vec<FailureEntry> = report
        .failures
        .iter()
        .map(|(id, e)| FailureEntry {
            unit: id.clone(),
            stage: Stage::Shard.into(),
            kind: FailureKind::Sample.into(),
            reason: e.0.clone(),
        })
        .collect();
    let failed = failures.len();
    replace_failures(&workdir.failures(), Stage::Shard, failures)?;
    let m = &report.manifest;
    tracing::info!(
        "shard: {} in {} -> {}",
        plural(m.samples, "sample"),
        plural(m.shards.len(), "shard"),
        workdir.shards().display()
    );
    tracing::info!("manifest: {}", workdir.shards().join(shard::manifest::MANIFEST_NAME).display());
    if m.samples == 0 {
        tracing::warn!("the dataset is empty: no sample was made");
        if let SourceConfig::AtlasVar(_) = &recipe.source {
            tracing::warn!("hint: {}", crate::sources::atlas_var::SELECTION_HINT);
        }
    }
    if !scan.failed.is_empty() {
        tracing::warn!(
            "{} failed to fetch and {} not in the shards; see {}",
            plural(scan.failed.len(), "target"),
            if scan.failed.len() == 1 { "is" } else { "are" },
            workdir.failures().display()
        );
    }
    if failed > 0 {
        tracing::warn!("{} failed; see {}", plural(failed, "sample"), workdir.failures().display());
    }
    if failed > 0 || !scan.failed.is_empty() {
        return Ok(Exit::SomeFailed);
    }
    Ok(Exit::Success)
}

/// Make the samples of the fetched units and write them into `partial` (shards + manifest).
fn write_shards(
    ctx: &Ctx,
    recipe: &Recipe,
    workdir: &crate::store::Workdir,
    done: BTreeMap<String, JournalPos>,
    journals: &JournalSet,
    partial: &Path,
) -> anyhow::Result<shard::DatasetReport> {
    Ok(match &recipe.source {
        SourceConfig::Local(cfg) => {
            let jobs = local_jobs(recipe, done, journals)?;
            let info = DatasetInfo { name: &recipe.name, recipe_sha256: &recipe.sha256, classes: None };
            let make = |job: &Job<JournalPos>| local_sample(recipe, cfg, &job.id, &journals.inputs(job.input)?);
            shard::write_dataset(jobs, make, &recipe.shard, &info, partial, &ctx.reporter)?
        }
        SourceConfig::Ps1(cfg) => {
            let store = RawStore::new(workdir, recipe.source.kind());
            let targets = recipe.targets.as_ref().map(|t| t.rows.as_slice()).unwrap_or_default();
            let classes = recipe.targets.as_ref().map(|t| t.classes()).unwrap_or_default();
            let jobs = ps1_jobs(recipe, cfg, targets, &done)?;
            let info = dataset_info(recipe, &classes);
            let make = |job: &Job<(usize, JournalPos)>| {
                let target = &targets[job.input.0];
                let mut inputs = Vec::new();
                for rec in journals.inputs(job.input.1)? {
                    let bytes = read_checked(store.root(), &rec, Recorded::RawPayload)?;
                    inputs.push((rec, bytes));
                }
                let class = target.label.as_ref().and_then(|l| classes.binary_search(l).ok());
                Ok(ps1_fields(cfg, &recipe.image, target, class, &inputs))
            };
            shard::write_dataset(jobs, make, &recipe.shard, &info, partial, &ctx.reporter)?
        }
        SourceConfig::AtlasFp(cfg) => {
            let store = RawStore::new(workdir, recipe.source.kind());
            let targets = recipe.targets.as_ref().map(|t| t.rows.as_slice()).unwrap_or_default();
            let classes = recipe.targets.as_ref().map(|t| t.classes()).unwrap_or_default();
            let keys = crate::sources::atlas_fp::target_keys(targets, recipe.lightcurve.outputs)?;
            let jobs = keyed_jobs(targets, keys, &done);
            let info = dataset_info(recipe, &classes);
            let make = |job: &Job<(usize, JournalPos)>| {
                let target = &targets[job.input.0];
                let (inputs, task) = match journals.read(job.input.1)? {
                    JournalEntry::Done { inputs, task, .. } => (inputs, task),
                    other => anyhow::bail!("journal index points at a non-`done` entry of {}", other.unit()),
                };
                let rec = inputs.first().ok_or_else(|| anyhow::anyhow!("{}: no light curve recorded", target.id))?;
                let bytes = read_checked(store.root(), rec, Recorded::RawPayload)?;
                let class = target.label.as_ref().and_then(|l| classes.binary_search(l).ok());
                let meta = LightCurveMeta {
                    target: serde_json::to_value(target)?,
                    task_url: task.as_deref(),
                    result_url: rec.url.as_deref(),
                    sha256: &rec.sha256,
                    use_reduced: cfg.use_reduced,
                };
                Ok(lightcurve_fields(&bytes, recipe.lightcurve.quality, recipe.lightcurve.outputs, &meta).map(
                    |mut fields| {
                        if let Some(c) = class {
                            fields.push(("cls".into(), c.to_string().into_bytes()));
                            fields.sort_by(|a, b| a.0.cmp(&b.0));
                        }
                        fields
                    },
                ))
            };
            shard::write_dataset(jobs, make, &recipe.shard, &info, partial, &ctx.reporter)?
        }
        SourceConfig::AtlasVar(cfg) => {
            let raw = workdir.raw(recipe.source.kind());
            let tmp = workdir.root.join("tmp").join("atlas-var-group");
            // Spill and grouped files of an earlier run that stopped are of no use.
            let _ = fs_err::remove_dir_all(&tmp);
            let grouping = atlas_var_group(cfg, &done, journals, &raw, &tmp);
            if grouping.is_err() {
                let _ = fs_err::remove_dir_all(&tmp);
            }
            let (jobs, objects, grouped) = grouping?;
            let classes: Vec<String> = crate::sources::atlas_var::CLASSES.iter().map(|c| c.to_string()).collect();
            let info = dataset_info(recipe, &classes);
            let make = |job: &Job<usize>| -> anyhow::Result<Result<Fields, SampleError>> {
                let o = &objects[job.input];
                let rows = grouped.rows(job.input)?;
                if rows.is_empty() {
                    return Ok(Err(SampleError("no light-curve rows for this object in the partitions".into())));
                }
                Ok(Ok(variable_star_fields(o, &rows)?))
            };
            let report = shard::write_dataset(jobs, make, &recipe.shard, &info, partial, &ctx.reporter);
            drop(grouped);
            let _ = fs_err::remove_dir_all(&tmp);
            report?
        }
    })
}

/// Jobs for the PS1 source: the targets this recipe has that were fetched, keyed as fetch keyed
/// them (from every target's id, so keys do not depend on which targets were fetched).
fn ps1_jobs(
    recipe: &Recipe,
    cfg: &Ps1Config,
    targets: &[Target],
    done: &BTreeMap<String, JournalPos>,
) -> anyhow::Result<Vec<Job<(usize, JournalPos)>>> {
    let keys = ps1::target_keys(cfg, &recipe.image, targets)?;
    Ok(keyed_jobs(targets, keys, done))
}

/// The manifest's dataset facts, with the class list when the targets have labels.
fn dataset_info<'a>(recipe: &'a Recipe, classes: &[String]) -> DatasetInfo<'a> {
    DatasetInfo {
        name: &recipe.name,
        recipe_sha256: &recipe.sha256,
        classes: (!classes.is_empty()).then(|| classes.to_vec()),
    }
}

/// Read the ATLAS-VAR catalog and group the fetched partitions' rows by selected object.
fn atlas_var_group(
    cfg: &crate::sources::atlas_var::AtlasVarConfig,
    done: &BTreeMap<String, JournalPos>,
    journals: &JournalSet,
    raw: &Path,
    tmp: &Path,
) -> anyhow::Result<(
    Vec<Job<usize>>,
    Vec<crate::sources::atlas_var::catalog::Object>,
    crate::sources::atlas_var::group::Grouped,
)> {
    use crate::sources::atlas_var::{catalog, fetch::stored_path, fetch::CATALOG_UNIT, group};
    let pos = done.get(CATALOG_UNIT).ok_or_else(|| {
        UserError::usage("the ATLAS-VAR catalog has not been fetched").with_hint("run `etd fetch` first")
    })?;
    let cat = journals.inputs(*pos)?.into_iter().next().context("no catalog input recorded")?;
    let cat_path = stored_path(raw, &cat);
    check_file(&cat_path, &cat)?;
    let objects = catalog::read(&cat_path, cfg)?;
    let ids: Vec<String> = objects.iter().map(|o| o.ato_id.clone()).collect();
    let mut partitions = Vec::new();
    for (unit, pos) in done.range("partition/".to_string()..) {
        let Some(name) = unit.strip_prefix("partition/") else { break };
        for rec in journals.inputs(*pos)? {
            let path = stored_path(raw, &rec);
            check_file(&path, &rec)?;
            partitions.push(group::PartitionFile { path, name: name.to_string() });
        }
    }
    let (grouped, report) = group::group(&group::Selection::new(&ids), &partitions, cfg.memory as usize, tmp)?;
    tracing::info!(
        "atlas-var: {} selected; {} of {} kept; {} to disk",
        plural(objects.len(), "object"),
        report.rows_kept,
        plural(report.rows_read, "row"),
        plural(report.spills, "spill")
    );
    if report.bad_rows > 0 {
        for b in &report.bad_examples {
            tracing::warn!("{}:{}: row skipped: {}", b.file, b.line, b.reason);
        }
        tracing::warn!(
            "{} did not parse and {} skipped",
            plural(report.bad_rows, "row"),
            if report.bad_rows == 1 { "was" } else { "were" }
        );
    }
    let keys = keys::assign_keys(ids.iter().map(String::as_str), crate::sources::atlas_var::longest_field())
        .map_err(|e| UserError::failure(format!("ATO_ID keys: {e}")).with_hint("keys keep only [A-Za-z0-9_-]"))?;
    let jobs = keys.into_iter().zip(ids).enumerate().map(|(i, (key, id))| Job { key, id, input: i }).collect();
    Ok((jobs, objects, grouped))
}

/// A recorded input file must still be what fetch recorded: the same size, and the same
/// modification time or else (touched, or recorded without one) the same sha256.
fn check_file(path: &Path, rec: &InputRecord) -> anyhow::Result<()> {
    let changed = |what: String| -> anyhow::Error {
        UserError::failure(format!("{} changed since it was fetched ({what})", path.display()))
            .with_hint("run `etd fetch` again")
            .into()
    };
    let meta = fs_err::metadata(path).map_err(|e| {
        UserError::failure(format!("{} recorded by fetch cannot be read: {e}", path.display()))
            .with_hint("run `etd fetch` again")
    })?;
    if meta.len() != rec.size {
        return Err(changed(format!("{} bytes then, {} now", rec.size, meta.len())));
    }
    if rec.mtime_ns != 0 && crate::sources::local::mtime_ns(&meta) == rec.mtime_ns {
        return Ok(());
    }
    let (_, sha256) = crate::digest::hash_file(path)?;
    if sha256 != rec.sha256 {
        return Err(changed(format!("sha256 {} then, {sha256} now", rec.sha256)));
    }
    Ok(())
}

/// One variable star's sample: npy (the light curve), cls (its class), json (catalog columns).
fn variable_star_fields(
    o: &crate::sources::atlas_var::catalog::Object,
    rows: &[crate::sources::atlas_var::group::Row],
) -> anyhow::Result<Fields> {
    use crate::sources::atlas_var::{catalog::Number, group, CLASSES};
    let mut rows_per_filter: BTreeMap<char, u64> = BTreeMap::new();
    for r in rows {
        *rows_per_filter.entry(char::from(r.filter)).or_default() += 1;
    }
    let doc = VariableStarJson {
        ato_id: &o.ato_id,
        ra: o.ra,
        dec: o.dec,
        class: &o.class,
        cls: o.class_index(),
        probabilities: Pairs(CLASSES.iter().zip(o.probs).map(|(c, p)| (ProbKey(c), Number::F32(p))).collect()),
        catalog: Pairs(o.extra.clone()),
        rows: rows.len(),
        rows_per_filter,
        mjd_min: rows.first().map(|r| r.mjd),
        mjd_max: rows.last().map(|r| r.mjd),
        columns: group::NPY_COLUMNS.map(|(name, dtype, unit, meaning)| ColumnDoc { name, dtype, unit, meaning }),
    };
    let mut json = serde_json::to_vec(&doc)?;
    json.push(b'\n');
    let mut fields = vec![("json".to_string(), json), ("npy".to_string(), group::npy(rows)?)];
    if let Some(c) = o.class_index() {
        fields.push(("cls".into(), c.to_string().into_bytes()));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(fields)
}

/// A variable star's `json` member.
#[derive(serde::Serialize)]
struct VariableStarJson<'a> {
    #[serde(rename = "ATO_ID")]
    ato_id: &'a str,
    ra: f64,
    dec: f64,
    #[serde(rename = "CLASS")]
    class: &'a str,
    cls: Option<usize>,
    probabilities: Pairs<ProbKey<'a>>,
    catalog: Pairs<&'static str>,
    rows: usize,
    rows_per_filter: BTreeMap<char, u64>,
    mjd_min: Option<f64>,
    mjd_max: Option<f64>,
    columns: [ColumnDoc; 6],
}

#[derive(serde::Serialize)]
struct ColumnDoc {
    name: &'static str,
    dtype: &'static str,
    unit: &'static str,
    meaning: &'static str,
}

/// `(key, value)` pairs written as a JSON object in their order.
struct Pairs<K>(Vec<(K, crate::sources::atlas_var::catalog::Number)>);

impl<K: serde::Serialize> serde::Serialize for Pairs<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// `prob_<CLASS>`, written without building a string.
struct ProbKey<'a>(&'a str);

impl serde::Serialize for ProbKey<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("prob_{}", self.0))
    }
}

/// Jobs for the targets that were fetched (`done`), with their keys.
fn keyed_jobs(
    targets: &[Target],
    keys: Vec<String>,
    done: &BTreeMap<String, JournalPos>,
) -> Vec<Job<(usize, JournalPos)>> {
    let mut jobs = Vec::new();
    for (i, (target, key)) in targets.iter().zip(keys).enumerate() {
        if let Some(pos) = done.get(&target.id) {
            jobs.push(Job { key, id: target.id.clone(), input: (i, *pos) });
        }
    }
    let extra = done.len() - jobs.len();
    if extra > 0 {
        tracing::info!("{extra} fetched units are not among the recipe's targets now; leaving them out");
    }
    jobs
}

/// Jobs for the local source: keys from unit ids, checked for collisions and field clashes. Reads
/// each unit's journal line once here (streaming) and again when its sample is made.
fn local_jobs(
    recipe: &Recipe,
    index: BTreeMap<String, JournalPos>,
    journals: &JournalSet,
) -> anyhow::Result<Vec<Job<JournalPos>>> {
    let image_fields: Vec<&str> = recipe.image.outputs.iter().map(|o| o.field()).collect();
    let mut input_fields = std::collections::BTreeSet::new();
    for (unit, pos) in &index {
        let inputs = journals.inputs(*pos)?;
        let has_fits = inputs.iter().any(|i| i.field == "fits");
        for input in &inputs {
            if let Some(problem) = keys::field_problem(&input.field) {
                return Err(UserError::usage(format!("{}: {problem}", input.path)).into());
            }
            if !input_fields.contains(&input.field) {
                input_fields.insert(input.field.clone());
            }
            let produced = has_fits && input.field != "fits" && image_fields.contains(&input.field.as_str());
            if produced {
                return Err(UserError::usage(format!(
                    "sample `{unit}`: {} would become field `{}`, which the image transform also writes",
                    input.path, input.field
                ))
                .with_hint(format!("remove `{}` from transform.image.outputs or rename the file", input.field))
                .into());
            }
        }
    }
    let longest = local::longest_field(&recipe.image, input_fields.iter().map(String::as_str));
    let keys = keys::assign_keys(index.keys().map(String::as_str), longest).map_err(|e| {
        UserError::failure(format!("sample keys: {e}"))
            .with_hint("keys keep only [A-Za-z0-9_-]; rename the files so their stems differ")
    })?;
    Ok(keys.into_iter().zip(index).map(|(key, (id, input))| Job { key, id, input }).collect())
}

/// Make one local sample: a FITS file goes through the image transform, other files pass through.
fn local_sample(
    recipe: &Recipe,
    cfg: &local::LocalConfig,
    unit: &str,
    inputs: &[InputRecord],
) -> anyhow::Result<Result<Fields, SampleError>> {
    let mut fields = Fields::new();
    let provenance: Vec<(String, String)> = inputs.iter().map(|i| (i.path.clone(), i.sha256.clone())).collect();
    for input in inputs {
        let bytes = read_checked(&cfg.dir, input, Recorded::LocalInput)?;
        if input.field == "fits" {
            let prov = Provenance { id: unit, inputs: &provenance };
            match fits_fields(&bytes, &recipe.image, &prov) {
                Ok(f) => fields.extend(f),
                Err(e) => return Ok(Err(SampleError(format!("{}: {e}", input.path)))),
            }
            if !recipe.image.outputs.contains(&ImageOutput::Fits) {
                continue;
            }
        } else {
            fields.push((input.field.clone(), bytes));
        }
    }
    // Samples without an image still carry their original id (keys are sanitised) and inputs.
    let has_json = fields.iter().any(|(f, _)| f == "json");
    if !has_json && recipe.image.outputs.contains(&ImageOutput::Json) {
        let meta = serde_json::json!({
            "id": unit,
            "inputs": provenance.iter().map(|(p, s)| serde_json::json!({"path": p, "sha256": s})).collect::<Vec<_>>(),
        });
        let mut bytes = serde_json::to_vec(&meta)?;
        bytes.push(b'\n');
        fields.push(("json".into(), bytes));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields.dedup_by(|a, b| a.0 == b.0);
    Ok(Ok(fields))
}
