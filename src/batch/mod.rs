//! `etd batch`: the files a user submits to run the whole pipeline (fetch as N tasks, shard as N
//! tasks, merge, publish) on a batch engine: an HTCondor DAGMan DAG, Slurm array jobs chained by
//! dependencies, or Kubernetes Indexed Jobs. Pure text generation from a [`Plan`]: nothing here
//! reads a recipe or touches the file system (`commands::batch` does).
//!
//! Every engine runs each step through the same small wrapper, `etd-task.sh STEP ETD ARGS...`:
//! it forwards SIGTERM/SIGINT to etd (a vacated or preempted task journals what it did and exits
//! 143, and the engine's retry continues it), and turns exit 3 of a fetch or a merge (finished,
//! some items failed permanently, listed in failures.jsonl) into 0 so the pipeline goes on.
//! Exit 75 (retry later) is retried by the engine; exit 2 (usage or recipe error) never is.

pub mod htcondor;
pub mod kubernetes;
pub mod slurm;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::UserError;

/// The batch engines etd writes files for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Htcondor,
    Slurm,
    Kubernetes,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Htcondor => "htcondor",
            Engine::Slurm => "slurm",
            Engine::Kubernetes => "kubernetes",
        }
    }
}

/// What each task asks the engine for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Scratch disk in MiB (HTCondor's `request_disk`; the Kubernetes volume claim's size).
    pub disk_mib: u64,
}

/// Everything the generated files depend on.
#[derive(Debug, Clone)]
pub struct Plan {
    pub engine: Engine,
    /// Number of fetch tasks and of shard tasks.
    pub tasks: u32,
    /// Tasks share a file system (one workdir for all) or each works in its own scratch folder
    /// and the engine transfers its part back (HTCondor only).
    pub shared_fs: bool,
    /// The recipe's `name` (job names).
    pub name: String,
    /// The recipe, absolute.
    pub recipe: PathBuf,
    /// The etd the jobs run: an absolute path (HTCondor, Slurm) or a command in the image's PATH.
    pub etd: String,
    /// The workdir the jobs share (shared file system), or where the merged dataset lands on the
    /// submit side (file transfer).
    pub workdir: PathBuf,
    /// The folder the files are written to, absolute.
    pub out: PathBuf,
    /// Environment variables the tasks need from the submitter (e.g. `ATLAS_TOKEN`), by name only.
    pub pass_env: Vec<String>,
    /// The recipe has a `publish` section: add the publish step.
    pub publish: bool,
    /// Pass `--exceed-archive-limits` to the fetch tasks.
    pub exceed_archive_limits: bool,
    /// How many times the engine runs a task again after exit 75 (or a lost node).
    pub retries: u32,
    pub resources: Resources,
    /// Kubernetes: the container image with etd, and where the shared volume is mounted.
    pub image: Option<String>,
    pub mount: PathBuf,
}

/// One file to write, relative to the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub rel: String,
    pub text: String,
    pub executable: bool,
}

impl File {
    fn text(rel: &str, text: String) -> File {
        File { rel: rel.to_string(), text, executable: false }
    }

    fn script(rel: &str, text: String) -> File {
        File { rel: rel.to_string(), text, executable: true }
    }
}

/// What `generate` made: the files, and the folders that must exist before submitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub files: Vec<File>,
    pub dirs: Vec<String>,
}

/// The environment variables the publish step reads for an HTTPS origin's token.
pub const PUBLISH_ENV: &[&str] = &[crate::env_vars::BEARER_TOKEN_FILE, crate::env_vars::BEARER_TOKEN];

/// The files for `plan`, or why they cannot be written (exit 2).
pub fn generate(plan: &Plan) -> Result<Output, UserError> {
    check(plan)?;
    Ok(match plan.engine {
        Engine::Htcondor => htcondor::generate(plan),
        Engine::Slurm => slurm::generate(plan),
        Engine::Kubernetes => kubernetes::generate(plan)?,
    })
}

/// Characters a path may hold to be written into submit files and scripts unquoted: every engine
/// reads these files with its own quoting rules (HTCondor macros expand `$`, lists split on
/// commas and spaces), so etd refuses the rest instead of guessing.
fn plain_path(p: &str) -> bool {
    !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+@%:=".contains(c))
}

