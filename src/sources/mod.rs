//! Sources: one folder per archive behind the [`Source`] trait. Each owns its recipe section
//! (raw and resolved), its politeness defaults, its plan for `etd check`, its fetch protocol and
//! its sample making ([`Samples`]). `run` holds what every fetch shares (lock and journal for a
//! task split, scan, summary, exit code), `engine` drives units concurrently, `payload` validates
//! answers. Payloads are stored through `store::raw`, downloads go through `net`.

pub mod astrocut;
pub mod atlas_fp;
pub mod atlas_var;
pub mod engine;
pub mod local;
pub mod payload;
pub mod ps1;
pub mod run;

use serde::Serialize;

use crate::error::{Exit, UserError};
use crate::hash::{unit_hash, HashDomain};
use crate::net::Politeness;
use crate::sample::{Fields, SampleError};
use crate::shard::Job;
use crate::store::journal::JournalScan;

pub use run::{FetchRun, Inputs, ShardInput};

/// One archive: how it fetches and how it makes samples. `SourceConfig::source` is the one
/// match that picks it; `commands/fetch.rs` and `commands/shard.rs` hold no archive-specific code.
pub trait Source: Sync {
    /// The source's name as written in recipes, and its `raw/<kind>/` folder.
    fn kind(&self) -> &'static str;
    /// Whether the recipe must have `targets`.
    fn needs_targets(&self) -> bool;
    /// The `transform` sections this source makes its samples with; a recipe may set no other.
    fn transforms(&self) -> &'static [crate::transform::Section];
    /// Politeness when the recipe does not say otherwise: inside the archive's published limits.
    fn default_politeness(&self) -> Politeness;
    /// What a fetch of `targets` targets would do, for `etd check`. Reads local files (a
    /// directory listing) but never the network.
    fn plan(&self, targets: u64) -> anyhow::Result<FetchPlan>;
    /// Politeness past what the archive allows: an error, or with `--exceed-archive-limits`
    /// (`exceed`) a warning to show.
    fn check_politeness(&self, _politeness: &Politeness, _exceed: bool) -> Result<Vec<String>, crate::spec::KeyError> {
        Ok(Vec::new())
    }
    /// An image transform this source cannot honour (e.g. `fits` output from jpg cutouts).
    fn check_image(&self, _image: &crate::transform::image::ImageTransform) -> Result<(), crate::spec::KeyError> {
        Ok(())
    }
    /// The settings recorded with each fetched unit (`params`); None: units are compared by
    /// their files instead (the local source).
    fn fingerprint(&self) -> Option<String>;
    /// Whether fetching makes requests (politeness and a least fetch time apply).
    fn networked(&self) -> bool {
        true
    }
    /// The fields `etd check` lists as the samples' outputs.
    fn outputs(&self, inputs: &Inputs<'_>) -> Vec<&'static str>;
    /// Files and folders on this machine that a fetch reads (the local source's folder, `file://`
    /// inputs), for `etd batch` to check that jobs without a shared filesystem get them.
    fn local_inputs(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
    /// Whether a sample gathers data from several fetched units (ATLAS-VAR: rows from every
    /// partition), so a shard task needs every fetch task's data, not only its own units'.
    fn samples_span_units(&self) -> bool {
        false
    }
    /// Checks and notes before a fetch or its dry run.
    fn preamble(&self, _run: &FetchRun<'_>) -> anyhow::Result<()> {
        Ok(())
    }
    /// `--dry-run`: print what a fetch would do (through `run.print`), make no requests, write nothing.
    fn dry_run(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit>;
    /// Fetch what is missing, journal it, and log the summary; returns the exit code.
    fn fetch(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit>;
    /// The samples the fetched units make.
    fn samples<'a>(&'a self, input: &'a ShardInput<'a>) -> anyhow::Result<Box<dyn Samples + 'a>>;
    /// A hint for a dataset with no sample.
    fn empty_hint(&self) -> Option<&'static str> {
        None
    }
}

/// The samples of one shard run: their keys, the manifest's class list, and how each is made
/// (called in parallel; `shard::write_dataset` orders and packs them).
pub trait Samples: Sync {
    fn jobs(&self) -> anyhow::Result<Vec<Job<usize>>>;
    fn classes(&self) -> Option<Vec<String>>;
    fn make(&self, job: &Job<usize>) -> anyhow::Result<Result<Fields, SampleError>>;
    /// The id a batch split assigns the sample's shard task by: the fetch unit whose task holds
    /// its data, so shard task I needs only fetch task I's workdir. The sample's id by default.
    fn split_id(&self, job: &Job<usize>) -> String {
        job.id.clone()
    }
}

/// One line per group of units a scan found fetched with other settings or at another endpoint
/// than `wanted`, each ending in `then` (what happens to them now).
pub fn stale_notes(scan: &JournalScan, wanted: &str, then: &str) -> Vec<String> {
    scan.stale_from.iter().map(|(recorded, n)| stale_note(*n, recorded.as_deref(), wanted, then)).collect()
}

/// This process's part of a batch work split (`--task-index I --num-tasks N`): a deterministic,
/// disjoint share of the units, chosen by a stable hash of each unit id, so the N tasks together
/// fetch every unit exactly once and adding targets never moves the others between tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSplit {
    pub index: u32,
    pub count: u32,
}

impl TaskSplit {
    /// The whole job in one task.
    pub const WHOLE: TaskSplit = TaskSplit { index: 0, count: 1 };

