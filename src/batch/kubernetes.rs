//! Kubernetes: Indexed Jobs for fetch and shard (`completionMode: Indexed`, one pod per index,
//! `JOB_COMPLETION_INDEX` as the task index), then one Job for merge and publish, all on one
//! shared PersistentVolumeClaim. A pod that exits 75 is counted against `backoffLimitPerIndex`
//! and its index runs again; exit 2 fails the Job (`podFailurePolicy`); a pod evicted or preempted
//! (`DisruptionTarget`) runs again without counting.

use std::fmt::Write as _;

use super::{File, Output, Plan};
use crate::error::UserError;

pub fn generate(plan: &Plan) -> Result<Output, UserError> {
    let Some(image) = plan.image.as_deref() else {
        return Err(UserError::usage("--engine kubernetes needs --image: the container image the pods run")
            .with_hint("build an image with etd in its PATH (and /bin/sh, tar), push it, and give its name"));
    };
    let files = vec![
        File::text("volume.yaml", volume(plan)),
        File::text("copy-pod.yaml", copy_pod(plan, image)),
        File::text("fetch-job.yaml", job(plan, image, "fetch")),
        File::text("shard-job.yaml", job(plan, image, "shard")),
        File::text("merge-job.yaml", job(plan, image, "merge")),
        File::script("submit.sh", submit(plan)),
        File::script("etd-task.sh", super::task_script()),
        File::text("README", readme(plan)),
    ];
    Ok(Output { files, dirs: Vec::new() })
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn volume_name(plan: &Plan) -> String {
    plan.job_name("data")
}

fn secret_name(plan: &Plan) -> String {
    plan.job_name("secrets")
}

/// The recipe's path inside the pods: its folder is copied to `<mount>/recipe/`.
fn recipe_in_pod(plan: &Plan) -> String {
    let (_, file) = plan.recipe_parts();
    format!("{}/recipe/{file}", plan.mount.display())
}

fn labels(plan: &Plan, step: &str, indent: &str) -> String {
    format!(
        "{indent}app.kubernetes.io/name: etd\n{indent}etd/recipe: {}\n{indent}etd/step: {step}\n",
        q(&plan.job_name("x")[6..])
    )
}

fn volume(plan: &Plan) -> String {
    format!(
        "# The volume every etd pod of {name} shares: the recipe's folder (recipe/) and the workdir\n\
         # (work/). Written by `etd batch`. ReadWriteMany: pods on different nodes mount it at once;\n\
         # pick a storageClassName that offers it (on NRP: rook-cephfs).\n\
         apiVersion: v1\n\
         kind: PersistentVolumeClaim\n\
         metadata:\n  \
         name: {vol}\n  \
         labels:\n{labels}\
         spec:\n  \
         accessModes: [ReadWriteMany]\n  \
         resources:\n    \
         requests:\n      \
         storage: {size}Mi\n",
        name = plan.name,
        vol = volume_name(plan),
        labels = labels(plan, "data", "    "),
        size = plan.resources.disk_mib,
    )
}

fn copy_pod(plan: &Plan, image: &str) -> String {
    format!(
        "# A short-lived pod that mounts the shared volume so that submit.sh can copy the recipe's\n\
         # folder into it (kubectl cp needs tar in the image). Written by `etd batch`.\n\
         apiVersion: v1\n\
         kind: Pod\n\
         metadata:\n  \
         name: {name}\n  \
         labels:\n{labels}\
         spec:\n  \
         restartPolicy: Never\n  \
         activeDeadlineSeconds: 1800\n  \
         containers:\n    \
         - name: copy\n      \
         image: {image}\n      \
         command: [\"/bin/sh\", \"-c\", \"sleep 1800\"]\n      \
         resources:\n        \
         requests: {{cpu: \"100m\", memory: \"128Mi\"}}\n        \
         limits: {{cpu: \"100m\", memory: \"128Mi\"}}\n      \
         volumeMounts:\n        \
         - {{name: data, mountPath: {mount}}}\n  \
         volumes:\n    \
         - name: data\n      \
         persistentVolumeClaim: {{claimName: {vol}}}\n",
        name = plan.job_name("copy"),
        labels = labels(plan, "copy", "    "),
        image = q(image),
        mount = q(&plan.mount.display().to_string()),
        vol = volume_name(plan),
    )
}

/// The container's command: the task wrapper, inline (`sh -c SCRIPT etd-task STEP ETD ARGS...`),
/// so the image needs nothing but etd and /bin/sh.
fn command(plan: &Plan, step: &str) -> Vec<String> {
    let recipe = recipe_in_pod(plan);
    let wd = format!("{}/work", plan.mount.display());
    let n = plan.tasks.to_string();
    let mut c: Vec<String> = vec!["/bin/sh".into(), "-c".into(), super::task_script(), "etd-task".into()];
    let etd = plan.etd.clone();
    let args: Vec<String> = match step {
        // The task index comes from JOB_COMPLETION_INDEX, which the Job sets in each pod.
        "fetch" => {
            let mut a = vec![step.into(), etd, "fetch".into(), recipe, "--workdir".into(), wd, "--num-tasks".into(), n];
            if plan.exceed_archive_limits {
                a.push("--exceed-archive-limits".into());
            }
            a
        }
        "shard" => vec![step.into(), etd, "shard".into(), recipe, "--workdir".into(), wd, "--num-tasks".into(), n],
        "merge" => vec![step.into(), etd, "shard".into(), recipe, "--workdir".into(), wd, "--merge".into()],
        _ => vec![step.into(), etd, "publish".into(), recipe, "--workdir".into(), wd],
    };
    c.extend(args);
    c
}

/// `command:` as a YAML block sequence at `indent`, the script as a literal block.
fn command_yaml(cmd: &[String], indent: &str) -> String {
    let mut s = format!("{indent}command:\n");
    for (i, part) in cmd.iter().enumerate() {
        if i == 2 {
            let _ = writeln!(s, "{indent}  - |");
            for line in part.lines() {
                if line.is_empty() {
                    s.push('\n');
                } else {
                    let _ = writeln!(s, "{indent}    {line}");
                }
            }
        } else {
            let _ = writeln!(s, "{indent}  - {}", q(part));
        }
    }
    s
}

fn env_yaml(plan: &Plan, step: &str, indent: &str) -> String {
    let env = plan.env_all(step);
    if env.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "{indent}# From the Secret {secret} (see the README); never written here. `optional`: a\n\
         {indent}# variable the recipe does not need may be left out of the Secret.\n\
         {indent}env:\n",
        secret = secret_name(plan)
    );
    for var in env {
        let _ = write!(
            s,
            "{indent}  - name: {var}\n{indent}    valueFrom:\n{indent}      secretKeyRef: {{name: {secret}, key: {var}, optional: true}}\n",
            secret = secret_name(plan)
        );
    }
    s
}

