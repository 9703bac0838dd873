//! The command-line interface, as clap types only, so completions and man pages are generated from
//! exactly what the parser accepts (see `generate`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

pub mod generate;

/// Turn legacy astronomy archives into ML-ready WebDataset shards.
///
/// etd follows a YAML recipe: it fetches from archives (PS1 cutouts, ATLAS forced photometry,
/// ATLAS-VAR, or local files) within their published limits, transforms FITS images and light
/// curves into training samples, packs them into deterministic WebDataset tar shards with a
/// manifest of checksums, and publishes them immutably to OSDF/Pelican origins.
///
/// Exit codes: 0 success; 1 runtime failure; 2 usage or recipe error; 3 finished, but some items
/// failed permanently (listed in failures.jsonl); 75 temporary failure worth retrying later
/// (archive down or throttled, nothing listening at the archive's URL); 130 stopped by SIGINT
/// (Ctrl-C), 143 stopped by SIGTERM: work already done is kept, and the same command continues.
#[derive(Debug, Parser)]
#[command(name = "etd", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]
    #[arg(long, global = true, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub workdir: Option<PathBuf>,

    /// Print only errors: no progress, no informational logs
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More log detail (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Never draw progress bars (periodic progress lines are still logged without a terminal)
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// Format of log lines on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a recipe and print the plan; never touches the network
    ///
    /// Prints the source, the number of targets or files, the units of work, the requests a fetch
    /// would make and the least time they take at the politeness limits, and the shards expected.
    Check(CheckArgs),

    /// Extract: pull raw data into the workdir (resumable)
    ///
    /// Finished units are recorded in <workdir>/journal.jsonl and skipped when run again; items
    /// that failed permanently are listed in <workdir>/failures.jsonl.
    Fetch(FetchArgs),

    /// Transform and pack: raw data -> samples -> shards + manifest
    ///
    /// Writes <workdir>/shards/ with <name>[-<split>]-NNNNNN.tar[.zst] and manifest.json (last).
    /// The same recipe and raw inputs give byte-identical shards on any machine and thread count.
    ///
    /// As N batch tasks: each `--task-index I --num-tasks N` makes the samples of its share and
    /// writes <workdir>/parts/shard-I-of-N/; then `--merge` writes the shards and manifest from
    /// all N parts, byte-identical to a single `etd shard` for any N.
    Shard(ShardArgs),

    /// Distribute: copy shards and manifest into an OSDF/Pelican origin, verified
    Publish(PublishArgs),

    /// Fetch, shard and publish in turn
    ///
    /// As one task of a split (--task-index/--num-tasks), fetches its share and writes its shard
    /// part; `etd shard --merge` and `etd publish` follow once every task has finished.
    Run(FetchArgs),

    /// Check shards against their manifest (PATH: a shard folder or manifest.json)
    ///
    /// Recomputes every shard's size, sha256, crc32c, md5 (where listed) and sample count, checks that the tar
    /// files are plain ustar, that no sample is split or duplicated and that keys follow the
    /// rules, and reports missing and unexpected files. Exits 0 only if everything holds.
    Verify(VerifyArgs),

    /// List a shard's samples and fields (.tar or .tar.zst)
    Inspect(InspectArgs),

    /// Write what to submit to run the pipeline on HTCondor, Slurm or Kubernetes
    ///
    /// Writes into DIR the files that run fetch as N tasks, shard as N tasks, the merge of their
    /// parts and publish (when the recipe has a publish section) on a batch engine, and DIR/README
    /// saying how to submit, watch and resume. HTCondor: a DAGMan DAG (etd.dag); Slurm: array
    /// jobs chained with --dependency=afterok (submit.sh); Kubernetes: Indexed Jobs on a shared
    /// volume (submit.sh). Exit 75 is retried by the engine, exit 2 never.
    Batch(BatchArgs),
}

/// A recipe file.
#[derive(Debug, Args)]
pub struct RecipeArg {
    /// The YAML recipe
    #[arg(value_name = "RECIPE", value_hint = ValueHint::FilePath)]
    pub recipe: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub recipe: RecipeArg,

