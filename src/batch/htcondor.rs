//! HTCondor: a DAGMan DAG (fetch cluster -> shard cluster -> merge -> publish) with one submit
//! file per step. Two variants: a shared file system (every job runs in the one workdir,
//! `should_transfer_files = NO`) and file transfer, the OSPool case (each task works in its own
//! scratch folder; the engine transfers the task's workdir back to `tasks/I/work`, the shard task
//! I gets fetch task I's workdir, the merge gets every part).

use std::fmt::Write as _;

use super::{File, Output, Plan};

pub fn generate(plan: &Plan) -> Output {
    let mut files = vec![File::text("etd.dag", dag(plan))];
    for step in plan.steps() {
        files.push(File::text(&format!("{step}.sub"), submit(plan, step)));
    }
    files.push(File::script("etd-task.sh", super::task_script()));
    files.push(File::text("README", readme(plan)));
    let mut dirs = vec!["logs".to_string()];
    if !plan.shared_fs {
        // A task's workdir is an input of its own retries (what an earlier run fetched), so it
        // must exist, empty, before the first run.
        dirs.extend((0..plan.tasks).map(|i| format!("tasks/{i}/work")));
    }
    Output { files, dirs }
}

fn dag(plan: &Plan) -> String {
    let steps = plan.steps();
    let mut s = format!(
        "# The etd pipeline for {recipe}, written by `etd batch`:\n\
         # fetch ({n} tasks) -> shard ({n} tasks) -> merge{publish}.\n\
         # Submit from this folder: condor_submit_dag etd.dag\n",
        recipe = plan.recipe.display(),
        n = plan.tasks,
        publish = if plan.publish { " -> publish" } else { "" },
    );
    for step in &steps {
        let _ = writeln!(s, "JOB {step} {step}.sub");
    }
    for pair in steps.windows(2) {
        let _ = writeln!(s, "PARENT {} CHILD {}", pair[0], pair[1]);
    }
    s.push_str(
        "# A node that failed (a task that exited 75 more often than its own retries allow, or a lost\n\
         # job) is submitted again; the tasks continue where they stopped. Exit 2 (usage or recipe\n\
         # error) is never retried.\n",
    );
    for step in &steps {
        let _ = writeln!(s, "RETRY {step} {} UNLESS-EXIT 2", plan.retries);
    }
    s
}

/// `transfer_input_files` entries every file-transfer job needs: etd itself and the recipe's
/// folder (so paths relative to the recipe, such as its targets file, still resolve).
fn inputs(plan: &Plan) -> String {
    let (dir, _) = plan.recipe_parts();
    format!("{}, {}", plan.etd, dir.display())
}

/// The etd and recipe paths as a job sees them.
fn job_paths(plan: &Plan) -> (String, String) {
    if plan.shared_fs {
        (plan.etd.clone(), plan.recipe.display().to_string())
    } else {
        let (dir, file) = plan.recipe_parts();
        let etd = std::path::Path::new(&plan.etd).file_name().map(|f| f.to_string_lossy().into_owned());
        let folder = dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let recipe = if folder.is_empty() { file } else { format!("{folder}/{file}") };
        (format!("./{}", etd.unwrap_or_default()), recipe)
    }
}

