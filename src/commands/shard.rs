//! `etd shard RECIPE`: raw data -> samples -> shards + manifest; as N batch tasks, each writes
//! its part (`--task-index I --num-tasks N`) and `--merge` packs the parts into the shards.

use std::path::Path;

use crate::cli::ShardArgs;
use crate::error::{Exit, UserError};
use crate::failure::{FailureKind, Stage};
use crate::recipe::Recipe;
use crate::report::plural;
use crate::shard::{self, part, DatasetInfo};
use crate::sources::{ShardInput, TaskSplit};
use crate::store::journal::{replace_failures, FailureEntry, JournalSet};
use crate::store::Workdir;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &ShardArgs) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(&args.recipe.recipe, false)?;
    if args.merge {
        return merge(ctx, &recipe, &args.parts);
    }
    let split = super::task_split(&args.split)?;
    // `--num-tasks 1` given on purpose still writes a part, so a pipeline of N tasks and a merge
    // works for N = 1 too.
    if split.is_whole() && args.split.num_tasks.is_none() {
        shard_recipe(ctx, &recipe)
    } else {
        shard_part(ctx, &recipe, split)
    }
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
        crate::stop::check(|| shard::STOPPED_SHARD.into())?;
        Ok(report)
    });
    // Shards are about as large as the inputs they are made from.
    let needed = || Some(crate::fsx::tree_bytes(&workdir.root.join("raw"))).filter(|b| *b > 0);
    finish(recipe, &workdir, written, scan.failed.len(), needed)
}

/// Put a written dataset in place of `shards/`, record its failed samples, log the summary and
/// return the exit code (`fetch_failed`: units that failed to fetch, also missing from it;
/// `needed`: about how many bytes the shards take, for the message of a full disk).
fn finish(
    recipe: &Recipe,
    workdir: &Workdir,
    written: anyhow::Result<shard::DatasetReport>,
    fetch_failed: usize,
    needed: impl FnOnce() -> Option<u64>,
) -> anyhow::Result<Exit> {
    let partial = workdir.shards_partial();
    let report = match written {
        Ok(report) => report,
        Err(e) => {
            // Nothing half-written stays behind (the next run would remove it anyway).
            let _ = fs_err::remove_dir_all(&partial);
            return Err(super::diagnostics::DiskFull::wrap(e, "shard", &workdir.root, needed));
        }
    };
    shard::swap_into_place(&partial, &workdir.shards(), &workdir.shards_old())?;
    let failures: Vec<FailureEntry> = report
        .failures
        .iter()
        .map(|f| FailureEntry {
            unit: f.id.clone(),
            stage: Stage::Shard.into(),
            kind: FailureKind::Sample.into(),
            reason: f.error.0.clone(),
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
        if let Some(hint) = recipe.source.source().empty_hint() {
            tracing::warn!("hint: {hint}");
        }
    }
    if fetch_failed > 0 {
        tracing::warn!(
            "{} failed to fetch and {} not in the shards; see {}",
            plural(fetch_failed, "target"),
            if fetch_failed == 1 { "is" } else { "are" },
            workdir.failures().display()
        );
    }
    if failed > 0 {
        tracing::warn!("{} failed; see {}", plural(failed, "sample"), workdir.failures().display());
    }
    if failed > 0 || fetch_failed > 0 {
        return Ok(Exit::SomeFailed);
    }
    Ok(Exit::Success)
}

/// `--task-index I --num-tasks N`: make the samples of the units this task owns and write them as
/// `parts/shard-I-of-N/`, for `--merge`.
pub fn shard_part(ctx: &Ctx, recipe: &Recipe, split: TaskSplit) -> anyhow::Result<Exit> {
    let workdir = ctx.workdir(recipe);
    let _lock = workdir.lock_task(split.index, split.count)?;
    let source = recipe.source.source();
    check_fetch_journals(&workdir, split, source.samples_span_units())?;
    let journals = JournalSet::open(workdir.journals()?)?;
    let params = source.fingerprint();
    let scan = journals.scan_for(params.as_deref())?;
    if let (true, Some(params)) = (scan.stale > 0, &params) {
        for note in crate::sources::stale_notes(&scan, params, "leaving them out") {
            tracing::warn!("{note}");
        }
    }
    if scan.done.is_empty() && scan.failed.is_empty() {
        return Err(UserError::usage(format!("nothing has been fetched into {}", workdir.root.display()))
            .with_hint(format!(
                "run `etd fetch {} --task-index {} --num-tasks {}` in this workdir first",
                recipe.path.display(),
                split.index,
                split.count
            ))
            .into());
    }
    let fetch_failures: Vec<FailureEntry> =
        scan.failure_entries().into_iter().filter(|f| split.owns(&f.unit)).collect();
    let units_done = scan.done.keys().filter(|u| split.owns(u)).count() as u64;
    let inputs = super::source_inputs(recipe);
    let input = ShardInput { inputs: &inputs, workdir: &workdir, journals: &journals, done: scan.done };
    let samples = source.samples(&input)?;
    let jobs: Vec<_> = samples.jobs()?.into_iter().filter(|j| split.owns(&samples.split_id(j))).collect();
    let dir = workdir.parts().join(part::part_dir_name(split.index, split.count));
    fs_err::create_dir_all(workdir.parts())?;
    let info = part::PartInfo {
        name: &recipe.name,
        recipe_sha256: &recipe.sha256,
        classes: samples.classes(),
        index: split.index,
        count: split.count,
        units_done,
        fetch_failures,
    };
    let index = part::write_part(jobs, |job| samples.make(job), info, &dir, &ctx.reporter).map_err(|e| {
        // A part is about as large as the inputs its samples are made from.
        let inputs = || Some(crate::fsx::tree_bytes(&workdir.root.join("raw"))).filter(|b| *b > 0);
        super::diagnostics::DiskFull::wrap(e, "shard", &workdir.root, inputs)
    })?;
    tracing::info!(
        "shard (task {} of {}): {} made, {} failed -> {}",
        split.index,
        split.count,
        plural(index.samples.len(), "sample"),
        index.failures.len(),
        dir.display()
    );
    tracing::info!(
        "when every task has its part, run `etd shard {} --merge` (with the part folders, if they are not in {})",
        recipe.path.display(),
        workdir.parts().display()
    );
    Ok(Exit::Success)
}

/// A shard task sees the fetch journals its workdir holds. All tasks' journals (a shared
/// filesystem) or only its own of the same split (a workdir of its own, as on the OSPool) are
/// both fine; any other mix would silently leave samples out. Samples that span units (ATLAS-VAR
/// light curves gather rows from every partition) need all of them.
fn check_fetch_journals(workdir: &Workdir, split: TaskSplit, span: bool) -> anyhow::Result<()> {
    let mut by_count: std::collections::BTreeMap<u32, std::collections::BTreeSet<u32>> = Default::default();
    for path in workdir.journals()? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some((i, n)) = crate::store::parse_task_journal(&name) {
            by_count.entry(n).or_default().insert(i);
        }
    }
    for (count, seen) in by_count {
        if seen.len() as u32 == count {
            continue;
        }
        let own = count == split.count && seen.len() == 1 && seen.contains(&split.index);
        let list: Vec<String> = seen.iter().map(|i| i.to_string()).collect();
        let what = format!(
            "{} holds the fetch journals of task{} {} of {count} only",
            workdir.root.display(),
            if seen.len() == 1 { "" } else { "s" },
            list.join(", ")
        );
        if span {
            return Err(UserError::usage(format!("{what}, and this source's samples need every fetch task's data"))
                .with_hint("shard it where all fetch tasks wrote (a shared filesystem), or as one task")
                .into());
        }
        if !own {
            tracing::warn!(
                "{what}: samples of units fetched by the other tasks are left out of this part (task {} of {})",
                split.index,
                split.count
            );
        }
    }
    Ok(())
}

