//! Every environment variable etd reads, in one place.

/// Fixed mtime for tar members when the recipe has no `shard.mtime` (reproducible-builds convention).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Disable colour in logs (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// Log filter in `tracing` EnvFilter syntax, overriding `-v`/`-q`.
pub const ETD_LOG: &str = "ETD_LOG";
/// Kubernetes indexed-job index, used as `--task-index` when that flag is absent.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// Slurm job arrays: this task's index, the array's lowest and highest index, its task count
/// and step, used when `--task-index`/`--num-tasks` are absent.
pub const SLURM_ARRAY_TASK_ID: &str = "SLURM_ARRAY_TASK_ID";
pub const SLURM_ARRAY_TASK_MIN: &str = "SLURM_ARRAY_TASK_MIN";
pub const SLURM_ARRAY_TASK_MAX: &str = "SLURM_ARRAY_TASK_MAX";
pub const SLURM_ARRAY_TASK_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
pub const SLURM_ARRAY_TASK_STEP: &str = "SLURM_ARRAY_TASK_STEP";
/// Worker threads for transforms and compression (rayon's own variable).
pub const RAYON_NUM_THREADS: &str = "RAYON_NUM_THREADS";
/// Seconds between progress lines when stderr is not a terminal (default 5).
pub const ETD_PROGRESS_INTERVAL: &str = "ETD_PROGRESS_INTERVAL";
/// `0` or `off`: write shards through the page cache, not around it (`O_DIRECT`, the default
/// where the file system takes it); `1` or `on`: the default.
pub const ETD_DIRECT_IO: &str = "ETD_DIRECT_IO";
/// Rewrite `completions/` and `man/` from the CLI definition (used by the freshness test).
pub const ETD_REGENERATE: &str = "ETD_REGENERATE";

/// A file holding the bearer token for HTTPS origins (WLCG convention), when the recipe has no
/// `publish.token_file`.
pub const BEARER_TOKEN_FILE: &str = "BEARER_TOKEN_FILE";
/// The bearer token itself, when neither `publish.token_file` nor `BEARER_TOKEN_FILE` is set.
pub const BEARER_TOKEN: &str = "BEARER_TOKEN";

/// For etd's own fast tests only: retry backoff delays become zero. Server-requested waits
/// (`Retry-After`, throttle messages) are still obeyed.
pub const ETD_TEST_NO_RETRY_DELAY: &str = "ETD_TEST_NO_RETRY_DELAY";

/// Every variable above, so tests can clear them.
pub const ALL: &[&str] = &[
    SOURCE_DATE_EPOCH,
    NO_COLOR,
    ETD_LOG,
    JOB_COMPLETION_INDEX,
    SLURM_ARRAY_TASK_ID,
    SLURM_ARRAY_TASK_MIN,
    SLURM_ARRAY_TASK_MAX,
    SLURM_ARRAY_TASK_COUNT,
    SLURM_ARRAY_TASK_STEP,
    RAYON_NUM_THREADS,
    ETD_PROGRESS_INTERVAL,
    ETD_DIRECT_IO,
    ETD_REGENERATE,
    ETD_TEST_NO_RETRY_DELAY,
    BEARER_TOKEN_FILE,
    BEARER_TOKEN,
];
