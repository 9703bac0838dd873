//! `etd shard RECIPE`: raw data -> samples -> shards + manifest.

use std::path::Path;

use anyhow::Context;

use crate::error::{Exit, UserError};
use crate::recipe::raw::ImageOutput;
use crate::recipe::Recipe;
use crate::shard::{self, keys, DatasetInfo, Job};
use crate::sources::{local, SourceConfig};
use crate::store::journal::{self, replace_failures, FailureEntry, JournalIndex};
use crate::store::{InputRecord, JournalEntry};
use crate::transform::image::{fits_fields, Provenance};
use crate::transform::{Fields, SampleError};

use super::Ctx;

/// Where a unit's journal line is: the only per-sample state held while sharding.
type JournalPos = (u64, u32);

pub fn run(ctx: &Ctx, recipe_path: &Path) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(recipe_path)?;
    shard_recipe(ctx, &recipe)
}

/// Shard a loaded recipe (shared with `run`).
pub fn shard_recipe(ctx: &Ctx, recipe: &Recipe) -> anyhow::Result<Exit> {
    let SourceConfig::Local(cfg) = &recipe.source else {
        return Err(UserError::not_available(
            &format!("sharding data of the {} source", recipe.source.kind()),
            recipe.source.not_yet_available().unwrap_or("a later version"),
        )
        .into());
    };
    let workdir = ctx.workdir(recipe);
    let _lock = workdir.lock()?;
    shard::recover_swap(&workdir.shards(), &workdir.shards_old())?;
    let journal_path = workdir.journal();
    let index = journal::index(&journal_path)?;
    if index.is_empty() {
        return Err(UserError::usage(format!("nothing has been fetched into {}", workdir.root.display()))
            .with_hint(format!("run `etd fetch {}` first", recipe.path.display()))
            .into());
    }
    let journal_file = std::fs::File::open(&journal_path)
        .with_context(|| format!("cannot open the journal {}", journal_path.display()))?;
    let inputs_at = |pos: JournalPos| -> anyhow::Result<Vec<InputRecord>> {
        match journal::read_entry_at(&journal_file, &journal_path, pos)? {
            JournalEntry::Done { inputs, .. } => Ok(inputs),
            JournalEntry::Removed { unit } => anyhow::bail!("journal index points at a removal of {unit}"),
        }
    };
    let jobs = local_jobs(recipe, index, &inputs_at)?;
    let partial = workdir.shards_partial();
    let info = DatasetInfo { name: &recipe.name, recipe_sha256: &recipe.sha256, classes: None };
    let make = |job: &Job<JournalPos>| local_sample(recipe, cfg, &job.id, &inputs_at(job.input)?);
    let report = shard::write_dataset(jobs, make, &recipe.shard, &info, &partial, &ctx.reporter)?;
    shard::swap_into_place(&partial, &workdir.shards(), &workdir.shards_old())?;
    let failures: Vec<FailureEntry> = report
        .failures
        .iter()
        .map(|(id, e)| FailureEntry { unit: id.clone(), stage: "shard".into(), reason: e.0.clone() })
        .collect();
    let failed = failures.len();
    replace_failures(&workdir.failures(), "shard", failures)?;
    let m = &report.manifest;
    tracing::info!("shard: {} samples in {} shards -> {}", m.samples, m.shards.len(), workdir.shards().display());
    tracing::info!("manifest: {}", workdir.shards().join(shard::manifest::MANIFEST_NAME).display());
    if failed > 0 {
        tracing::warn!("{failed} samples failed; see {}", workdir.failures().display());
        return Ok(Exit::SomeFailed);
    }
    Ok(Exit::Success)
}

/// Jobs for the local source: keys from unit ids, checked for collisions and field clashes. Reads
/// each unit's journal line once here (streaming) and again when its sample is made.
fn local_jobs(
    recipe: &Recipe,
    index: JournalIndex,
    inputs_at: &dyn Fn(JournalPos) -> anyhow::Result<Vec<InputRecord>>,
) -> anyhow::Result<Vec<Job<JournalPos>>> {
    let image_fields: Vec<&str> = recipe.image.outputs.iter().map(|o| o.field()).collect();
    // Every sample may get generated fields (a json even without an image).
    let mut longest = image_fields.iter().map(|f| f.len()).max().unwrap_or(0);
    for (unit, pos) in &index {
        let inputs = inputs_at(*pos)?;
        let has_fits = inputs.iter().any(|i| i.field == "fits");
        for input in &inputs {
            longest = longest.max(input.field.len());
            if let Some(problem) = keys::field_problem(&input.field) {
                return Err(UserError::usage(format!("{}: {problem}", input.path)).into());
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
        let bytes = local::read_checked(cfg, input)?;
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