fn job(plan: &Plan, image: &str, step: &str) -> String {
    let n = plan.tasks;
    let indexed = step != "merge";
    let name = plan.job_name(step);
    let what = match step {
        "fetch" => format!("etd fetch as {n} tasks, one pod per index"),
        "shard" => format!("etd shard as {n} tasks: each pod makes its part of the samples"),
        _ if plan.publish => "etd shard --merge, then etd publish".to_string(),
        _ => "etd shard --merge: the parts into the shards and manifest".to_string(),
    };
    let mut s = format!(
        "# {what}. Written by `etd batch`; applied by submit.sh.\n\
         apiVersion: batch/v1\n\
         kind: Job\n\
         metadata:\n  \
         name: {name}\n  \
         labels:\n{labels}\
         spec:\n",
        labels = labels(plan, step, "    "),
    );
    if indexed {
        let _ = write!(
            s,
            "  completionMode: Indexed\n  \
             completions: {n}\n  \
             parallelism: {n}\n  \
             # Each index runs again after a failure, at most {retries} times; one index failing for\n  \
             # good fails the Job.\n  \
             backoffLimitPerIndex: {retries}\n  \
             maxFailedIndexes: 0\n",
            retries = plan.retries,
        );
    } else {
        let _ = writeln!(s, "  completions: 1\n  parallelism: 1\n  backoffLimit: {}", plan.retries);
    }
    let _ = write!(
        s,
        "  # A replacement pod starts only once the old one has stopped: never two for one index.\n  \
         podReplacementPolicy: Failed\n  \
         podFailurePolicy:\n    \
         rules:\n      \
         # Exit 2: usage or recipe error; running again cannot help.\n      \
         - action: FailJob\n        \
         onExitCodes: {{operator: In, values: [2]}}\n      \
         # Exit 75: retry later (archive down or throttling); counted against the retries.\n      \
         - action: Count\n        \
         onExitCodes: {{operator: In, values: [75]}}\n      \
         # Evicted or preempted (SIGTERM first: the task journals and exits): not counted.\n      \
         - action: Ignore\n        \
         onPodConditions: [{{type: DisruptionTarget, status: \"True\"}}]\n  \
         template:\n    \
         metadata:\n      \
         labels:\n{labels}    \
         spec:\n      \
         restartPolicy: Never\n      \
         # Time for a SIGTERM'd task to journal and exit.\n      \
         terminationGracePeriodSeconds: 120\n      \
         containers:\n        \
         - name: etd\n          \
         image: {image}\n",
        labels = labels(plan, step, "        "),
        image = q(image),
    );
    if step == "merge" && plan.publish {
        // Merge first (an init container), then publish the merged workdir (the main container).
        s = s.replace("      containers:\n        - name: etd\n", "      initContainers:\n        - name: merge\n");
        container(plan, step, &mut s);
        let _ = write!(s, "      containers:\n        - name: etd\n          image: {}\n", q(image));
        container(plan, "publish", &mut s);
    } else {
        container(plan, step, &mut s);
    }
    let _ = write!(
        s,
        "      volumes:\n        \
         - name: data\n          \
         persistentVolumeClaim: {{claimName: {vol}}}\n",
        vol = volume_name(plan),
    );
    s
}