/// `--merge`: the shards and manifest from the parts of a split shard run, byte-identical to a
/// single `etd shard`.
fn merge(ctx: &Ctx, recipe: &Recipe, dirs: &[std::path::PathBuf]) -> anyhow::Result<Exit> {
    let workdir = ctx.workdir(recipe);
    let _lock = workdir.lock()?;
    shard::recover_swap(&workdir.shards(), &workdir.shards_old())?;
    let dirs = if dirs.is_empty() { part::PartSet::find(&workdir.parts())? } else { dirs.to_vec() };
    let parts = part::PartSet::open(&dirs, &recipe.sha256)?;
    let fetch_failures = parts.fetch_failures();
    let fetch_failed = fetch_failures.len();
    replace_failures(&workdir.failures(), Stage::Fetch, fetch_failures)?;
    let jobs = parts.jobs()?;
    if parts.units_done() == 0 {
        // As a single `etd shard` over the same journals would say.
        let hint = if fetch_failed == 0 {
            format!("run `etd fetch {}` first", recipe.path.display())
        } else {
            format!("all {fetch_failed} fetched units failed; see {}", workdir.failures().display())
        };
        return Err(UserError::usage(format!("the {} parts hold nothing fetched", dirs.len())).with_hint(hint).into());
    }
    tracing::info!("merging {} from {}", plural(jobs.len(), "sample"), plural(dirs.len(), "part"));
    let partial = workdir.shards_partial();
    let info = DatasetInfo { name: &recipe.name, recipe_sha256: &recipe.sha256, classes: parts.classes() };
    let written = shard::write_dataset(jobs, |job| parts.make(job), &recipe.shard, &info, &partial, &ctx.reporter)
        .and_then(|report| {
            crate::stop::check(|| shard::STOPPED_SHARD.into())?;
            Ok(report)
        });
    // The shards hold the parts' samples (the raw data may be on another node).
    let needed = || Some(dirs.iter().map(|d| crate::fsx::tree_bytes(d)).sum::<u64>()).filter(|b| *b > 0);
    finish(recipe, &workdir, written, fetch_failed, needed)
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