    /// From `--task-index`/`--num-tasks`, with the batch system's environment standing in for
    /// missing flags: `$JOB_COMPLETION_INDEX` (Kubernetes Indexed Job) for the index, or Slurm's
    /// `$SLURM_ARRAY_TASK_ID` (counted from `$SLURM_ARRAY_TASK_MIN`) for the index and
    /// `$SLURM_ARRAY_TASK_COUNT` for the count. `get` reads one variable.
    pub fn from_env(
        task_index: Option<u32>,
        num_tasks: Option<u32>,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, UserError> {
        use crate::env_vars::{
            JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MAX,
            SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_STEP,
        };
        let var = |name: &str| get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if let Some(v) = var(JOB_COMPLETION_INDEX) {
            return Self::new(task_index, num_tasks, Some((JOB_COMPLETION_INDEX, &v)));
        }
        let Some(id) = var(SLURM_ARRAY_TASK_ID) else {
            return Self::new(task_index, num_tasks, None);
        };
        let number = |name: &str| -> Result<Option<u32>, UserError> {
            var(name)
                .map(|v| {
                    v.parse::<u32>().map_err(|_| {
                        UserError::usage(format!("${name} is `{v}`, not a number"))
                            .with_hint("Slurm sets it for array jobs (sbatch --array=0-N)")
                    })
                })
                .transpose()
        };
        if let Some(step) = number(SLURM_ARRAY_TASK_STEP)?.filter(|s| *s != 1) {
            return Err(UserError::usage(format!("the Slurm job array steps by {step} (${SLURM_ARRAY_TASK_STEP})"))
                .with_hint(
                    "submit a contiguous array, e.g. sbatch --array=0-N, or pass --task-index and --num-tasks",
                ));
        }
        let min = number(SLURM_ARRAY_TASK_MIN)?.unwrap_or(0);
        let count = number(SLURM_ARRAY_TASK_COUNT)?;
        if let (Some(max), Some(count)) = (number(SLURM_ARRAY_TASK_MAX)?, count) {
            if max.checked_sub(min).map(|d| d + 1) != Some(count) {
                return Err(UserError::usage(format!(
                    "the Slurm job array {min}-{max} has {count} tasks, not one per index"
                ))
                .with_hint(
                    "submit a contiguous array, e.g. sbatch --array=0-N, or pass --task-index and --num-tasks",
                ));
            }
        }
        let index = id.parse::<u32>().ok().and_then(|i| i.checked_sub(min)).ok_or_else(|| {
            UserError::usage(format!("${SLURM_ARRAY_TASK_ID} is `{id}`, not an index from {min} on"))
                .with_hint("Slurm sets it for array jobs (sbatch --array=0-N)")
        })?;
        Self::new(task_index, num_tasks.or(count), Some((SLURM_ARRAY_TASK_ID, &index.to_string())))
    }

    /// From `--task-index`/`--num-tasks`, with `env` (a variable's name and value, the index
    /// counted from 0) standing in for a missing `--task-index`.
    pub fn new(task_index: Option<u32>, num_tasks: Option<u32>, env: Option<(&str, &str)>) -> Result<Self, UserError> {
        let (env, env_value) = env.unwrap_or((crate::env_vars::JOB_COMPLETION_INDEX, ""));
        let env_index = match Some(env_value.trim()).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(v.parse::<u32>().map_err(|_| {
                UserError::usage(format!("${env} is `{v}`, not a task index"))
                    .with_hint("Kubernetes indexed jobs set it to 0, 1, 2, ...")
            })?),
        };
        let count = num_tasks.unwrap_or(1);
        let index = match (task_index, env_index) {
            (Some(i), _) => i,
            (None, Some(i)) if num_tasks.is_none() && i > 0 => {
                return Err(UserError::usage(format!("${env} is {i}, but --num-tasks is not given"))
                    .with_hint("pass --num-tasks N (the job's completions) so each task knows its share"))
            }
            (None, Some(i)) => i,
            (None, None) => 0,
        };
        if count == 0 || index >= count {
            if task_index.is_none() {
                return Err(UserError::usage(format!(
                    "task index {index} from ${env} is not below --num-tasks {count}"
                ))
                .with_hint(format!(
                    "set --num-tasks to the job's completions (at least {} for this index), or pass --task-index \
                     to override ${env}",
                    u64::from(index) + 1
                )));
            }
            return Err(UserError::usage(format!("task index {index} is not below --num-tasks {count}"))
                .with_hint("task indexes count from 0: --task-index 0 .. N-1"));
        }
        Ok(TaskSplit { index, count })
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether this task fetches `unit`.
    pub fn owns(&self, unit: &str) -> bool {
        self.count == 1
            || ((unit_hash(HashDomain::Task, 0, unit) * f64::from(self.count)) as u32).min(self.count - 1) == self.index
    }
}

/// The recipe's `source`, resolved.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    Ps1(ps1::Ps1Config),
    AtlasFp(atlas_fp::AtlasFpConfig),
    AtlasVar(atlas_var::AtlasVarConfig),
    Local(local::LocalConfig),
    Astrocut(astrocut::AstrocutConfig),
}

impl SourceConfig {
    /// The source behind this section: the one match on the archives. Everything else about a
    /// source is asked of it through [`Source`].
    pub fn source(&self) -> &dyn Source {
        match self {
            SourceConfig::Ps1(cfg) => cfg,
            SourceConfig::AtlasFp(cfg) => cfg,
            SourceConfig::AtlasVar(cfg) => cfg,
            SourceConfig::Local(cfg) => cfg,
            SourceConfig::Astrocut(cfg) => cfg,
        }
    }