fn check(plan: &Plan) -> Result<(), UserError> {
    if plan.tasks < 2 {
        // One task shards the whole dataset itself and leaves no part to merge.
        return Err(UserError::usage(format!("--tasks {} splits nothing", plan.tasks))
            .with_hint("give --tasks 2 or more, or submit `etd run RECIPE` as one job"));
    }
    let mut paths = vec![
        ("the recipe", plan.recipe.display().to_string()),
        ("the workdir", plan.workdir.display().to_string()),
        ("the output folder", plan.out.display().to_string()),
        ("etd", plan.etd.clone()),
    ];
    if plan.engine == Engine::Kubernetes {
        paths.push(("--mount-path", plan.mount.display().to_string()));
    }
    for (what, p) in paths {
        if !plain_path(&p) {
            return Err(UserError::usage(format!("{what} `{p}` has characters the submit files cannot hold"))
                .with_hint(
                    "use a path of letters, digits and / . _ - + @ % : = only (no spaces, quotes, commas or $)",
                ));
        }
    }
    for var in &plan.pass_env {
        let ok = var.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(UserError::usage(format!("--pass-env `{var}` is not an environment variable name"))
                .with_hint("give the name only (e.g. `--pass-env ATLAS_TOKEN`), never the value"));
        }
    }
    Ok(())
}

impl Plan {
    /// The recipe's folder and file name.
    fn recipe_parts(&self) -> (&Path, String) {
        let dir = self.recipe.parent().unwrap_or(Path::new("/"));
        let file = self.recipe.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        (dir, file)
    }

    /// `[--exceed-archive-limits]` for the fetch step.
    fn fetch_extra(&self) -> &'static str {
        if self.exceed_archive_limits {
            " --exceed-archive-limits"
        } else {
            ""
        }
    }

    /// The name of a part folder (the contract of `etd shard --task-index I --num-tasks N`).
    fn part(&self, i: &str) -> String {
        format!("shard-{i}-of-{}", self.tasks)
    }

    /// A lowercase name for jobs (DNS label rules: letters, digits, `-`).
    fn job_name(&self, step: &str) -> String {
        let mut name: String =
            self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        // Kubernetes: the Job name plus `-<index>` must fit a 63-character host name.
        name.truncate(40);
        format!("etd-{step}-{}", name.trim_matches('-'))
    }

    /// The steps in order, with publish only when the recipe has a publish section.
    fn steps(&self) -> Vec<&'static str> {
        let mut s = vec!["fetch", "shard", "merge"];
        if self.publish {
            s.push("publish");
        }
        s
    }

    /// Every variable the tasks pass through: `--pass-env`, then the publish token's when the
    /// recipe publishes.
    fn env_all(&self, step: &str) -> Vec<String> {
        let mut v = self.pass_env.clone();
        if step == "publish" {
            for p in PUBLISH_ENV {
                if !v.iter().any(|x| x == p) {
                    v.push(p.to_string());
                }
            }
        }
        v
    }
}

