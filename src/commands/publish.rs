//! `etd publish`: copy shards and manifest into an OSDF/Pelican origin, verified.

use crate::cli::PublishArgs;
use crate::error::{Exit, UserError};
use crate::net::client::{Auth, NetClient};
use crate::publish::config::{Origin, PublishConfig};
use crate::publish::{self, destination, https, local, refuse_conflicts, Action, Report};
use crate::recipe::Recipe;
use crate::report::plural;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &PublishArgs) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(&args.recipe.recipe, false)?;
    let Some(cfg) = &recipe.publish else {
        return Err(UserError::usage(format!("{} has no `publish` section", args.recipe.recipe.display()))
            .with_hint("add `publish: {origin: /export/ml, path: ns/dataset, version: v1}`")
            .into());
    };
    publish_recipe(ctx, &recipe, cfg, args.dry_run)
}

/// Publish a recipe's shards (shared with `run`).
pub fn publish_recipe(ctx: &Ctx, recipe: &Recipe, cfg: &PublishConfig, dry_run: bool) -> anyhow::Result<Exit> {
    let workdir = ctx.workdir(recipe);
    // The shard folder must not change underneath (a concurrent `etd shard`).
    let _lock = if dry_run { None } else { Some(workdir.lock()?) };
    let (_, items) = publish::items(&workdir.shards())?;
    let dest = destination(cfg);
    let (plan, report) = match &cfg.origin {
        Origin::Folder(origin) => {
            let target = local::Target::new(origin, &cfg.path, &cfg.version);
            let writable = target.check_writable();
            let writable = if dry_run { writable } else { Ok(writable?) };
            let _publish_lock = if dry_run { None } else { Some(target.lock()?) };
            let plan = target.plan(&items)?;
            if dry_run {
                return dry_run_report(&plan, &dest, Some(writable));
            }
            refuse_conflicts(&plan, &dest)?;
            let progress = ctx.reporter.start("publish", items.len() as u64);
            let report = target.execute(&items, &plan, &progress)?;
            (plan, report)
        }
        Origin::Url(origin) => {
            let token = https::token(cfg.token_file.as_deref())?;
            if token.is_none() {
                tracing::warn!(
                    "no token for {dest} (publish.token_file, $BEARER_TOKEN_FILE or $BEARER_TOKEN): uploading without one"
                );
            }
            let base = url::Url::parse(&dest)?;
            let journal = https::PublishJournal::open(&workdir.root.join("publish.jsonl"))?;
            let client = NetClient::new(https::politeness(), 1)?;
            let mut remote = https::Remote { client, base, auth: token.map(Auth::Bearer), journal };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let plan = runtime.block_on(remote.plan(&items))?;
            if dry_run {
                return dry_run_report(&plan, &dest, None);
            }
            refuse_conflicts(&plan, &dest)?;
            let progress = ctx.reporter.start("publish", items.len() as u64);
            let rel = format!("{}/{}", cfg.path, cfg.version);
            let report = runtime.block_on(remote.execute(&items, &plan, origin, &rel, &progress))?;
            (plan, report)
        }
    };
    summarize(&plan, &report, &dest);
    Ok(Exit::Success)
}

/// Print the plan; `writable` is the folder origin's permission check (an HTTPS origin's
/// permission shows only when uploading).
fn dry_run_report(plan: &[Action], dest: &str, writable: Option<Result<(), UserError>>) -> anyhow::Result<Exit> {
    let text: String = plan.iter().map(|a| format!("{}\n", a.line())).collect();
    super::print_stdout(&text)?;
    let objects = plural(plan.len(), "object");
    match writable {
        Some(Err(e)) => {
            tracing::info!("dry run: {objects} for {dest}; nothing was written");
            return Err(e.into());
        }
        Some(Ok(())) => {
            tracing::info!("dry run: {objects} for {dest}; the destination is writable; nothing was written")
        }
        None => tracing::info!("dry run: {objects} for {dest}; nothing was written"),
    }
    refuse_conflicts(plan, dest)?;
    Ok(Exit::Success)
}

fn summarize(plan: &[Action], report: &Report, dest: &str) {
    if report.created == 0 && report.replaced == 0 {
        tracing::info!(
            "{dest} is already published with identical bytes ({}); nothing to do",
            plural(plan.len(), "object")
        );
        return;
    }
    tracing::info!(
        "published {dest}: {} written ({:.1} MB), {} replaced, {} already there and identical; manifest last",
        plural(report.created + report.replaced, "object"),
        report.bytes as f64 / 1e6,
        report.replaced,
        report.skipped
    );
}
