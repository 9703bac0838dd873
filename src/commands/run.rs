//! `etd run RECIPE`: fetch, shard and publish in turn; one task of a split fetches and writes its
//! shard part.

use crate::cli::FetchArgs;
use crate::error::Exit;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &FetchArgs) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(&args.recipe.recipe, args.limits.exceed_archive_limits)?;

    let fetched = super::fetch::fetch(ctx, &recipe, args)?;
    if args.dry_run {
        return Ok(fetched);
    }
    if matches!(fetched, Exit::Interrupted | Exit::Terminated) {
        tracing::warn!("the fetch was stopped by a signal; not sharding");
        return Ok(fetched);
    }
    if fetched == Exit::TempFail {
        // Shards of a partial fetch would be thrown away; exit 75 so the batch system retries.
        tracing::warn!("the fetch is incomplete (transient failures); not sharding until it is");
        return Ok(fetched);
    }
    let split = super::task_split(&args.split)?;
    if !split.is_whole() {
        // One task of a split: its part of the shards; the merge and publish come after all tasks.
        let sharded = super::shard::shard_part(ctx, &recipe, split)?;
        tracing::info!(
            "task {} of {} done; when every task is, run `etd shard {} --merge`, then `etd publish`",
            split.index,
            split.count,
            recipe.path.display()
        );
        return Ok(if fetched == Exit::SomeFailed { Exit::SomeFailed } else { sharded });
    }
    let sharded = super::shard::shard_recipe(ctx, &recipe)?;
    if let Some(cfg) = &recipe.publish {
        super::publish::publish_recipe(ctx, &recipe, cfg, false)?;
    }
    Ok(if fetched == Exit::SomeFailed || sharded == Exit::SomeFailed { Exit::SomeFailed } else { Exit::Success })
}
