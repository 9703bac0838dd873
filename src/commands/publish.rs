//! `etd publish`: copy shards and manifest into an OSDF/Pelican origin, verified.

use crate::cli::PublishArgs;
use crate::error::{Exit, UserError};
use crate::publish::{self, config::PublishConfig, Mode};
use crate::recipe::Recipe;

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
    let mut dest = publish::open(cfg, &workdir.root.join("publish.jsonl"))?;
    let print = |text: &str| super::print_stdout(text);
    let mode = if dry_run { Mode::DryRun(&print) } else { Mode::Publish(&ctx.reporter) };
    publish::run(dest.as_mut(), &items, mode).map_err(|e| {
        let path = match &cfg.origin {
            publish::config::Origin::Folder(origin) => origin.join(&cfg.path),
            publish::config::Origin::Url(_) => workdir.root.clone(),
        };
        super::diagnostics::DiskFull::wrap(e, "publish", &path, || Some(crate::fsx::tree_bytes(&workdir.shards())))
    })?;
    Ok(Exit::Success)
}
