//! `etd batch` on real engines: the files it writes for a PS1 recipe, submitted to a real Slurm
//! and a real HTCondor pool (started by `.ci/slurm-up` and `.ci/condor-up`) against the PS1
//! emulator, N = 3, with the emulator down at first so that every fetch task exits 75 and the
//! engine must run it again. Checked: the shards are byte-identical to a single-process
//! `etd run`, every target was fetched exactly once, the emulator saw no more requests in flight
//! than the recipe allows all tasks together. Kubernetes cannot run here: its manifests are
//! validated against the Job schema (the pinned `kubernetes-validate` in the venv) and the
//! generated container commands are run as N processes with `JOB_COMPLETION_INDEX=0..N-1`.
//!
//! Outside CI, a test whose engine (or Python) is missing prints one `skipped: ...` line and
//! passes; under `CI=true` it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use etd_emulators::ps1::{Faults, Ps1Emulator};

use super::common::{repo, stderr, stdout, Scratch};

const N: usize = 3;
const TARGETS: usize = 30;

/// Proceed when `ok`; otherwise say why the test is skipped, or fail under CI.
fn engine_up(test: &str, what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if etd_emulators::fixtures::under_ci() {
        panic!("{test}: {what} (.ci/run starts it)");
    }
    eprintln!("skipped: {test}: {what}");
    false
}

/// A loopback address nothing listens on (yet).
fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The recipe folder (`recipe/r.yaml` and its targets) under `dir`, fetching from `base`.
fn write_recipe(dir: &Path, base: &str) -> PathBuf {
    let rdir = dir.join("recipe");
    fs_err::create_dir_all(&rdir).unwrap();
    fs_err::write(rdir.join("targets.csv"), super::ps1::targets_csv(TARGETS)).unwrap();
    let recipe = super::ps1::recipe(base, "r", "{concurrency: 6, rate: 300/s}", "");
    fs_err::write(rdir.join("r.yaml"), recipe).unwrap();
    rdir.join("r.yaml")
}

/// `etd batch` with a clean environment.
fn etd_batch(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("etd"));
    for var in etd::env_vars::ALL {
        cmd.env_remove(var);
    }
    let out = cmd.arg("batch").args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "etd batch {args:?}: {}", stderr(&out));
    out
}

/// Every file of a shard folder with its bytes, sorted by name.
fn shard_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs_err::read_dir(dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), fs_err::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The single-process reference: `etd run` of the same recipe against the same emulator.
fn reference(base: &str) -> Vec<(String, Vec<u8>)> {
    let one = Scratch::new();
    let recipe = write_recipe(one.path(), base);
    let out = one.etd().args(["run", recipe.to_str().unwrap()]).output().unwrap();
    // 3: the targets below dec -30 have no PS1 coverage.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    one.shard_files()
}

/// What the emulator saw from the engine's tasks: each target listed and cut out exactly once,
/// never more requests in flight than the recipe's concurrency for all tasks together.
fn check_meter(emu: &Ps1Emulator) {
    let m = emu.meter();
    assert_eq!(m.by_endpoint["ps1filenames"], TARGETS as u64, "{m:?}");
    assert_eq!(m.by_endpoint["fitscut"], (TARGETS - TARGETS / 10) as u64, "{m:?}");
    assert!(m.peak_inflight <= 6, "peak in flight {} > 6", m.peak_inflight);
    assert!(m.peak_inflight <= 10, "above MAST's limit of 10 in flight");
}