    /// Print the plan as JSON
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Politeness above an archive's stated limits.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Allow politeness above the archive's stated limits (PS1: 10 requests in flight); only for
    /// a mirror, or with the archive's permission
    #[arg(long)]
    pub exceed_archive_limits: bool,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub recipe: RecipeArg,

    /// Print the units and requests that would be made, then stop; makes no request
    #[arg(long)]
    pub dry_run: bool,

    /// Try again the items listed in failures.jsonl
    #[arg(long)]
    pub retry_failed: bool,

    #[command(flatten)]
    pub split: TaskSplitArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Work split for batch systems (HTCondor, Slurm arrays, Kubernetes indexed jobs).
#[derive(Debug, Args)]
pub struct TaskSplitArgs {
    /// This task's index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]
    #[arg(long, value_name = "I", requires = "num_tasks")]
    pub task_index: Option<u32>,

    /// Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub num_tasks: Option<u32>,
}

/// The batch engines `etd batch` writes files for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// HTCondor (OSPool, campus pools): a DAGMan DAG
    Htcondor,
    /// Slurm (campus HPC): array jobs chained with dependencies
    Slurm,
    /// Kubernetes (National Research Platform): Indexed Jobs
    Kubernetes,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    #[command(flatten)]
    pub recipe: RecipeArg,

    /// The batch engine
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: EngineArg,

    /// Number of fetch tasks and of shard tasks (2 or more)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub tasks: u32,

    /// Folder to write the files into (created if missing)
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub out: PathBuf,

    /// Tasks share a file system: all use the one workdir (Slurm and Kubernetes always do;
    /// HTCondor's default is file transfer)
    #[arg(long, conflicts_with = "no_shared_fs")]
    pub shared_fs: bool,

    /// HTCondor: no shared file system (the OSPool case): each task works in its own scratch
    /// folder and the engine transfers its part back (the default for HTCondor)
    #[arg(long)]
    pub no_shared_fs: bool,

    /// The etd the jobs run [default: this etd's absolute path; Kubernetes: `etd` in the image]
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub etd: Option<PathBuf>,

    /// An environment variable the tasks need from you, by name (e.g. ATLAS_TOKEN); repeatable.
    /// Its value is taken at submit time and never written into the files
    #[arg(long, value_name = "NAME")]
    pub pass_env: Vec<String>,

    /// CPUs each task asks for
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: u32,

    /// Memory each task asks for
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = parse_size)]
    pub memory: u64,

    /// Scratch disk each HTCondor task asks for; Kubernetes: the shared volume's size
    #[arg(long, value_name = "SIZE", default_value = "10GiB", value_parser = parse_size)]
    pub disk: u64,

    /// How many times the engine runs a task again after exit 75 (retry later) or a lost node
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub retries: u32,

    /// Kubernetes: the container image the pods run (with etd, /bin/sh and tar)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Kubernetes: where the shared volume is mounted in the pods
    #[arg(long, value_name = "PATH", default_value = "/etd")]
    pub mount_path: PathBuf,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// A size as in recipes (`2GiB`, `500MB`), in bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    crate::units::Size::parse(s).map(|v| v.0)
}

#[derive(Debug, Args)]
pub struct ShardArgs {
    #[command(flatten)]
    pub recipe: RecipeArg,
    /// Write the shards and manifest from the parts of a split shard run
    #[arg(long, conflicts_with_all = ["task_index", "num_tasks"])]
    pub merge: bool,
    /// With --merge: the part folders (shard-I-of-N) to merge [default: <workdir>/parts/shard-*-of-N]
    #[arg(value_name = "PART", requires = "merge", value_hint = ValueHint::DirPath)]
    pub parts: Vec<PathBuf>,
    #[command(flatten)]
    pub split: TaskSplitArgs,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub recipe: RecipeArg,

    /// Print every action (create, skip identical, conflict) and do nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A shard folder or its manifest.json
    #[arg(value_name = "PATH", value_hint = ValueHint::AnyPath)]
    pub path: PathBuf,

    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A shard file (.tar or .tar.zst)
    #[arg(value_name = "SHARD", value_hint = ValueHint::FilePath)]
    pub shard: PathBuf,

    /// Print the listing as JSON
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