/// A container's command, environment, resources and volume mount (after its name and image).
fn container(plan: &Plan, step: &str, s: &mut String) {
    let r = plan.resources;
    s.push_str(&command_yaml(&command(plan, step), "          "));
    s.push_str(&env_yaml(plan, step, "          "));
    let _ = write!(
        s,
        "          # Requests equal limits (what NRP asks of large fan-outs).\n          \
         resources:\n            \
         requests: {{cpu: \"{cpus}\", memory: \"{mem}Mi\"}}\n            \
         limits: {{cpu: \"{cpus}\", memory: \"{mem}Mi\"}}\n          \
         volumeMounts:\n            \
         - {{name: data, mountPath: {mount}}}\n",
        cpus = r.cpus,
        mem = r.memory_mib,
        mount = q(&plan.mount.display().to_string()),
    );
}

fn submit(plan: &Plan) -> String {
    let (dir, _) = plan.recipe_parts();
    let mut s = format!(
        "#!/bin/sh\n\
         # Run the etd pipeline for {recipe} on Kubernetes, written by `etd batch`: the shared volume,\n\
         # the recipe's folder copied into it, then fetch ({n} indexes) -> shard ({n} indexes) -> merge{publish},\n\
         # each Job after the previous one completed. Run it again to resume: finished Jobs are kept\n\
         # (delete a failed one first: kubectl delete job NAME).\n\
         set -eu\n\
         cd \"$(dirname \"$0\")\"\n\
         # Wait until Job $1 completes; fail if it fails.\n\
         wait_job() {{\n  \
         while :; do\n    \
         state=$(kubectl get job \"$1\" -o jsonpath='{{range .status.conditions[?(@.status==\"True\")]}}{{.type}} {{end}}')\n    \
         case \" $state \" in\n      \
         *\" Complete \"*) echo \"$1 complete\"; return 0 ;;\n      \
         *\" Failed \"*) echo \"$1 failed: kubectl describe job $1\" >&2; return 1 ;;\n    \
         esac\n    \
         sleep 10\n  \
         done\n\
         }}\n\
         kubectl apply -f volume.yaml\n\
         kubectl apply -f copy-pod.yaml\n\
         kubectl wait --for=condition=Ready pod/{copy} --timeout=600s\n\
         kubectl exec {copy} -- mkdir -p {mount}/recipe {mount}/work\n\
         kubectl cp {dir}/. {copy}:{mount}/recipe/\n\
         kubectl delete pod {copy} --wait=false\n",
        recipe = plan.recipe.display(),
        n = plan.tasks,
        publish = if plan.publish { " and publish" } else { "" },
        copy = plan.job_name("copy"),
        mount = plan.mount.display(),
        dir = dir.display(),
    );
    for step in ["fetch", "shard", "merge"] {
        let name = plan.job_name(step);
        let _ =
            write!(s, "kubectl get job {name} >/dev/null 2>&1 || kubectl apply -f {step}-job.yaml\nwait_job {name}\n");
    }
    s
}

