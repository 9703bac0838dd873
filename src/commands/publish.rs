//! `etd publish`: copy shards and manifest into an OSDF/Pelican origin, verified.

use crate::cli::PublishArgs;
use crate::error::{Exit, UserError};

use super::Ctx;

pub fn run(_ctx: &Ctx, args: &PublishArgs) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(&args.recipe.recipe, false)?;
    if recipe.publish.is_none() {
        return Err(UserError::usage(format!("{} has no `publish` section", args.recipe.recipe.display()))
            .with_hint("add `publish: {origin: /export/ml, path: ns/dataset, version: v1}`")
            .into());
    }
    Err(UserError::not_available("etd publish", "the publishing issue (local export folders and HTTPS origins)").into())
}
