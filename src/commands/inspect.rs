//! `etd inspect SHARD`: list a shard's samples and fields.

use std::path::Path;

use crate::cli::InspectArgs;
use crate::error::{Exit, UserError};
use crate::shard::inspect::{inspect_shard, render_inspect_text};
use crate::shard::read::display_file_name;
use crate::shard::Compression;

const SHARD_HINT: &str =
    "inspect lists one shard file written by `etd shard`, such as etd-work/<name>/shards/<name>-000000.tar.zst";

pub fn run(args: &InspectArgs) -> anyhow::Result<Exit> {
    check_shard_path(&args.shard)?;
    let report = inspect_shard(&args.shard)?;
    let text =
        if args.json { format!("{}\n", serde_json::to_string_pretty(&report)?) } else { render_inspect_text(&report) };
    super::print_stdout(&text)?;
    Ok(if report.problems.is_empty() { Exit::Success } else { Exit::Failure })
}

/// A path that cannot be a shard (missing, a folder, a name without `.tar`/`.tar.zst`) is a usage
/// error; a shard-named file that turns out damaged is listed with its problems instead.
fn check_shard_path(path: &Path) -> Result<(), UserError> {
    let shown = path.display();
    if path.is_dir() {
        return Err(UserError::usage(format!("{shown} is a folder, not a shard file"))
            .with_hint(format!("to check every shard in a folder against its manifest, run `etd verify {shown}`")));
    }
    if Compression::from_file_name(&display_file_name(path)).is_none() {
        return Err(UserError::usage(format!("{shown} is not a shard: a shard's name ends in .tar or .tar.zst"))
            .with_hint(SHARD_HINT));
    }
    if !path.exists() {
        return Err(UserError::usage(format!("{shown}: no such file")).with_hint(SHARD_HINT));
    }
    Ok(())
}
