//! `etd batch RECIPE --engine E --tasks N --out DIR`: write what a user submits to run the whole
//! pipeline on a batch engine (the text comes from `batch`; this loads the recipe, picks the
//! paths, and writes the files).

use std::path::{Path, PathBuf};

use anyhow::Context;
use fs_err as fs;

use crate::batch::{Engine, Plan, Resources};
use crate::cli::{BatchArgs, EngineArg};
use crate::error::{Exit, UserError};

use super::Ctx;

pub fn run(ctx: &Ctx, args: &BatchArgs) -> anyhow::Result<Exit> {
    // Loading checks the recipe now rather than in N tasks on a cluster.
    let recipe = super::load_recipe(&args.recipe.recipe, args.limits.exceed_archive_limits)?;
    let engine = match args.engine {
        EngineArg::Htcondor => Engine::Htcondor,
        EngineArg::Slurm => Engine::Slurm,
        EngineArg::Kubernetes => Engine::Kubernetes,
    };
    let shared_fs = match engine {
        Engine::Htcondor => args.shared_fs,
        Engine::Slurm | Engine::Kubernetes if args.no_shared_fs => {
            let hint = if engine == Engine::Slurm {
                "Slurm sites share a file system between nodes: leave out --no-shared-fs"
            } else {
                "the pods share a ReadWriteMany volume; DIR/README describes per-task object storage instead"
            };
            return Err(UserError::usage(format!("--no-shared-fs is for HTCondor, not {}", engine.as_str()))
                .with_hint(hint)
                .into());
        }
        Engine::Slurm | Engine::Kubernetes => true,
    };
    if engine != Engine::Kubernetes && args.image.is_some() {
        return Err(UserError::usage(format!("--image is for Kubernetes, not {}", engine.as_str()))
            .with_hint("leave out --image")
            .into());
    }
    if engine == Engine::Htcondor && !shared_fs {
        // With file transfer a job gets the recipe's folder and nothing else.
        let source = recipe.source.source();
        if source.samples_span_units() {
            return Err(UserError::usage(format!(
                "the {} source's samples gather data from every fetch task, and with file transfer each shard task \
                 has only its own",
                source.kind()
            ))
            .with_hint("add --shared-fs (a shared workdir for all tasks)")
            .into());
        }
        let targets = recipe.targets.as_ref().and_then(|t| t.file.clone()).map(|f| ("targets file", f));
        let inputs = recipe.source.source().local_inputs().into_iter().map(|p| ("input", p));
        for (what, path) in targets.into_iter().chain(inputs) {
            let path = lexical(&absolute(&path));
            if !path.starts_with(lexical(&recipe.dir)) {
                return Err(UserError::usage(format!(
                    "the {what} {} is outside the recipe's folder {}, which is all a job gets with file transfer",
                    path.display(),
                    recipe.dir.display()
                ))
                .with_hint(format!("move the {what} into the recipe's folder, or add --shared-fs"))
                .into());
            }
        }
    }
    let out = absolute(&args.out);
    let workdir = match engine {
        Engine::Htcondor if !shared_fs => {
            if ctx.global.workdir.is_some() {
                return Err(UserError::usage(
                    "--workdir names a workdir the tasks share; with file transfer each task has its own",
                )
                .with_hint("leave out --workdir (the merged dataset lands in DIR/work), or add --shared-fs")
                .into());
            }
            out.join("work")
        }
        // The workdir in the pods is on the volume; this one is only named in the README.
        _ => ctx.workdir(&recipe).root,
    };
    let etd = match (&args.etd, engine) {
        (Some(p), Engine::Kubernetes) => p.display().to_string(),
        (Some(p), _) => absolute(p).display().to_string(),
        (None, Engine::Kubernetes) => "etd".to_string(),
        (None, _) => std::env::current_exe()
            .context("cannot find the path of this etd; give the one the jobs run with --etd")?
            .display()
            .to_string(),
    };
    let plan = Plan {
        engine,
        tasks: args.tasks,
        shared_fs,
        name: recipe.name.clone(),
        recipe: recipe.path.clone(),
        etd,
        workdir,
        out: out.clone(),
        pass_env: args.pass_env.clone(),
        publish: recipe.publish.is_some(),
        exceed_archive_limits: args.limits.exceed_archive_limits,
        retries: args.retries,
        resources: Resources {
            cpus: args.cpus,
            memory_mib: args.memory.div_ceil(1 << 20),
            disk_mib: args.disk.div_ceil(1 << 20),
        },
        image: args.image.clone(),
        mount: args.mount_path.clone(),
    };
    let output = crate::batch::generate(&plan)?;
    fs::create_dir_all(&out)?;
    for dir in &output.dirs {
        fs::create_dir_all(out.join(dir))?;
    }
    if shared_fs && engine != Engine::Kubernetes {
        // Jobs start in the workdir (`initialdir`, `--chdir`): it must exist before they do.
        fs::create_dir_all(&plan.workdir)?;
    }
    let mut written = Vec::new();
    for file in &output.files {
        let path = out.join(&file.rel);
        crate::fsx::write_atomic(&path, file.text.as_bytes())?;
        if file.executable {
            set_executable(&path)?;
        }
        written.push(file.rel.as_str());
    }
    let how = match engine {
        Engine::Htcondor => format!("cd {} && condor_submit_dag etd.dag", out.display()),
        Engine::Slurm | Engine::Kubernetes => format!("{}/submit.sh", out.display()),
    };
    super::print_stdout(&format!(
        "wrote {}: {}\nsubmit with: {how}\n(see {}/README)\n",
        out.display(),
        written.join(" "),
        out.display()
    ))?;
    Ok(Exit::Success)
}

/// `p` with `.` and `..` components resolved by name (no file system access).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}
