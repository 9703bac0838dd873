//! `etd fetch RECIPE`: pull raw data into the workdir (resumable).

use crate::cli::{FetchArgs, TaskSplitArgs};
use crate::error::{Exit, UserError};
use crate::recipe::Recipe;
use crate::sources::{local, SourceConfig};
use crate::store::journal::read_failures;
use crate::store::FetchJournal;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &FetchArgs) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(&args.recipe.recipe)?;
    fetch(ctx, &recipe, args)
}

/// Fetch a loaded recipe (shared with `run`).
pub fn fetch(ctx: &Ctx, recipe: &Recipe, args: &FetchArgs) -> anyhow::Result<Exit> {
    super::require_fetchable(recipe)?;
    check_task_split(&args.split)?;
    if args.retry_failed {
        // The local source records no fetch failures; retries arrive with the fetch engine.
        return Err(UserError::not_available("--retry-failed", "the polite fetch engine").into());
    }
    let SourceConfig::Local(cfg) = &recipe.source else {
        unreachable!("require_fetchable admits only the local source");
    };
    if args.dry_run {
        let units = local::discover(cfg)?;
        let mut out = String::new();
        for u in &units {
            let files: Vec<&str> = u.files.iter().map(|(p, _)| p.as_str()).collect();
            out.push_str(&format!("{}\t{}\n", u.id, files.join(" ")));
        }
        super::print_stdout(&out)?;
        tracing::info!("dry run: {} units from {}; 0 requests; nothing recorded", units.len(), cfg.dir.display());
        return Ok(Exit::Success);
    }
    let workdir = ctx.workdir(recipe);
    let _lock = workdir.lock()?;
    let mut journal = FetchJournal::open(&workdir.journal())?;
    let summary = local::fetch(cfg, &mut journal, &ctx.reporter)?;
    tracing::info!(
        "fetch: {} units recorded, {} unchanged, {} removed; journal {}",
        summary.recorded,
        summary.unchanged,
        summary.removed,
        workdir.journal().display()
    );
    let failed = read_failures(&workdir.failures())?.iter().filter(|f| f.stage == "fetch").count();
    if failed > 0 {
        tracing::warn!("{failed} items failed permanently; see {}", workdir.failures().display());
        return Ok(Exit::SomeFailed);
    }
    Ok(Exit::Success)
}

/// The batch work split arrives with the fetch engine; refuse rather than fetch everything N times.
fn check_task_split(split: &TaskSplitArgs) -> anyhow::Result<()> {
    let env_index = std::env::var(crate::env_vars::JOB_COMPLETION_INDEX).ok();
    if split.num_tasks.is_some_and(|n| n > 1) || split.task_index.is_some_and(|i| i > 0) {
        return Err(UserError::not_available(
            "splitting work across tasks (--task-index/--num-tasks)",
            "the polite fetch engine",
        )
        .into());
    }
    if let Some(i) = env_index.filter(|i| i.trim() != "0") {
        return Err(UserError::not_available(
            &format!("splitting work across tasks (${} is {i})", crate::env_vars::JOB_COMPLETION_INDEX),
            "the polite fetch engine",
        )
        .into());
    }
    Ok(())
}