    /// The source's name as written in recipes.
    pub fn kind(&self) -> &'static str {
        self.source().kind()
    }

    /// Whether the recipe must have `targets`.
    pub fn needs_targets(&self) -> bool {
        self.source().needs_targets()
    }

    /// The `transform` sections this source makes its samples with; a recipe may set no other.
    pub fn transforms(&self) -> &'static [crate::transform::Section] {
        self.source().transforms()
    }

    /// Politeness when the recipe does not say otherwise: inside the archive's published limits.
    pub fn default_politeness(&self) -> Politeness {
        self.source().default_politeness()
    }
}

/// The archive endpoint as recorded with each fetched unit: the base URL without a fragment or
/// trailing slash, so `http://h/x` and `http://h/x/` are the same endpoint.
pub fn endpoint_id(base: &url::Url) -> String {
    let mut url = base.clone();
    url.set_fragment(None);
    url.as_str().trim_end_matches('/').to_string()
}

/// Source settings `settings` recorded together with the endpoint `base` they were fetched from.
pub fn params_at(settings: String, base: &url::Url) -> String {
    format!("{settings} {ENDPOINT_KEY}{}", endpoint_id(base))
}

const ENDPOINT_KEY: &str = "endpoint=";

/// Recorded params split into the settings and the endpoint (None: recorded without one, as
/// etd 0.1.0 did).
pub fn split_endpoint(params: &str) -> (&str, Option<&str>) {
    match params.rsplit_once(&format!(" {ENDPOINT_KEY}")) {
        Some((settings, endpoint)) => (settings, Some(endpoint)),
        None => (params, None),
    }
}

