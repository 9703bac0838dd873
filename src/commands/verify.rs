//! `etd verify PATH`: check shards against their manifest.

use crate::cli::VerifyArgs;
use crate::error::Exit;
use crate::shard::verify::{render_verify_text, verify_path};

pub fn run(args: &VerifyArgs) -> anyhow::Result<Exit> {
    let report = verify_path(&args.path)?;
    let text =
        if args.json { format!("{}\n", serde_json::to_string_pretty(&report)?) } else { render_verify_text(&report) };
    super::print_stdout(&text)?;
    if let Some(signal) = report.stopped {
        let what = format!(
            "verify did not finish: {} of {} checked, {} found so far",
            crate::report::plural(report.shards_checked, "shard"),
            report.shards_listed,
            crate::report::plural(report.problems.len(), "problem")
        );
        return Err(crate::stop::Stopped { signal, what }.into());
    }
    Ok(if report.problems.is_empty() { Exit::Success } else { Exit::Failure })
}