/// The wrapper every engine runs a step through (`etd-task.sh STEP ETD ARGS...`).
pub fn task_script() -> String {
    let mut s = String::new();
    s.push_str(
        r#"#!/bin/sh
# One step of the etd pipeline as a batch engine runs it:
#   etd-task.sh [--ensure DIR] STEP ETD ARGS...
# Written by `etd batch`. Runs `ETD ARGS...`, forwards SIGTERM and SIGINT to it (a vacated or
# preempted task journals what it did and exits 143; the same command continues it), and exits
# with etd's code, except that exit 3 of a fetch or a merge (finished; some items failed
# permanently, listed in failures.jsonl) becomes 0 so that the next step runs. --ensure DIR
# makes DIR exist when etd exits, for an engine that transfers it back (HTCondor holds a job
# whose output is missing, where it should see the exit code).
ensure=
if [ "$1" = --ensure ]; then
  ensure=$2
  shift 2
fi
step=$1
etd=$2
shift 2
# A binary transferred by the engine may arrive without its executable bit.
case $etd in */*) [ -x "$etd" ] || chmod +x "$etd" 2>/dev/null ;; esac
# etd runs in a process group of its own (setsid, where there is one), so that a signal the engine
# sends to the whole group reaches it once, from here: etd ends at once on a second signal.
if command -v setsid >/dev/null 2>&1; then
  setsid "$etd" "$@" &
else
  "$etd" "$@" &
fi
pid=$!
# Slurm signals every process of the job itself: there the wrapper must not send a second one.
if [ "${ETD_TASK_FORWARD:-1}" = 1 ]; then
  trap 'kill -TERM "$pid" 2>/dev/null' TERM
  trap 'kill -INT "$pid" 2>/dev/null' INT
else
  trap : TERM INT
fi
wait "$pid"
rc=$?
# `wait` returns early when a trapped signal arrives: wait again for etd's own exit code.
while kill -0 "$pid" 2>/dev/null; do
  wait "$pid"
  rc=$?
done
if [ "$rc" = 3 ] && { [ "$step" = fetch ] || [ "$step" = merge ]; }; then
  echo "etd-task: $step: some items failed permanently (see failures.jsonl); the pipeline goes on" >&2
  rc=0
fi
if [ -n "$ensure" ]; then
  mkdir -p "$ensure"
fi
exit "$rc"
"#,
    );
    s
}

/// The README's section on exit codes and retries, common to all engines.
fn readme_exit_codes(plan: &Plan, out: &mut String) {
    let _ = write!(
        out,
        "## Exit codes and retries\n\n\
         Every step runs through `etd-task.sh STEP ETD ARGS...`, which passes etd's exit code on:\n\n\
         - 0: done. Exit 3 of a fetch or a merge (finished, some items failed permanently; they are\n  \
         listed in `failures.jsonl` of the workdir) also counts as done, so the next step runs.\n\
         - 75: retry later (archive down or throttling, nothing listening at its URL). The engine\n  \
         runs the task again, at most {retries} times.\n\
         - 2: usage or recipe error. Never retried: fix the recipe and submit again.\n\
         - 130/143: stopped by SIGINT/SIGTERM. When the engine vacates or preempts a task it sends\n  \
         SIGTERM: etd stops starting new work, lets requests under way finish, journals them and\n  \
         exits; `etd-task.sh` forwards the signal. The task's next run continues where it stopped.\n\
         - 1: runtime failure; see the task's log.\n\n\
         Every step is resumable: submitting the same files again after a failure or a cancel\n\
         redoes only what is missing (fetched units are in the journals, shard parts are written\n\
         atomically and a finished one is written again identically).\n\n",
        retries = plan.retries
    );
}

/// The README's section on tokens and secrets.
fn readme_secrets(plan: &Plan, how: &str, out: &mut String) {
    out.push_str("## Tokens\n\n");
    if plan.pass_env.is_empty() {
        out.push_str(
            "No environment variable is passed to the tasks. A recipe that needs a token (ATLAS forced\n\
             photometry reads it from `ATLAS_TOKEN` or the recipe's `token_env`) needs it passed: write\n\
             the files again with `etd batch ... --pass-env ATLAS_TOKEN`.\n",
        );
    } else {
        let _ =
            writeln!(out, "The tasks get these environment variables from you, by name: {}.", plan.pass_env.join(", "));
    }
    if plan.publish {
        let _ = writeln!(
            out,
            "The publish step also gets {} (the HTTPS origin's token, when the recipe has no\n`publish.token_file`).",
            PUBLISH_ENV.join(" and ")
        );
    }
    let _ = write!(out, "{how}\nNo token is written into these files.\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(engine: Engine, shared_fs: bool) -> Plan {
        Plan {
            engine,
            tasks: 3,
            shared_fs,
            name: "ps1-galaxy-morphology".into(),
            recipe: "/home/ana/recipes/ps1-galaxy-morphology.yaml".into(),
            etd: if engine == Engine::Kubernetes { "etd".into() } else { "/opt/etd/bin/etd".into() },
            workdir: if shared_fs {
                "/scratch/ana/etd-work/ps1-galaxy-morphology".into()
            } else {
                "/home/ana/batch/work".into()
            },
            out: "/home/ana/batch".into(),
            pass_env: vec!["ATLAS_TOKEN".into()],
            publish: true,
            exceed_archive_limits: false,
            retries: 5,
            resources: Resources { cpus: 1, memory_mib: 2048, disk_mib: 10240 },
            image: (engine == Engine::Kubernetes).then(|| "ghcr.io/example/etd:0.1".to_string()),
            mount: "/etd".into(),
        }
    }

    fn snapshot_all(tag: &str, plan: &Plan) -> Output {
        let out = generate(plan).unwrap();
        for f in out.files.iter().filter(|f| f.rel != "etd-task.sh") {
            insta::assert_snapshot!(format!("{tag}__{}", f.rel), f.text);
        }
        out
    }

    #[test]
    fn htcondor_file_transfer() {
        let out = snapshot_all("htcondor-transfer", &plan(Engine::Htcondor, false));
        assert_eq!(out.dirs, ["logs", "tasks/0/work", "tasks/1/work", "tasks/2/work"]);
        let names: Vec<&str> = out.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(names, ["etd.dag", "fetch.sub", "shard.sub", "merge.sub", "publish.sub", "etd-task.sh", "README"]);
    }

    #[test]
    fn htcondor_shared_fs() {
        let out = snapshot_all("htcondor-shared", &plan(Engine::Htcondor, true));
        assert_eq!(out.dirs, ["logs"]);
    }

    #[test]
    fn task_wrapper() {
        insta::assert_snapshot!(task_script());
    }

    #[test]
    fn slurm() {
        snapshot_all("slurm", &plan(Engine::Slurm, true));
    }

    #[test]
    fn kubernetes() {
        snapshot_all("kubernetes", &plan(Engine::Kubernetes, true));
    }

    #[test]
    fn without_publish_there_is_no_publish_step() {
        let mut p = plan(Engine::Htcondor, false);
        p.publish = false;
        let out = generate(&p).unwrap();
        assert!(out.files.iter().all(|f| f.rel != "publish.sub"));
        let dag = &out.files[0].text;
        assert!(!dag.contains("publish"), "{dag}");
        let mut p = plan(Engine::Slurm, true);
        p.publish = false;
        let submit = &generate(&p).unwrap().files[0].text;
        assert!(submit.ends_with("echo \"merge $merge\"\n"), "{submit}");
    }

    #[test]
    fn refusals_say_what_and_how() {
        let mut p = plan(Engine::Slurm, true);
        p.recipe = "/home/ana/my recipes/r.yaml".into();
        let e = generate(&p).unwrap_err();
        insta::assert_snapshot!(format!("{}\nhint: {}", e.message, e.hint.unwrap_or_default()), @r"
        the recipe `/home/ana/my recipes/r.yaml` has characters the submit files cannot hold
        hint: use a path of letters, digits and / . _ - + @ % : = only (no spaces, quotes, commas or $)
        ");
        let mut p = plan(Engine::Slurm, true);
        p.pass_env = vec!["ATLAS_TOKEN=abc".into()];
        let e = generate(&p).unwrap_err();
        insta::assert_snapshot!(format!("{}\nhint: {}", e.message, e.hint.unwrap_or_default()), @r"
        --pass-env `ATLAS_TOKEN=abc` is not an environment variable name
        hint: give the name only (e.g. `--pass-env ATLAS_TOKEN`), never the value
        ");
        let mut p = plan(Engine::Htcondor, false);
        p.tasks = 1;
        let e = generate(&p).unwrap_err();
        insta::assert_snapshot!(format!("{}\nhint: {}", e.message, e.hint.unwrap_or_default()), @r"
        --tasks 1 splits nothing
        hint: give --tasks 2 or more, or submit `etd run RECIPE` as one job
        ");
        let mut p = plan(Engine::Kubernetes, true);
        p.image = None;
        let e = generate(&p).unwrap_err();
        insta::assert_snapshot!(format!("{}\nhint: {}", e.message, e.hint.unwrap_or_default()), @r"
        --engine kubernetes needs --image: the container image the pods run
        hint: build an image with etd in its PATH (and /bin/sh, tar), push it, and give its name
        ");
    }

    #[test]
    fn job_names_fit_kubernetes_host_names() {
        let mut p = plan(Engine::Kubernetes, true);
        p.name = "A_very-long_Recipe.name.that.goes.on.and.on.and.on.and.on.and.on".into();
        let name = p.job_name("shard");
        assert!(name.len() + "-99999".len() <= 63, "{name}");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{name}");
    }
}