/// Why units recorded with params `recorded` do not count as fetched for a recipe that wants
/// `wanted`: `n` units, for a log line that ends in what happens to them (`then`).
pub fn stale_note(n: u64, recorded: Option<&str>, wanted: &str, then: &str) -> String {
    let then = if n == 1 { then.replacen("them", "it", 1) } else { then.to_string() };
    let (want_settings, want_endpoint) = split_endpoint(wanted);
    let (got_settings, got_endpoint) = match recorded {
        Some(r) => split_endpoint(r),
        None => ("", None),
    };
    match (want_endpoint, got_endpoint) {
        (Some(now), Some(then_at)) if got_settings == want_settings && then_at != now => {
            format!(
                "{} fetched from another endpoint ({then_at}) than the recipe's now ({now}); {then}",
                crate::report::plural_were(n, "unit")
            )
        }
        (Some(now), None) if recorded.is_some() && got_settings == want_settings => format!(
            "{} fetched by etd 0.1.0, which did not record the endpoint, so {} may come from another \
             endpoint than the recipe's now ({now}); {then}",
            crate::report::plural_were(n, "unit"),
            if n == 1 { "it" } else { "they" }
        ),
        _ => format!(
            "{} fetched with other source settings than the recipe's now; {then}",
            crate::report::plural_were(n, "unit")
        ),
    }
}

/// What a fetch would do, for `etd check` and `--dry-run`.
#[derive(Debug, Clone, Serialize)]
pub struct FetchPlan {
    /// Units of work.
    pub units: u64,
    /// How many samples a unit gives: `ONE_SAMPLE_EACH`, or (astrocut) one per sector, survey
    /// or product, which only the archive's answers tell.
    pub samples_per_unit: &'static str,
    /// Input files (local source) or targets.
    pub items: u64,
    /// What `items` counts: `files` or `targets`.
    pub items_kind: &'static str,
    /// Requests a fetch makes without retries; None when it depends on the archive's answers.
    pub requests: Option<u64>,
    /// How the request count is made up.
    pub requests_note: String,
    /// Total input bytes when known (local source).
    pub input_bytes: Option<u64>,
}

/// `FetchPlan::samples_per_unit` of the sources whose every unit is one sample.
pub const ONE_SAMPLE_EACH: &str = "one sample each";

