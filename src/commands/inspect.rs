//! `etd inspect SHARD`: list a shard's samples and fields.

use crate::cli::InspectArgs;
use crate::error::Exit;
use crate::shard::inspect::{inspect_shard, render_inspect_text};

pub fn run(args: &InspectArgs) -> anyhow::Result<Exit> {
    let report = inspect_shard(&args.shard)?;
    let text =
        if args.json { format!("{}\n", serde_json::to_string_pretty(&report)?) } else { render_inspect_text(&report) };
    super::print_stdout(&text)?;
    Ok(if report.problems.is_empty() { Exit::Success } else { Exit::Failure })
}
