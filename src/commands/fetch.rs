//! `etd fetch RECIPE`: pull raw data into the workdir (resumable). The source does the fetching
//! (`sources::Source`); this is the glue.

use crate::cli::FetchArgs;
use crate::error::Exit;
use crate::recipe::Recipe;
use crate::sources::FetchRun;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &FetchArgs) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(&args.recipe.recipe, args.limits.exceed_archive_limits)?;
    fetch(ctx, &recipe, args)
}

/// Fetch a loaded recipe (shared with `run`).
pub fn fetch(ctx: &Ctx, recipe: &Recipe, args: &FetchArgs) -> anyhow::Result<Exit> {
    let split = super::task_split(&args.split)?;
    let source = recipe.source.source();
    let inputs = super::source_inputs(recipe);
    let workdir = ctx.workdir(recipe);
    let run = FetchRun {
        inputs: &inputs,
        workdir: &workdir,
        split,
        retry_failed: args.retry_failed,
        reporter: &ctx.reporter,
        print: &super::print_stdout,
    };
    check_task_count(recipe, split, args.limits.exceed_archive_limits)?;
    source.preamble(&run)?;
    if args.dry_run {
        source.dry_run(&run)
    } else {
        source.fetch(&run)
    }
}

/// Every task of a split keeps at least one request in flight, so more tasks than the requests in
/// flight the politeness allows would exceed it together.
fn check_task_count(recipe: &Recipe, split: crate::sources::TaskSplit, exceed: bool) -> anyhow::Result<()> {
    let concurrency = recipe.politeness.concurrency;
    if split.is_whole() || !recipe.source.source().networked() || split.count <= concurrency {
        return Ok(());
    }
    let what = format!(
        "--num-tasks {} is more than the {concurrency} requests in flight the politeness allows; every task \
         keeps at least one in flight",
        split.count
    );
    if exceed {
        tracing::warn!("{what} (allowed by --exceed-archive-limits)");
        return Ok(());
    }
    Err(crate::error::UserError::usage(what)
        .with_hint(format!(
            "use at most {concurrency} tasks (more tasks do not fetch faster: they share the archive's rate)"
        ))
        .into())
}
