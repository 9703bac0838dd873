//! Slurm: array jobs for fetch and shard, one job for the merge and one for publish, chained with
//! `--dependency=afterok` by `submit.sh`. A task that exits 75 requeues itself
//! (`scontrol requeue`; Slurm starts it again after its requeue delay) at most `retries` times.
//! Slurm sites have a shared file system: every task uses the one workdir.

use std::fmt::Write as _;

use super::{File, Output, Plan};

pub fn generate(plan: &Plan) -> Output {
    let mut files = vec![File::script("submit.sh", submit(plan))];
    for step in plan.steps() {
        files.push(File::script(&format!("{step}.sbatch"), job(plan, step)));
    }
    files.push(File::script("etd-task.sh", super::task_script()));
    files.push(File::text("README", readme(plan)));
    Output { files, dirs: vec!["logs".to_string()] }
}

fn submit(plan: &Plan) -> String {
    let mut s = format!(
        "#!/bin/sh\n\
         # Submit the etd pipeline for {recipe} to Slurm, written by `etd batch`:\n\
         # fetch ({n} array tasks) -> shard ({n} array tasks) -> merge{publish}, each step after the\n\
         # previous one succeeded (afterok). Prints each step's job id. Run it again to resume.\n\
         set -eu\n\
         cd \"$(dirname \"$0\")\"\n\
         # `sbatch --parsable` prints `id` or `id;cluster`.\n\
         submit() {{ sbatch --parsable \"$@\" | cut -d';' -f1; }}\n",
        recipe = plan.recipe.display(),
        n = plan.tasks,
        publish = if plan.publish { " -> publish" } else { "" },
    );
    let mut prev: Option<&str> = None;
    for step in plan.steps() {
        match prev {
            None => {
                let _ = writeln!(s, "{step}=$(submit {step}.sbatch)");
            }
            Some(p) => {
                let _ =
                    writeln!(s, "{step}=$(submit --dependency=afterok:${p} --kill-on-invalid-dep=yes {step}.sbatch)");
            }
        }
        let _ = writeln!(s, "echo \"{step} ${step}\"");
        prev = Some(step);
    }
    s
}

fn job(plan: &Plan, step: &str) -> String {
    let n = plan.tasks;
    let out = plan.out.display();
    let etd = &plan.etd;
    let recipe = plan.recipe.display();
    let wd = plan.workdir.display();
    let split = format!("--task-index \"$SLURM_ARRAY_TASK_ID\" --num-tasks {n}");
    let (args, array) = match step {
        "fetch" => (format!("fetch {recipe} --workdir {wd} {split}{}", plan.fetch_extra()), true),
        "shard" => (format!("shard {recipe} --workdir {wd} {split}"), true),
        "merge" => (format!("shard {recipe} --workdir {wd} --merge"), false),
        _ => (format!("publish {recipe} --workdir {wd}"), false),
    };
    let name = plan.job_name(step);
    let log = if array { format!("{out}/logs/{step}-%a.out") } else { format!("{out}/logs/{step}.out") };
    let mut s = format!("#!/bin/sh\n# etd {step} for {recipe}, written by `etd batch`; submitted by submit.sh.\n");
    let _ = writeln!(s, "#SBATCH --job-name={name}");
    if array {
        let _ = writeln!(s, "#SBATCH --array=0-{}", n - 1);
    }
    let _ = write!(
        s,
        "#SBATCH --cpus-per-task={cpus}\n\
         #SBATCH --mem={mem}M\n\
         #SBATCH --output={log}\n\
         #SBATCH --open-mode=append\n\
         #SBATCH --chdir={wd}\n\
         # The task may run again (exit 75 below, or a preempted node): keep it requeueable.\n\
         #SBATCH --requeue\n\
         # sbatch passes the submitter's environment (tokens such as ATLAS_TOKEN) to the task.\n\
         #SBATCH --export=ALL\n\
         # Slurm sends SIGTERM (preemption, time limit, scancel) to every process of the job, etd\n\
         # included: the wrapper must not forward a second one (etd would end at once).\n\
         export ETD_TASK_FORWARD=0\n\
         {out}/etd-task.sh {step} {etd} {args}\n\
         rc=$?\n\
         # Exit 75 (retry later): requeue this task; Slurm starts it again after its requeue delay and\n\
         # the steps after it wait. After {retries} requeues the task fails with 75.\n\
         if [ \"$rc\" = 75 ] && [ \"${{SLURM_RESTART_COUNT:-0}}\" -lt {retries} ]; then\n  \
         echo \"etd-task: {step}: exit 75 (retry later): requeueing job $SLURM_JOB_ID (retry $((${{SLURM_RESTART_COUNT:-0}} + 1)) of {retries})\" >&2\n  \
         scontrol requeue \"$SLURM_JOB_ID\" && sleep 60\n\
         fi\n\
         exit \"$rc\"\n",
        cpus = plan.resources.cpus,
        mem = plan.resources.memory_mib,
        retries = plan.retries,
    );
    s
}

fn readme(plan: &Plan) -> String {
    let out = plan.out.display();
    let n = plan.tasks;
    let mut s = format!(
        "# Running {name} on Slurm\n\n\
         Written by `etd batch {recipe} --engine slurm --tasks {n}`. The pipeline: fetch (array of\n\
         {n} tasks) -> shard (array of {n} tasks) -> merge{publish}, each step submitted with\n\
         `--dependency=afterok` on the one before.\n\n\
         ## Submit, watch, resume\n\n\
         ```sh\n\
         {out}/submit.sh                     # prints the job id of each step\n\
         squeue --me                         # pending and running tasks\n\
         sacct -j JOBID                      # exit codes, where accounting is on\n\
         ```\n\n\
         Logs are in `logs/<step>-<task>.out`. When a step fails, the steps after it are cancelled\n\
         (`--kill-on-invalid-dep=yes`). Fix the cause and run `submit.sh` again: fetched units are in\n\
         the journals, finished shard parts are made again identically, so it resumes.\n\n\
         ## Shared file system\n\n\
         Every task runs in the workdir `{wd}`, which every node must see at that path, as it must\n\
         see `{etd}` and the recipe. The fetch tasks write `journal.task-I-of-{n}.jsonl` side by side;\n\
         shard task I writes `parts/shard-I-of-{n}/`; the merge reads every part and writes `shards/`\n\
         and the manifest. Each task asks for {cpus} CPU(s) and {mem} MiB (`--cpus-per-task`, `--mem`);\n\
         add `#SBATCH --partition=...`, `--time=...` or `--account=...` as your site wants.\n\n",
        name = plan.name,
        recipe = plan.recipe.display(),
        publish = if plan.publish { " -> publish" } else { "" },
        wd = plan.workdir.display(),
        etd = plan.etd,
        cpus = plan.resources.cpus,
        mem = plan.resources.memory_mib,
    );
    super::readme_exit_codes(plan, &mut s);
    s.push_str(
        "A task that exits 75 calls `scontrol requeue` on itself: Slurm starts it again after its\n\
         requeue delay (about two minutes with the default `AuthInfo` cred_expire), and `afterok`\n\
         holds the next step until it succeeds. A task preempted or stopped at its time limit gets\n\
         SIGTERM first (then SIGKILL after `KillWait`), journals what it did and exits 143.\n\n",
    );
    super::readme_secrets(
        plan,
        "sbatch passes your environment to the tasks (`--export=ALL`): export them before `submit.sh`.",
        &mut s,
    );
    s
}