fn submit(plan: &Plan, step: &str) -> String {
    let n = plan.tasks;
    let out = plan.out.display();
    let (etd, recipe) = job_paths(plan);
    let workdir = if plan.shared_fs { plan.workdir.display().to_string() } else { "work".to_string() };
    let split = format!("--task-index $(Process) --num-tasks {n}");
    let (args, what) = match step {
        "fetch" => (
            format!("fetch {recipe} --workdir {workdir} {split}{}", plan.fetch_extra()),
            format!("etd fetch, task $(Process) of {n}"),
        ),
        "shard" => (
            format!("shard {recipe} --workdir {workdir} {split}"),
            format!("etd shard, task $(Process) of {n}: its part of the samples"),
        ),
        "merge" => {
            let parts = if plan.shared_fs {
                String::new()
            } else {
                (0..n).map(|i| format!(" {}", plan.part(&i.to_string()))).collect()
            };
            (
                format!("shard {recipe} --workdir {workdir} --merge{parts}"),
                format!("etd shard --merge: the {n} parts into the shards and manifest"),
            )
        }
        _ => {
            let (etd_abs, recipe_abs) = (plan.etd.clone(), plan.recipe.display().to_string());
            let wd = plan.workdir.display();
            let mut s = header(&format!("etd publish: the shards of {wd} to the recipe's origin"));
            // Publishing needs no transfer: it reads the merged workdir where it is. With file
            // transfer it runs on the submit host (local universe), next to the merged dataset.
            let universe = if plan.shared_fs { "vanilla" } else { "local" };
            let _ = write!(
                s,
                "universe = {universe}\n\
                 executable = {out}/etd-task.sh\n\
                 arguments = \"publish {etd_abs} publish {recipe_abs} --workdir {wd}\"\n\
                 initialdir = {out}\n"
            );
            if plan.shared_fs {
                s.push_str("should_transfer_files = NO\n");
            }
            common(plan, step, &mut s);
            s.push_str("queue\n");
            return s;
        }
    };
    let ensure = match step {
        _ if plan.shared_fs => String::new(),
        "shard" => format!("--ensure work/parts/{} ", plan.part("$(Process)")),
        _ => "--ensure work ".to_string(),
    };
    let mut s = header(&what);
    let _ =
        write!(s, "universe = vanilla\nexecutable = {out}/etd-task.sh\narguments = \"{ensure}{step} {etd} {args}\"\n");
    if plan.shared_fs {
        let _ = write!(s, "initialdir = {}\nshould_transfer_files = NO\n", plan.workdir.display());
    } else {
        match step {
            "fetch" => {
                let _ = write!(
                    s,
                    "# The task's workdir comes back to tasks/$(Process)/work, on exit and when the job is\n\
                     # evicted, and goes in again when the task runs again: a retry continues it.\n\
                     initialdir = {out}/tasks/$(Process)\n\
                     should_transfer_files = YES\n\
                     when_to_transfer_output = ON_EXIT_OR_EVICT\n\
                     transfer_input_files = {}, work\n\
                     transfer_output_files = work\n",
                    inputs(plan)
                );
            }
            "shard" => {
                let _ = write!(
                    s,
                    "# Shard task I runs in fetch task I's workdir and sends back its part folder only.\n\
                     initialdir = {out}/tasks/$(Process)\n\
                     should_transfer_files = YES\n\
                     when_to_transfer_output = ON_EXIT\n\
                     transfer_input_files = {}, work\n\
                     transfer_output_files = work/parts/{}\n",
                    inputs(plan),
                    plan.part("$(Process)")
                );
            }
            _ => {
                let parts: Vec<String> = (0..n).map(|i| format!("tasks/{i}/{}", plan.part(&i.to_string()))).collect();
                let _ = write!(
                    s,
                    "# Every part goes in; the merged workdir (shards/, manifest.json, failures.jsonl)\n\
                     # comes back to {wd}.\n\
                     initialdir = {out}\n\
                     should_transfer_files = YES\n\
                     when_to_transfer_output = ON_EXIT\n\
                     transfer_input_files = {}, {}\n\
                     transfer_output_files = work\n",
                    inputs(plan),
                    parts.join(", "),
                    wd = plan.workdir.display(),
                );
            }
        }
    }
    common(plan, step, &mut s);
    if step == "merge" {
        s.push_str("queue\n");
    } else {
        let _ = writeln!(s, "queue {n}");
    }
    s
}

fn header(what: &str) -> String {
    format!("# {what}. Written by `etd batch`; submitted by etd.dag.\n")
}

/// Requests, environment, retries and logs: the same for every step.
fn common(plan: &Plan, step: &str, s: &mut String) {
    let r = plan.resources;
    let env = plan.env_all(step);
    if !env.is_empty() {
        let _ = writeln!(
            s,
            "# Taken from the submitter's environment at submit time; never written here.\ngetenv = {}",
            env.join(", ")
        );
    }
    let per = if step == "merge" || step == "publish" { String::new() } else { "-$(Process)".to_string() };
    let _ = write!(
        s,
        "request_cpus = {cpus}\n\
         request_memory = {mem}\n\
         request_disk = {disk}\n\
         # Exit 75 (retry later): run the task again, at most {retries} times; any other code is final.\n\
         max_retries = {retries}\n\
         retry_until = ExitCode =!= 75\n\
         # A job held because a transfer failed is removed, so that DAGMan's RETRY takes over.\n\
         periodic_remove = (JobStatus == 5) && (HoldReasonCode == 12 || HoldReasonCode == 13)\n\
         output = {out}/logs/{step}{per}.out\n\
         error = {out}/logs/{step}{per}.err\n\
         log = {out}/logs/{step}.log\n",
        cpus = r.cpus,
        mem = r.memory_mib,
        disk = r.disk_mib * 1024,
        retries = plan.retries,
        out = plan.out.display(),
    );
}