/// Plan the fetch of a resolved source for `targets` targets. Reads local files (directory listing) but never the network.
pub fn plan(source: &SourceConfig, targets: u64) -> anyhow::Result<FetchPlan> {
    source.source().plan(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_recorded_with_the_settings_and_named_when_they_differ() {
        let a = url::Url::parse("http://127.0.0.1:8800/").unwrap();
        let b = url::Url::parse("https://ps1images.stsci.edu").unwrap();
        assert_eq!(endpoint_id(&a), "http://127.0.0.1:8800");
        assert_eq!(endpoint_id(&url::Url::parse("http://H:80/forcedphot/#x").unwrap()), "http://h/forcedphot");
        let (pa, pb) = (params_at("ps1 size=24".into(), &a), params_at("ps1 size=24".into(), &b));
        assert_eq!(split_endpoint(&pa), ("ps1 size=24", Some("http://127.0.0.1:8800")));
        assert_eq!(split_endpoint("ps1 size=24"), ("ps1 size=24", None));
        let note = stale_note(3, Some(&pa), &pb, "out");
        assert_eq!(
            note,
            "3 units were fetched from another endpoint (http://127.0.0.1:8800) than the recipe's now \
             (https://ps1images.stsci.edu); out"
        );
        assert!(stale_note(2, Some("ps1 size=24"), &pb, "out").contains("etd 0.1.0, which did not record"));
        let other = params_at("ps1 size=48".into(), &a);
        assert!(stale_note(1, Some(&other), &pb, "out").contains("other source settings"));
        assert!(stale_note(1, None, &pb, "out").contains("other source settings"));
    }

    #[test]
    fn tasks_own_disjoint_parts_that_cover_every_unit() {
        let ids: Vec<String> = (0..3000).map(|i| format!("t{i}")).collect();
        let tasks: Vec<TaskSplit> = (0..7).map(|i| TaskSplit::new(Some(i), Some(7), None).unwrap()).collect();
        let mut sizes = [0usize; 7];
        for id in &ids {
            let owners: Vec<usize> = (0..7).filter(|&t| tasks[t].owns(id)).collect();
            assert_eq!(owners.len(), 1, "{id}: {owners:?}");
            sizes[owners[0]] += 1;
        }
        // Balanced within a few standard deviations of 3000/7.
        assert!(sizes.iter().all(|&n| (330..530).contains(&n)), "{sizes:?}");
        assert!(ids.iter().all(|id| TaskSplit::WHOLE.owns(id)));
    }

    #[test]
    fn task_index_from_flags_or_job_completion_index() {
        assert_eq!(TaskSplit::new(None, None, None).unwrap(), TaskSplit::WHOLE);
        let kube = |v: &'static str| Some((crate::env_vars::JOB_COMPLETION_INDEX, v));
        assert_eq!(TaskSplit::new(None, None, kube("0")).unwrap(), TaskSplit::WHOLE);
        assert_eq!(TaskSplit::new(None, Some(4), kube("3")).unwrap(), TaskSplit { index: 3, count: 4 });
        // The flag wins over the environment.
        assert_eq!(TaskSplit::new(Some(1), Some(4), kube("3")).unwrap(), TaskSplit { index: 1, count: 4 });
        assert!(TaskSplit::new(None, None, kube("2")).unwrap_err().message.contains("--num-tasks is not given"));
        assert!(TaskSplit::new(Some(4), Some(4), None).unwrap_err().message.contains("not below"));
        let e = TaskSplit::new(None, Some(2), kube("3")).unwrap_err();
        assert!(
            e.message.starts_with("task index 3 from $JOB_COMPLETION_INDEX is not below --num-tasks 2"),
            "{}",
            e.message
        );
        assert!(TaskSplit::new(None, Some(2), kube("x")).unwrap_err().message.contains("not a task index"));
    }

    #[test]
    fn task_index_and_count_from_a_slurm_array() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(TaskSplit::from_env(None, None, &slurm).unwrap(), TaskSplit { index: 2, count: 3 });
        // Flags win; an array counted from 1 is counted from its minimum.
        assert_eq!(TaskSplit::from_env(Some(0), Some(3), &slurm).unwrap(), TaskSplit { index: 0, count: 3 });
        let from_one = env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(TaskSplit::from_env(None, None, &from_one).unwrap(), TaskSplit { index: 0, count: 4 });
        let gaps = env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        let e = TaskSplit::from_env(None, None, &gaps).unwrap_err();
        assert!(e.message.contains("has 3 tasks, not one per index"), "{}", e.message);
        let stepped = env(&[("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_STEP", "2")]);
        assert!(TaskSplit::from_env(None, None, &stepped).unwrap_err().message.contains("steps by 2"));
        // Kubernetes' index wins over Slurm's (a Slurm job never sets it).
        let both = env(&[("JOB_COMPLETION_INDEX", "1"), ("SLURM_ARRAY_TASK_ID", "0")]);
        assert_eq!(TaskSplit::from_env(None, Some(2), &both).unwrap(), TaskSplit { index: 1, count: 2 });
        assert_eq!(TaskSplit::from_env(None, None, &env(&[])).unwrap(), TaskSplit::WHOLE);
    }
}
