//! One file per subcommand: glue between the CLI, the recipe and the library.

pub mod batch;
pub mod check;
pub mod diagnostics;
pub mod fetch;
pub mod inspect;
pub mod publish;
pub mod run;
pub mod shard;
pub mod term;
pub mod verify;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::Exit;
use crate::recipe::Recipe;
use crate::report::Reporter;
use crate::store::Workdir;

/// What every command gets.
pub struct Ctx<'a> {
    pub global: &'a GlobalArgs,
    pub reporter: Reporter,
}

impl Ctx<'_> {
    /// The workdir: `--workdir`, else `./etd-work/<recipe name>`.
    pub fn workdir(&self, recipe: &Recipe) -> Workdir {
        let root = match &self.global.workdir {
            Some(dir) => dir.clone(),
            None => PathBuf::from("etd-work").join(&recipe.name),
        };
        Workdir::new(std::path::absolute(&root).unwrap_or(root))
    }
}

/// Dispatch a parsed command line.
pub fn dispatch(cli: &Cli, reporter: Reporter) -> anyhow::Result<Exit> {
    let ctx = Ctx { global: &cli.global, reporter };
    match &cli.command {
        Command::Check(a) => check::run(&ctx, a),
        Command::Fetch(a) => fetch::run(&ctx, a),
        Command::Shard(a) => shard::run(&ctx, a),
        Command::Publish(a) => publish::run(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Verify(a) => verify::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Batch(a) => batch::run(&ctx, a),
    }
}

/// Load a recipe and log its warnings; `exceed_archive_limits` admits politeness above an
/// archive's stated limits.
pub fn load_recipe(path: &std::path::Path, exceed_archive_limits: bool) -> anyhow::Result<Recipe> {
    let recipe = crate::recipe::load_with(path, exceed_archive_limits)?;
    for w in &recipe.warnings {
        tracing::warn!("{}: {w}", path.display());
    }
    Ok(recipe)
}

/// The parts of the recipe a source works with.
pub fn source_inputs(recipe: &Recipe) -> crate::sources::Inputs<'_> {
    crate::sources::Inputs {
        name: &recipe.name,
        targets: recipe.targets.as_ref().map(|t| t.rows.as_slice()).unwrap_or_default(),
        classes: recipe.targets.as_ref().map(|t| t.classes()).unwrap_or_default(),
        image: &recipe.image,
        lightcurve: &recipe.lightcurve,
        politeness: &recipe.politeness,
    }
}

/// This process's share of a batch work split: the flags, else the batch system's environment.
pub fn task_split(args: &crate::cli::TaskSplitArgs) -> Result<crate::sources::TaskSplit, crate::error::UserError> {
    crate::sources::TaskSplit::from_env(args.task_index, args.num_tasks, &|name| std::env::var(name).ok())
}

/// Write data for scripts to stdout.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")
}