/// Wait until `cond`, or fail after `limit` with `what` and `why()`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool, why: impl Fn() -> String) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}\n{}", why());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The text of every file in `dir` whose name starts with `prefix`.
fn logs(dir: &Path, prefix: &str) -> String {
    let mut out = String::new();
    if let Ok(rd) = fs_err::read_dir(dir) {
        let mut paths: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            if p.file_name().unwrap().to_string_lossy().starts_with(prefix) {
                out.push_str(&format!("== {}\n{}\n", p.display(), fs_err::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Slurm

fn slurm_up() -> bool {
    Command::new("sinfo").args(["-h", "-o", "%T"]).output().is_ok_and(|o| {
        o.status.success()
            && String::from_utf8_lossy(&o.stdout).lines().any(|l| ["idle", "mixed", "allocated"].contains(&l.trim()))
    })
}

#[test]
fn slurm_runs_the_generated_pipeline_and_requeues_exit_75() {
    etd_emulators::require_fixtures!();
    if !engine_up("batch::slurm", "no Slurm is running (start one with .ci/slurm-up)", slurm_up()) {
        return;
    }
    let addr = free_addr();
    let base = format!("http://{addr}");
    let s = Scratch::new();
    let recipe = write_recipe(s.path(), &base);
    let out_dir = s.join("batch");
    let work = s.join("work");
    etd_batch(&[
        recipe.to_str().unwrap(),
        "--engine",
        "slurm",
        "--tasks",
        &N.to_string(),
        "--out",
        out_dir.to_str().unwrap(),
        "--workdir",
        work.to_str().unwrap(),
        "--memory",
        "500MiB",
    ]);
    let sub = Command::new(out_dir.join("submit.sh")).output().unwrap();
    assert!(sub.status.success(), "{}", stderr(&sub));
    let ids: Vec<String> = stdout(&sub).lines().map(|l| l.split_whitespace().nth(1).unwrap().to_string()).collect();
    assert_eq!(ids.len(), 3, "fetch, shard, merge: {}", stdout(&sub));
    // The archive is down: the fetch tasks exit 75 and requeue themselves.
    let logs_dir = out_dir.join("logs");
    wait_for(
        "a fetch task to requeue itself",
        Duration::from_secs(120),
        || logs(&logs_dir, "fetch").contains("requeueing job"),
        || logs(&logs_dir, ""),
    );
    let emu = Ps1Emulator::start_on(&addr, Faults { latency: Duration::from_millis(2), ..Faults::default() }).unwrap();
    let all = ids.join(",");
    wait_for(
        "the pipeline's jobs to finish",
        Duration::from_secs(600),
        || {
            Command::new("squeue")
                .args(["-h", "-j", &all])
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
        },
        || logs(&logs_dir, ""),
    );
    for id in &ids {
        let show = Command::new("scontrol").args(["show", "job", id]).output().unwrap();
        let text = stdout(&show);
        assert!(
            text.lines().filter(|l| l.contains("JobState=")).all(|l| l.contains("JobState=COMPLETED")),
            "job {id}:\n{text}\n{}",
            logs(&logs_dir, "")
        );
    }
    assert!(logs(&logs_dir, "fetch").contains("nothing is listening"), "the first runs found the archive down");
    check_meter(&emu);
    emu.reset_meter();
    assert_eq!(shard_files(&work.join("shards")), reference(&base), "the engine's shards equal a single process's");
}

// ---------------------------------------------------------------------------------------------
// HTCondor

fn condor_root() -> PathBuf {
    std::env::var_os("ETD_CONDOR_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/tmp/etd-condor/root"))
}

fn condor_exchange() -> PathBuf {
    std::env::var_os("ETD_CONDOR_EXCHANGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/etd-condor-exchange"))
}

fn condor_up() -> bool {
    Command::new("chroot")
        .arg(condor_root())
        .args(["condor_status", "-af", "Name"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
        && condor_root().join(condor_exchange().strip_prefix("/").unwrap()).is_dir()
}

/// Give the chroot's job user (uid 2000) the folder: the schedd refuses jobs from root.
fn chown_to_job_user(dir: &Path) {
    let st = Command::new("chown").args(["-R", "2000:2000"]).arg(dir).status().unwrap();
    assert!(st.success(), "chown {}", dir.display());
}

/// Run `sh -c script` as the job user inside the chroot.
fn as_job_user(script: &str) -> std::process::Output {
    Command::new("chroot").arg(condor_root()).args(["su", "etduser", "-c", script]).output().unwrap()
}

/// How a fetch task is made to run twice.
#[derive(Clone, Copy, PartialEq)]
enum Trouble {
    /// The archive is down at first: every fetch task exits 75 and HTCondor runs it again.
    Exit75,
    /// One fetch task is vacated mid-way (SIGTERM, as when a slot is reclaimed) and runs again.
    Vacate,
}

fn htcondor_pipeline(shared_fs: bool, trouble: Trouble) {
    etd_emulators::require_fixtures!();
    let test = match (shared_fs, trouble) {
        (true, _) => "batch::htcondor_shared_fs",
        (false, Trouble::Exit75) => "batch::htcondor_file_transfer",
        (false, Trouble::Vacate) => "batch::htcondor_vacate",
    };
    if !engine_up(test, "no HTCondor pool is running (start one with .ci/condor-up)", condor_up()) {
        return;
    }
    let addr = free_addr();
    let base = format!("http://{addr}");
    // A folder the chroot sees at the same path, holding etd itself, the recipe and the outputs.
    let scratch = tempfile::tempdir_in(condor_exchange()).unwrap();
    let dir = scratch.path();
    let recipe = write_recipe(dir, &base);
    let etd = dir.join("bin/etd");
    fs_err::create_dir_all(etd.parent().unwrap()).unwrap();
    fs_err::copy(assert_cmd::cargo::cargo_bin("etd"), &etd).unwrap();
    let out_dir = dir.join("batch");
    let work = dir.join("work");
    let mut args = vec![
        recipe.to_str().unwrap(),
        "--engine",
        "htcondor",
        "--tasks",
        "3",
        "--out",
        out_dir.to_str().unwrap(),
        "--etd",
        etd.to_str().unwrap(),
        "--memory",
        "500MiB",
        "--disk",
        "1GiB",
    ];
    if shared_fs {
        args.extend(["--shared-fs", "--workdir", work.to_str().unwrap()]);
    }
    etd_batch(&args);
    chown_to_job_user(dir);
    let sub = as_job_user(&format!("cd {} && condor_submit_dag -batch-name etd-test etd.dag", out_dir.display()));
    assert!(sub.status.success(), "{}\n{}", stdout(&sub), stderr(&sub));
    let logs_dir = out_dir.join("logs");
    let mut vacated = None;
    let emu = if trouble == Trouble::Exit75 {
        wait_for(
            "a fetch task to exit 75",
            Duration::from_secs(180),
            || logs(&logs_dir, "fetch").contains("nothing is listening"),
            || logs(&logs_dir, "") + &logs(&out_dir, "etd.dag.dagman.out"),
        );
        Ps1Emulator::start_on(&addr, Faults { latency: Duration::from_millis(2), ..Faults::default() }).unwrap()
    } else {
        // A slow archive, so that a task is still fetching when it is vacated.
        let emu =
            Ps1Emulator::start_on(&addr, Faults { latency: Duration::from_millis(1500), ..Faults::default() }).unwrap();
        let running = "condor_q -constraint 'JobStatus == 2 && DAGNodeName == \"fetch\" && time() - EnteredCurrentStatus >= 6' -af ClusterId ProcId";
        let mut job = String::new();
        wait_for(
            "a fetch task running for 6 s",
            Duration::from_secs(180),
            || {
                job = stdout(&as_job_user(running)).lines().next().unwrap_or_default().replace(' ', ".");
                !job.is_empty()
            },
            || logs(&logs_dir, "fetch.log"),
        );
        let out = as_job_user(&format!("condor_vacate_job {job}"));
        assert!(out.status.success(), "{}", stderr(&out));
        vacated = Some(job.split('.').nth(1).unwrap().to_string());
        emu
    };
    let dagman_out = out_dir.join("etd.dag.dagman.out");
    wait_for(
        "DAGMan to exit",
        Duration::from_secs(600),
        || fs_err::read_to_string(&dagman_out).is_ok_and(|t| t.contains("EXITING WITH STATUS")),
        || logs(&logs_dir, "") + &logs(&out_dir, "etd.dag.dagman.out"),
    );
    let text = fs_err::read_to_string(&dagman_out).unwrap();
    assert!(text.contains("EXITING WITH STATUS 0"), "{}\n{text}", logs(&logs_dir, ""));
    if let Some(proc_id) = vacated {
        let events = fs_err::read_to_string(logs_dir.join("fetch.log")).unwrap();
        assert!(events.contains("Job was evicted"), "{events}");
        // The task's second run started from what the first one had journaled, brought back on
        // eviction (file transfer) or left in the shared workdir.
        let err = fs_err::read_to_string(logs_dir.join(format!("fetch-{proc_id}.err"))).unwrap();
        let task = format!("INFO fetch (task {proc_id} of 3)");
        let start = err.lines().rfind(|l| l.contains(&task) && l.contains(" owned, ")).unwrap_or_default();
        assert!(start.contains(" already done") && !start.contains(", 0 already done"), "{err}");
    }
    check_meter(&emu);
    emu.reset_meter();
    let final_work = if shared_fs { work } else { out_dir.join("work") };
    assert_eq!(
        shard_files(&final_work.join("shards")),
        reference(&base),
        "the engine's shards equal a single process's"
    );
}

#[test]
fn htcondor_file_transfer_runs_the_generated_dag_and_retries_exit_75() {
    htcondor_pipeline(false, Trouble::Exit75);
}

#[test]
fn htcondor_file_transfer_vacated_task_continues_where_it_stopped() {
    htcondor_pipeline(false, Trouble::Vacate);
}

#[test]
fn htcondor_shared_fs_runs_the_generated_dag_and_retries_exit_75() {
    htcondor_pipeline(true, Trouble::Exit75);
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// A Python with the pinned `kubernetes-validate` (the venv `.ci/run` makes, or `ETD_TEST_PYTHON`).
fn validator_python() -> Option<PathBuf> {
    let candidates = [std::env::var_os("ETD_TEST_PYTHON").map(PathBuf::from), Some(repo().join(".venv/bin/python"))];
    candidates
        .into_iter()
        .flatten()
        .find(|p| Command::new(p).args(["-c", "import kubernetes_validate"]).output().is_ok_and(|o| o.status.success()))
}

fn kubernetes_files(s: &Scratch, base: &str, mount: &Path) -> PathBuf {
    let recipe = write_recipe(s.path(), base);
    let out_dir = s.join("k8s");
    etd_batch(&[
        recipe.to_str().unwrap(),
        "--engine",
        "kubernetes",
        "--tasks",
        &N.to_string(),
        "--out",
        out_dir.to_str().unwrap(),
        "--image",
        "registry.example.org/etd:1",
        "--etd",
        assert_cmd::cargo::cargo_bin("etd").to_str().unwrap(),
        "--mount-path",
        mount.to_str().unwrap(),
        "--pass-env",
        "ATLAS_TOKEN",
    ]);
    out_dir
}

fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&fs_err::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn kubernetes_manifests_are_valid_jobs_with_the_retry_rules() {
    let s = Scratch::new();
    let out_dir = kubernetes_files(&s, "http://127.0.0.1:9", Path::new("/etd"));
    let Some(py) = validator_python() else {
        engine_up(
            "batch::kubernetes_manifests",
            "no Python with kubernetes-validate (.ci/run installs it in .venv)",
            false,
        );
        return;
    };
    let files = ["volume.yaml", "copy-pod.yaml", "fetch-job.yaml", "shard-job.yaml", "merge-job.yaml"];
    let out = Command::new(&py)
        .args(["-m", "kubernetes_validate", "--strict", "-k", "1.33.0"])
        .args(files.iter().map(|f| out_dir.join(f)))
        .output()
        .unwrap();
    assert!(out.status.success(), "kubernetes-validate:\n{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).matches(" passed ").count(), files.len(), "{}", stdout(&out));
    // A recipe that publishes: the merge Job merges in an init container, then publishes.
    let p = Scratch::new();
    let recipe = write_recipe(p.path(), "http://127.0.0.1:9");
    let text = fs_err::read_to_string(&recipe).unwrap();
    fs_err::write(
        &recipe,
        format!("{text}publish: {{origin: {}, path: ns/ds, version: v1}}\n", p.join("origin").display()),
    )
    .unwrap();
    let pub_dir = p.join("k8s");
    etd_batch(&[
        recipe.to_str().unwrap(),
        "--engine",
        "kubernetes",
        "--tasks",
        "3",
        "--out",
        pub_dir.to_str().unwrap(),
        "--image",
        "registry.example.org/etd:1",
    ]);
    let merge = pub_dir.join("merge-job.yaml");
    let out =
        Command::new(&py).args(["-m", "kubernetes_validate", "--strict", "-k", "1.33.0"]).arg(&merge).output().unwrap();
    assert!(out.status.success(), "kubernetes-validate:\n{}{}", stdout(&out), stderr(&out));
    assert_eq!(pod_command(&merge, true)[4..7], ["merge", "etd", "shard"]);
    assert_eq!(pod_command(&merge, false)[4..7], ["publish", "etd", "publish"]);
    for step in ["fetch", "shard"] {
        let job = yaml(&out_dir.join(format!("{step}-job.yaml")));
        let spec = &job["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(spec["completions"], N as u64);
        assert_eq!(spec["parallelism"], N as u64);
        assert_eq!(spec["backoffLimitPerIndex"], 5);
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        let rules = spec["podFailurePolicy"]["rules"].as_sequence().unwrap();
        let on = |action: &str| {
            rules.iter().find(|r| r["action"] == action).map(|r| r["onExitCodes"]["values"].clone()).unwrap()
        };
        assert_eq!(on("FailJob"), serde_yaml::from_str::<serde_yaml::Value>("[2]").unwrap());
        assert_eq!(on("Count"), serde_yaml::from_str::<serde_yaml::Value>("[75]").unwrap());
        let env = &spec["template"]["spec"]["containers"][0]["env"][0];
        assert_eq!(env["name"], "ATLAS_TOKEN");
        assert!(env["valueFrom"]["secretKeyRef"]["name"].is_string(), "the token comes from a Secret");
    }
    for f in files {
        assert!(
            !fs_err::read_to_string(out_dir.join(f)).unwrap().contains("--task-index"),
            "{f}: the index comes from JOB_COMPLETION_INDEX"
        );
    }
}

/// The generated container command of `file`'s pod (the first container, or the init container).
fn pod_command(file: &Path, init: bool) -> Vec<String> {
    let job = yaml(file);
    let key = if init { "initContainers" } else { "containers" };
    let cmd = &job["spec"]["template"]["spec"][key][0]["command"];
    cmd.as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn kubernetes_index_contract_with_n_processes() {
    etd_emulators::require_fixtures!();
    let emu = Ps1Emulator::start(Faults { latency: Duration::from_millis(2), ..Faults::default() }).unwrap();
    let s = Scratch::new();
    // The shared volume: the recipe's folder copied to <mount>/recipe, the workdir <mount>/work.
    let mount = s.join("volume");
    let out_dir = kubernetes_files(&s, &emu.base_url(), &mount);
    fs_err::create_dir_all(mount.join("recipe")).unwrap();
    for f in ["r.yaml", "targets.csv"] {
        fs_err::copy(s.join("recipe").join(f), mount.join("recipe").join(f)).unwrap();
    }
    for step in ["fetch", "shard"] {
        let cmd = pod_command(&out_dir.join(format!("{step}-job.yaml")), false);
        // N pods at once, as the Indexed Job starts them.
        let pods: Vec<_> = (0..N)
            .map(|i| {
                let mut c = Command::new(&cmd[0]);
                for var in etd::env_vars::ALL {
                    c.env_remove(var);
                }
                c.args(&cmd[1..]).env("JOB_COMPLETION_INDEX", i.to_string());
                c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for (i, p) in pods.into_iter().enumerate() {
            let out = p.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{step} pod {i}: {}", stderr(&out));
        }
    }
    let cmd = pod_command(&out_dir.join("merge-job.yaml"), false);
    let out = Command::new(&cmd[0]).args(&cmd[1..]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "merge: {}", stderr(&out));
    check_meter(&emu);
    emu.reset_meter();
    assert_eq!(shard_files(&mount.join("work/shards")), reference(&emu.base_url()));
}

#[test]
fn batch_refuses_what_an_engine_cannot_do_with_exit_2() {
    let s = Scratch::new();
    let recipe = write_recipe(s.path(), "http://127.0.0.1:9");
    let r = recipe.to_str().unwrap();
    let out_dir = s.join("out");
    let o = out_dir.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--engine", "slurm", "--no-shared-fs"], "--no-shared-fs is for HTCondor, not slurm"),
        (&["--engine", "kubernetes"], "--engine kubernetes needs --image"),
        (&["--engine", "htcondor", "--image", "x"], "--image is for Kubernetes, not htcondor"),
    ];
    for (extra, message) in cases {
        let out = s.etd().args(["batch", r, "--tasks", "3", "--out", o]).args(extra).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{extra:?}: {}", stderr(&out));
    }
    // `Scratch::etd` gives --workdir: with file transfer each task has its own.
    let out = s.etd().args(["batch", r, "--engine", "htcondor", "--tasks", "3", "--out", o]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("with file transfer each task has its own"), "{}", stderr(&out));
    assert!(!out_dir.exists(), "nothing is written when the options are refused");
    // With file transfer a job gets the recipe's folder only: a targets file outside it is refused.
    let text = fs_err::read_to_string(&recipe).unwrap().replace("file: targets.csv", "file: ../targets.csv");
    fs_err::write(&recipe, text).unwrap();
    fs_err::copy(s.join("recipe/targets.csv"), s.join("targets.csv")).unwrap();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"));
    let out = cmd.args(["batch", r, "--engine", "htcondor", "--tasks", "3", "--out", o]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is outside the recipe's folder"), "{}", stderr(&out));
    let out = cmd.args(["--shared-fs", "--workdir", s.join("work").to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // So is a local source's folder outside it (the quickstart reads ../examples/data).
    let quickstart = super::common::repo().join("recipes/quickstart.yaml");
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"))
        .args(["batch", quickstart.to_str().unwrap(), "--engine", "htcondor", "--tasks", "3", "--out"])
        .arg(s.join("quick"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the input ") && stderr(&out).contains("examples/data is outside"),
        "{}",
        stderr(&out)
    );
    assert!(!s.join("quick").exists());
    // ATLAS-VAR shard tasks need every fetch task's data: file transfer cannot give it.
    let var = super::common::repo().join("recipes/atlas-var-pulsators.yaml");
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("etd"))
        .args(["batch", var.to_str().unwrap(), "--engine", "htcondor", "--tasks", "3", "--out"])
        .arg(s.join("var"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the atlas-var source's samples gather data from every fetch task"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: add --shared-fs"), "{}", stderr(&out));
    assert!(!s.join("var").exists());
}