fn readme(plan: &Plan) -> String {
    let n = plan.tasks;
    let mount = plan.mount.display();
    let mut s = format!(
        "# Running {name} on Kubernetes\n\n\
         Written by `etd batch {recipe} --engine kubernetes --tasks {n}`. The pipeline: an Indexed\n\
         Job for fetch ({n} indexes) -> an Indexed Job for shard ({n} indexes) -> a Job for the merge{publish},\n\
         all mounting one PersistentVolumeClaim, `{vol}`, at `{mount}`: the recipe's folder is copied\n\
         to `{mount}/recipe/` and the workdir is `{mount}/work`.\n\n\
         ## Submit, watch, resume\n\n\
         ```sh\n\
         ./submit.sh                                  # volume, recipe copy, then the three Jobs in turn\n\
         kubectl get jobs -l etd/recipe={label}\n\
         kubectl get pods -l etd/recipe={label}\n\
         kubectl logs job/{fetch}                     # or a pod: {fetch}-0-xxxxx\n\
         ```\n\n\
         Each pod gets its task index from `JOB_COMPLETION_INDEX` (set by the Indexed Job) and runs\n\
         `etd fetch|shard ... --num-tasks {n}`. `submit.sh` waits for each Job before it applies the\n\
         next. If a Job fails, fix the cause, `kubectl delete job NAME` and run `submit.sh` again: the\n\
         tasks continue where they stopped (the journals and parts are on the volume).\n\n\
         The image (`{image}`) must have `etd` in its PATH (or give `--etd`), `/bin/sh`, and `tar` for\n\
         `kubectl cp`. The volume must be ReadWriteMany (set `storageClassName` in `volume.yaml` to\n\
         one that offers it; its size is {size} MiB: edit it to fit the dataset).\n\n\
         ### Without a shared volume\n\n\
         A cluster without a ReadWriteMany storage class can still run the steps, with object storage\n\
         in between: give each fetch and shard pod its own `emptyDir` workdir, and at the end of each\n\
         pod copy what it made to a bucket under its index (fetch: the whole workdir; shard: its\n\
         `parts/shard-I-of-{n}/`), then have the next pod copy its index's data in first (shard task I\n\
         needs fetch task I's workdir) and the merge copy every part and run\n\
         `etd shard RECIPE --workdir W --merge PART...`. etd itself needs nothing more: the parts are\n\
         self-contained folders.\n\n\
         ## Requests\n\n\
         Each pod asks for {cpus} CPU(s) and {mem} MiB, with limits equal to requests.\n\n",
        name = plan.name,
        recipe = plan.recipe.display(),
        publish = if plan.publish { " and publish" } else { "" },
        vol = volume_name(plan),
        label = &plan.job_name("x")[6..],
        fetch = plan.job_name("fetch"),
        image = plan.image.as_deref().unwrap_or_default(),
        size = plan.resources.disk_mib,
        cpus = plan.resources.cpus,
        mem = plan.resources.memory_mib,
    );
    super::readme_exit_codes(plan, &mut s);
    s.push_str(
        "In the Jobs: `backoffLimitPerIndex` runs an index again after a failure (75 included) and\n\
         `podFailurePolicy` fails the whole Job on exit 2, counts exit 75 against the retries, and\n\
         ignores evictions and preemptions (`DisruptionTarget`: the pod got SIGTERM and\n\
         `terminationGracePeriodSeconds` to journal and exit, and runs again without counting).\n\
         `podReplacementPolicy: Failed` keeps two pods from working on one index at once.\n\n",
    );
    super::readme_secrets(
        plan,
        &format!(
            "The pods read them from the Secret `{secret}`; create it once from your environment:\n\n\
             ```sh\n\
             kubectl create secret generic {secret} --from-literal=ATLAS_TOKEN=\"$ATLAS_TOKEN\"\n\
             ```\n",
            secret = secret_name(plan)
        ),
        &mut s,
    );
    s
}