fn readme(plan: &Plan) -> String {
    let out = plan.out.display();
    let n = plan.tasks;
    let mut s = format!(
        "# Running {name} on HTCondor\n\n\
         Written by `etd batch {recipe} --engine htcondor --tasks {n}{variant}`.\n\
         The pipeline is a DAGMan DAG: fetch ({n} jobs) -> shard ({n} jobs) -> merge{publish}.\n\n\
         ## Submit, watch, resume\n\n\
         ```sh\n\
         cd {out}\n\
         condor_submit_dag etd.dag          # submits the whole pipeline\n\
         condor_q -dag -nobatch             # the nodes and their jobs\n\
         tail -f etd.dag.dagman.out         # what DAGMan does\n\
         ```\n\n\
         Each task's output and errors are in `logs/<step>-<task>.out|.err`, the jobs' events in\n\
         `logs/<step>.log`. If the DAG fails (a node failed more often than its retries allow),\n\
         DAGMan writes `etd.dag.rescue001`: fix the cause and run `condor_submit_dag etd.dag` again;\n\
         DAGMan skips the nodes that finished and the tasks continue where they stopped.\n\n",
        name = plan.name,
        recipe = plan.recipe.display(),
        variant = if plan.shared_fs { " --shared-fs" } else { "" },
        publish = if plan.publish { " -> publish" } else { "" },
    );
    if plan.shared_fs {
        let _ = write!(
            s,
            "## Shared file system\n\n\
             Every job runs in the workdir `{wd}` (`should_transfer_files = NO`), which the access point\n\
             and every execute point must see at that path, as they must see `{etd}` and the recipe.\n\
             The fetch tasks write `journal.task-I-of-{n}.jsonl` side by side; shard task I writes\n\
             `parts/shard-I-of-{n}/`; the merge reads every part and writes `shards/` and the manifest.\n\n",
            wd = plan.workdir.display(),
            etd = plan.etd,
        );
    } else {
        let (dir, _) = plan.recipe_parts();
        let _ = write!(
            s,
            "## No shared file system (file transfer, the OSPool case)\n\n\
             Execute points share no file system with the access point. Each job gets `{etd}` and the\n\
             recipe's whole folder `{dir}` (keep the recipe's inputs, such as its targets file, inside\n\
             it; a large local dataset is better fetched from OSDF, below) and works in its own scratch\n\
             folder:\n\n\
             - fetch task I works in `work/` and HTCondor brings it back to `tasks/I/work` (on exit, and\n  \
             when the job is evicted, `when_to_transfer_output = ON_EXIT_OR_EVICT`); a retry gets it\n  \
             again and continues;\n\
             - shard task I gets `tasks/I/work` and sends back its part folder, `tasks/I/shard-I-of-{n}`;\n\
             - the merge gets all {n} parts and runs `etd shard --merge PART...`; the merged workdir\n  \
             (`shards/`, `manifest.json`, `failures.jsonl`) comes back to `{wd}`;\n\
             - publish runs on the access point (local universe) on `{wd}`.\n\n\
             ### Inputs from OSDF\n\n\
             `transfer_input_files` takes `osdf:///` URLs (the Pelican plugin ships with HTCondor): put\n\
             etd and the recipe's folder in your OSDF area and write, in the submit files,\n\n\
             ```\n\
             transfer_input_files = osdf:///ospool/apXX/data/USER/etd, osdf:///ospool/apXX/data/USER/recipes?recursive, work\n\
             ```\n\n\
             (and the same `etd` name in `arguments`). Inputs used by many jobs are what OSDF is for.\n\n\
             ### Outputs to OSDF\n\n\
             Instead of bringing the merged dataset back to the access point, the merge job can send its\n\
             outputs straight to OSDF: add to `merge.sub`\n\n\
             ```\n\
             output_destination = osdf:///ospool/apXX/data/USER/{name}/\n\
             ```\n\n\
             Then `work/` lands there (use a new folder for each version: OSDF objects are immutable),\n\
             and the publish step, which reads `{wd}`, has nothing to do: remove it from `etd.dag`.\n\n",
            etd = plan.etd,
            dir = dir.display(),
            wd = plan.workdir.display(),
            name = plan.name,
        );
    }
    let _ = write!(
        s,
        "## Requests\n\n\
         Each job asks for `request_cpus = {cpus}`, `request_memory = {mem}` (MiB) and `request_disk =\n\
         {disk}` (KiB). Measure a few tasks (`condor_history -af RequestMemory MemoryUsage DiskUsage`)\n\
         and adjust. On the OSPool aim at tasks of 1 to 4 hours (`--tasks` sets how many); add\n\
         `+JobDurationCategory = \"Long\"` to a submit file whose tasks take more than 10 hours.\n\n",
        cpus = plan.resources.cpus,
        mem = plan.resources.memory_mib,
        disk = plan.resources.disk_mib * 1024,
    );
    super::readme_exit_codes(plan, &mut s);
    s.push_str(
        "In the submit files, `max_retries` with `retry_until = ExitCode =!= 75` runs a task that\n\
         exited 75 again by itself; `RETRY <node> K UNLESS-EXIT 2` in `etd.dag` submits a failed node\n\
         again. A job evicted from its slot (SIGTERM, then SIGKILL) goes back to the queue by itself.\n\n",
    );
    super::readme_secrets(
        plan,
        "The submit files name them in `getenv`: HTCondor copies their values from your environment\n\
         when you run `condor_submit_dag`, so export them first.",
        &mut s,
    );
    s
}
