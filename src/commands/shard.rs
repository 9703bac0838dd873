//! `etd shard RECIPE`: raw data -> samples -> shards + manifest.

use std::path::Path;

use crate::error::{Exit, UserError};
use crate::failure::{FailureKind, Stage};
use crate::recipe::Recipe;
use crate::report::plural;
use crate::shard::{self, DatasetInfo};
use crate::sources::ShardInput;
use crate::store::journal::{replace_failures, FailureEntry, JournalSet};

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
    let source = recipe.source.source();
    let params = source.fingerprint();
    let scan = journals.scan_for(params.as_deref())?;
    if let (true, Some(params)) = (scan.stale > 0, &params) {
        for note in crate::sources::stale_notes(&scan, params, "leaving them out") {
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
    let inputs = super::source_inputs(recipe);
    let input = ShardInput { inputs: &inputs, workdir: &workdir, journals: &journals, done: scan.done };
    let written = write_shards(ctx, recipe, &input, &partial).and_then(|report| {
        // Stopped after the last sample: keep the previous shards all the same.
        crate::stop::check(|| "shard did not finish; the previous shards are intact".into())?;
        Ok(report)
    });
    let report = match written {
        Ok(report) => report,
        Err(e) => {
            // Nothing half-written stays behind (the next run would remove it anyway).
            let _ = fs_err::remove_dir_all(&partial);
            // Shards are about as large as the inputs they are made from.
            let inputs = || Some(crate::fsx::tree_bytes(&workdir.root.join("raw"))).filter(|b| *b > 0);
            return Err(super::diagnostics::DiskFull::wrap(e, "shard", &workdir.root, inputs));
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
        if let Some(hint) = source.empty_hint() {
            tracing::warn!("hint: {hint}");
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
    input: &ShardInput<'_>,
    partial: &Path,
) -> anyhow::Result<shard::DatasetReport> {
    let samples = recipe.source.source().samples(input)?;
    let jobs = samples.jobs()?;
    let info = DatasetInfo { name: &recipe.name, recipe_sha256: &recipe.sha256, classes: samples.classes() };
    shard::write_dataset(jobs, |job| samples.make(job), &recipe.shard, &info, partial, &ctx.reporter)
}
