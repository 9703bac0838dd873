//! `etd fetch RECIPE`: pull raw data into the workdir (resumable).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::cli::FetchArgs;
use crate::error::{Exit, UserError};
use crate::failure::Stage;
use crate::human::human_duration;
use crate::net::client::NetClient;
use crate::recipe::Recipe;
use crate::report::plural;
use crate::sources::engine::{self, Outcome, Tally};
use crate::sources::ps1::fetch::Ps1Fetcher;
use crate::sources::ps1::urls::filenames_url;
use crate::sources::ps1::{self, Ps1Config};
use crate::sources::{atlas_fp, local, SourceConfig, TaskSplit};
use crate::store::journal::{read_failures, replace_failures, JournalScan, JournalSet};
use crate::store::raw::RawStore;
use crate::store::{FetchJournal, Workdir};

use super::Ctx;

pub fn run(ctx: &Ctx, args: &FetchArgs) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(&args.recipe.recipe, args.limits.exceed_archive_limits)?;
    fetch(ctx, &recipe, args)
}

/// Fetch a loaded recipe (shared with `run`).
pub fn fetch(ctx: &Ctx, recipe: &Recipe, args: &FetchArgs) -> anyhow::Result<Exit> {
    let env_index = std::env::var(crate::env_vars::JOB_COMPLETION_INDEX).ok();
    let split = TaskSplit::new(args.split.task_index, args.split.num_tasks, env_index.as_deref())?;
    match &recipe.source {
        SourceConfig::Local(cfg) => fetch_local(ctx, recipe, cfg, args, split),
        SourceConfig::Ps1(cfg) => fetch_ps1(ctx, recipe, cfg, args, split),
        SourceConfig::AtlasFp(cfg) => fetch_atlas(ctx, recipe, cfg, args, split),
        SourceConfig::AtlasVar(cfg) => fetch_atlas_var(ctx, recipe, cfg, args, split),
    }
}

fn fetch_local(
    ctx: &Ctx,
    recipe: &Recipe,
    cfg: &local::LocalConfig,
    args: &FetchArgs,
    split: TaskSplit,
) -> anyhow::Result<Exit> {
    whole_only(split, "the local source makes no requests, so there is no work to split")?;
    if args.retry_failed {
        tracing::info!("--retry-failed: the local source records no fetch failures");
    }
    if args.dry_run {
        let units = local::discover(cfg)?;
        let mut out = String::new();
        for u in &units {
            let files: Vec<&str> = u.files.iter().map(|(p, _)| p.as_str()).collect();
            out.push_str(&format!("{}\t{}\n", u.id, files.join(" ")));
        }
        super::print_stdout(&out)?;
        tracing::info!(
            "dry run: {} from {}; 0 requests; nothing recorded",
            plural(units.len(), "unit"),
            cfg.dir.display()
        );
        return Ok(Exit::Success);
    }
    let workdir = ctx.workdir(recipe);
    let _lock = workdir.lock()?;
    let mut journal = FetchJournal::open(&workdir.journal())?;
    let summary = local::fetch(cfg, &mut journal, &ctx.reporter)?;
    tracing::info!(
        "fetch: {} recorded, {} unchanged, {} removed; journal {}",
        plural(summary.recorded, "unit"),
        summary.unchanged,
        summary.removed,
        workdir.journal().display()
    );
    if let Some(signal) = summary.interrupted {
        tracing::warn!("stopped by {}: run the same command again to record the rest", signal.name());
        return Ok(signal.exit());
    }
    let failed = read_failures(&workdir.failures())?.iter().filter(|f| f.stage == Stage::Fetch).count();
    if failed > 0 {
        tracing::warn!("{} failed permanently; see {}", plural(failed, "item"), workdir.failures().display());
        return Ok(Exit::SomeFailed);
    }
    Ok(Exit::Success)
}

/// Refuse a batch work split for a source that has nothing to split.
fn whole_only(split: TaskSplit, why: &str) -> anyhow::Result<()> {
    if split.is_whole() {
        return Ok(());
    }
    Err(UserError::usage(why).with_hint("run `etd fetch` once, without --task-index/--num-tasks").into())
}

/// What the journals say about the targets this task owns.
struct Pending {
    /// Indexes into the targets, in target order.
    todo: Vec<usize>,
    owned: usize,
    done: usize,
    /// Failed earlier and not retried.
    failed: usize,
}

fn pending(targets: &[crate::target::Target], split: TaskSplit, scan: &JournalScan, retry: bool) -> Pending {
    let mut p = Pending { todo: Vec::new(), owned: 0, done: 0, failed: 0 };
    for (i, t) in targets.iter().enumerate() {
        if !split.owns(&t.id) {
            continue;
        }
        p.owned += 1;
        if scan.done.contains_key(&t.id) {
            p.done += 1;
        } else if scan.failed.contains_key(&t.id) && !retry {
            p.failed += 1;
        } else {
            p.todo.push(i);
        }
    }
    p
}

/// Remove what killed runs left half-written in the raw folders of the targets about to be fetched.
fn clean_partials(store: &RawStore, keys: &[String], todo: &[usize]) -> anyhow::Result<()> {
    let mut cleaned = 0;
    for &i in todo {
        cleaned += store.clean_partial(&keys[i])?;
    }
    if cleaned > 0 {
        tracing::info!("removed {cleaned} partial files left by an interrupted run");
    }
    Ok(())
}

/// Targets recorded as done whose raw files are gone or changed size (deleted by hand, a disk
/// restored from backup) count as not done, so this fetch gets them again. Returns how many.
fn forget_missing_raw(
    workdir: &Workdir,
    source: &str,
    scan: &mut JournalScan,
    split: TaskSplit,
) -> anyhow::Result<usize> {
    let journals = JournalSet::open(workdir.journals()?)?;
    let root = workdir.raw(source);
    let mut missing = Vec::new();
    for (unit, pos) in &scan.done {
        if !split.owns(unit) {
            continue;
        }
        let whole = journals
            .inputs(*pos)?
            .iter()
            .all(|i| fs_err::metadata(root.join(&i.path)).is_ok_and(|m| m.len() == i.size));
        if !whole {
            missing.push(unit.clone());
        }
    }
    for unit in &missing {
        scan.done.remove(unit);
    }
    if !missing.is_empty() {
        tracing::warn!(
            "{} recorded as done {} raw files missing or changed; fetching {} again",
            plural(missing.len(), "target"),
            if missing.len() == 1 { "has" } else { "have" },
            if missing.len() == 1 { "it" } else { "them" }
        );
    }
    Ok(missing.len())
}

fn scan_workdir(workdir: &Workdir, params: &str) -> anyhow::Result<JournalScan> {
    JournalSet::open(workdir.journals()?)?.scan_for(Some(params))
}

fn fetch_ps1(ctx: &Ctx, recipe: &Recipe, cfg: &Ps1Config, args: &FetchArgs, split: TaskSplit) -> anyhow::Result<Exit> {
    let targets = recipe.targets.as_ref().map(|t| t.rows.as_slice()).unwrap_or_default();
    let keys = ps1::target_keys(cfg, &recipe.image, targets)?;
    let workdir = ctx.workdir(recipe);
    let task = if split.is_whole() { String::new() } else { format!(" (task {} of {})", split.index, split.count) };
    let params = cfg.params();
    let per_target = 1 + if cfg.format == ps1::CutoutFormat::Fits { cfg.filters.len() } else { 1 };
    if args.dry_run {
        // Read-only: no lock, nothing created.
        let scan = if workdir.root.is_dir() { scan_workdir(&workdir, &params)? } else { JournalScan::default() };
        let p = pending(targets, split, &scan, args.retry_failed);
        let mut out = String::new();
        for &i in &p.todo {
            let t = &targets[i];
            let url = filenames_url(cfg, t.ra, t.dec);
            out.push_str(&format!("{}\tGET {url}\tthen {} fitscut.cgi\n", t.id, per_target - 1));
        }
        super::print_stdout(&out)?;
        let requests = (p.todo.len() * per_target) as u64;
        let mut share = recipe.politeness.clone();
        share.rate = crate::units::rate(share.rate.per_second() / f64::from(split.count), 1);
        tracing::info!(
            "dry run{task}: {} to fetch ({} owned, {} done, {} failed earlier); {}; \
             at least {} at {} per task; 0 requests made",
            plural(p.todo.len(), "target"),
            p.owned,
            p.done,
            p.failed,
            plural(requests, "request"),
            human_duration(share.min_duration(requests)),
            share.rate
        );
        return Ok(Exit::Success);
    }
    let _lock = if split.is_whole() { workdir.lock()? } else { workdir.lock_task(split.index, split.count)? };
    let journal_path =
        if split.is_whole() { workdir.journal() } else { workdir.task_journal(split.index, split.count) };
    let mut scan = scan_workdir(&workdir, &params)?;
    forget_missing_raw(&workdir, recipe.source.kind(), &mut scan, split)?;
    let p = pending(targets, split, &scan, args.retry_failed);
    for note in super::stale_notes(&scan, &params, "fetching them again") {
        tracing::info!("{note}");
    }
    drop(scan);
    tracing::info!(
        "fetch{task}: {} to fetch from {} ({} owned, {} already done, {} failed earlier{})",
        plural(p.todo.len(), "target"),
        cfg.base_url,
        p.owned,
        p.done,
        p.failed,
        if p.failed > 0 && !args.retry_failed { "; --retry-failed tries them again" } else { "" }
    );
    let mut journal = FetchJournal::open_append(&journal_path)?;
    let store = RawStore::new(&workdir, recipe.source.kind());
    clean_partials(&store, &keys, &p.todo)?;
    let client = Arc::new(NetClient::new(recipe.politeness.clone(), split.count)?);
    let limiter = client.host(&cfg.base_url);
    let fetcher = Arc::new(Ps1Fetcher { client: Arc::clone(&client), cfg: cfg.clone(), store });
    // Units run their requests one after another; twice the in-flight limit keeps it busy.
    let parallel = (limiter.concurrency() as usize * 2).max(2);
    let jobs = p.todo.iter().map(|&i| {
        let (f, key, target) = (Arc::clone(&fetcher), keys[i].clone(), targets[i].clone());
        async move {
            let unit = target.id.clone();
            Outcome { unit, result: f.fetch(key, target).await }
        }
    });
    let progress = ctx.reporter.start("fetch", p.todo.len() as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let tally = runtime.block_on(engine::drive(jobs, parallel, &params, &mut journal, &progress, &client))?;
    drop(progress);
    // The failure ledger as all journals have it now (other tasks may still add to theirs).
    let scan = scan_workdir(&workdir, &params)?;
    replace_failures(&workdir.failures(), Stage::Fetch, scan.failure_entries())?;
    let failed_owned = targets.iter().filter(|t| split.owns(&t.id) && scan.failed.contains_key(&t.id)).count();
    summarize(&task, &tally, &client, failed_owned, &workdir);
    Ok(exit_code(&tally, failed_owned, false))
}

/// The exit code of a networked fetch: a signal's first, then 75 (try again later), then 3.
fn exit_code(tally: &Tally, failed_owned: usize, tempfail: bool) -> Exit {
    if let Some(signal) = tally.interrupted {
        signal.exit()
    } else if tempfail || tally.transient > 0 || tally.stopped.is_some() {
        Exit::TempFail
    } else if failed_owned > 0 {
        Exit::SomeFailed
    } else {
        Exit::Success
    }
}

/// The final summary: done, failed by reason, requests, retries, time waited on throttles.
fn summarize(task: &str, tally: &Tally, client: &NetClient, failed_owned: usize, workdir: &Workdir) {
    let stats = &client.stats;
    let failed: u64 = tally.failed.values().sum();
    let by_kind: BTreeMap<&str, u64> = tally.failed.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let kinds: Vec<String> = by_kind.iter().map(|(k, v)| format!("{v} {k}")).collect();
    tracing::info!(
        "fetch{task}: {} done, {failed} failed{}, {} left for a later run; {}, {}, \
         {} waited on throttles, {:.1} MB in {}",
        tally.done,
        if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) },
        tally.transient + tally.not_attempted + tally.abandoned,
        plural(stats.requests.load(Ordering::Relaxed), "request"),
        plural(stats.retries.load(Ordering::Relaxed), "retry"),
        human_duration(client.throttled()),
        stats.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        human_duration(tally.elapsed),
    );
    if let Some(signal) = tally.interrupted {
        tracing::warn!(
            "stopped by {}: {} targets not started, {} under way left unfinished; the journal keeps everything \
             done. Run the same command again to continue",
            signal.name(),
            tally.not_attempted,
            tally.abandoned
        );
    } else if let Some(why) = &tally.stopped {
        tracing::error!(
            "stopped early: the archive looks unavailable ({why}); {} not attempted. \
             Run the same command later to continue",
            plural(tally.not_attempted, "target")
        );
    } else if tally.transient > 0 {
        tracing::warn!(
            "{} hit transient failures; run the same command later to continue",
            plural(tally.transient, "target")
        );
    }
    if failed_owned > 0 {
        tracing::warn!("{} failed permanently; see {}", plural(failed_owned, "target"), workdir.failures().display());
    }
}

fn fetch_atlas(
    ctx: &Ctx,
    recipe: &Recipe,
    cfg: &atlas_fp::AtlasFpConfig,
    args: &FetchArgs,
    split: TaskSplit,
) -> anyhow::Result<Exit> {
    let targets = recipe.targets.as_ref().map(|t| t.rows.as_slice()).unwrap_or_default();
    let keys = atlas_fp::target_keys(targets, recipe.lightcurve.outputs)?;
    let workdir = ctx.workdir(recipe);
    let task = if split.is_whole() { String::new() } else { format!(" (task {} of {})", split.index, split.count) };
    let params = cfg.params();
    if cfg.mjd_min.is_none() {
        tracing::warn!(
            "source.atlas-fp.mjd_min is not set: the server then starts 30 days before each submission, so the \
             light curves depend on when they were fetched"
        );
    }
    if args.dry_run {
        let mut scan = if workdir.root.is_dir() { scan_workdir(&workdir, &params)? } else { JournalScan::default() };
        leave_foreign_tasks(&mut scan, cfg);
        let p = pending(targets, split, &scan, args.retry_failed);
        let resume: Vec<usize> =
            p.todo.iter().copied().filter(|&i| scan.submitted.contains_key(&targets[i].id)).collect();
        let submit: Vec<usize> =
            p.todo.iter().copied().filter(|&i| !scan.submitted.contains_key(&targets[i].id)).collect();
        let queue = atlas_fp::fetch::endpoint(&cfg.base_url, "queue/");
        let mut out = String::new();
        for (task, unit) in &scan.undeleted {
            out.push_str(&format!("{unit}\tDELETE {task}\n"));
        }
        for &i in &resume {
            let t = &targets[i];
            out.push_str(&format!("{}\tcontinue {}\n", t.id, scan.submitted[&t.id]));
        }
        for (n, chunk) in submit.chunks(cfg.batch as usize).enumerate() {
            for &i in chunk {
                let t = &targets[i];
                out.push_str(&format!("{}\tPOST {queue} (batch {}: ra {} dec {})\n", t.id, n + 1, t.ra, t.dec));
            }
        }
        super::print_stdout(&out)?;
        let writes = submit.len().div_ceil(cfg.batch as usize) + submit.len() + resume.len() + scan.undeleted.len();
        let mut share = recipe.politeness.clone();
        share.rate = crate::units::rate(share.rate.per_second() / f64::from(split.count), 1);
        tracing::info!(
            "dry run{task}: {} to submit, {} to continue, {} to delete ({} owned, {} done, {} failed \
             earlier); {} (POST + DELETE); at least {} at {} per task; 0 requests made",
            plural(submit.len(), "target"),
            plural(resume.len(), "task"),
            scan.undeleted.len(),
            p.owned,
            p.done,
            p.failed,
            plural(writes, "write"),
            human_duration(share.min_duration(writes as u64)),
            share.rate
        );
        return Ok(Exit::Success);
    }
    // The token is needed before anything is written.
    let early_token = atlas_fp::auth::read_token(&cfg.credentials)?;
    let _lock = if split.is_whole() { workdir.lock()? } else { workdir.lock_task(split.index, split.count)? };
    let journal_path =
        if split.is_whole() { workdir.journal() } else { workdir.task_journal(split.index, split.count) };
    let mut scan = scan_workdir(&workdir, &params)?;
    forget_missing_raw(&workdir, recipe.source.kind(), &mut scan, split)?;
    let p = pending(targets, split, &scan, args.retry_failed);
    for note in super::stale_notes(&scan, &params, "fetching them again") {
        tracing::info!("{note}");
    }
    let elsewhere = leave_foreign_tasks(&mut scan, cfg);
    if elsewhere > 0 {
        tracing::info!(
            "{elsewhere} tasks recorded on the server were submitted to another endpoint than {}; they are neither \
             followed nor deleted from here",
            cfg.base_url
        );
    }
    let unit = |i: usize| atlas_fp::fetch::Unit { index: i, target: targets[i].clone(), key: keys[i].clone() };
    let mut plan = atlas_fp::fetch::Plan { undeleted: BTreeMap::new(), resume: Vec::new(), submit: Vec::new() };
    for &i in &p.todo {
        match scan.submitted.get(&targets[i].id) {
            Some(task) => plan.resume.push((unit(i), task.clone())),
            None => plan.submit.push(unit(i)),
        }
    }
    // Leftover tasks of this task's own units (or of every unit when not split).
    plan.undeleted =
        scan.undeleted.iter().filter(|(_, u)| split.owns(u)).map(|(t, u)| (t.clone(), u.clone())).collect();
    drop(scan);
    tracing::info!(
        "fetch{task}: {} to submit and {} to continue at {} ({} owned, {} already done, {} failed \
         earlier{}); {} left on the server to delete first",
        plural(plan.submit.len(), "target"),
        plural(plan.resume.len(), "task"),
        cfg.base_url,
        p.owned,
        p.done,
        p.failed,
        if p.failed > 0 && !args.retry_failed { "; --retry-failed tries them again" } else { "" },
        plural(plan.undeleted.len(), "task")
    );
    let mut journal = FetchJournal::open_append(&journal_path)?;
    let store = RawStore::new(&workdir, recipe.source.kind());
    clean_partials(&store, &keys, &p.todo)?;
    let client = Arc::new(NetClient::new(recipe.politeness.clone(), split.count)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let token = match early_token {
        Some(t) => t,
        None => runtime.block_on(atlas_fp::auth::token(&client, cfg))?,
    };
    let fetcher = Arc::new(atlas_fp::fetch::AtlasFetcher {
        client: Arc::clone(&client),
        cfg: cfg.clone(),
        token,
        store,
        comment: format!("etd:{}", recipe.name),
    });
    let progress = ctx.reporter.start("fetch", (plan.submit.len() + plan.resume.len()) as u64);
    let tally = runtime.block_on(atlas_fp::fetch::run(fetcher, plan, &params, &mut journal, &progress))?;
    drop(progress);
    let scan = scan_workdir(&workdir, &params)?;
    replace_failures(&workdir.failures(), Stage::Fetch, scan.failure_entries())?;
    let failed_owned = targets.iter().filter(|t| split.owns(&t.id) && scan.failed.contains_key(&t.id)).count();
    summarize(&task, &tally, &client, failed_owned, &workdir);
    if tally.undeleted > 0 {
        tracing::warn!(
            "{} could not be deleted on the server; run the same command again to delete {}",
            plural(tally.undeleted, "task"),
            if tally.undeleted == 1 { "it" } else { "them" }
        );
    }
    Ok(exit_code(&tally, failed_owned, tally.undeleted > 0))
}

/// Forget the tasks to delete that live at another endpoint than the recipe's (never send this
/// endpoint's token there); returns how many. Tasks to continue are at this endpoint already:
/// their params, which name the endpoint, matched.
fn leave_foreign_tasks(scan: &mut JournalScan, cfg: &atlas_fp::AtlasFpConfig) -> usize {
    let before = scan.undeleted.len();
    scan.undeleted.retain(|task, _| cfg.owns_task(task));
    before - scan.undeleted.len()
}

fn fetch_atlas_var(
    ctx: &Ctx,
    recipe: &Recipe,
    cfg: &crate::sources::atlas_var::AtlasVarConfig,
    args: &FetchArgs,
    split: TaskSplit,
) -> anyhow::Result<Exit> {
    whole_only(split, "ATLAS-VAR is a handful of large files; it is fetched by one task")?;
    if args.dry_run {
        let out = format!(
            "catalog\tGET {}\npartitions\tlisted from {}, then one download per partition that holds a selected object\n",
            cfg.catalog_url, cfg.lightcurves_url
        );
        super::print_stdout(&out)?;
        tracing::info!("dry run: which partitions are needed is known only after the catalog is read; 0 requests made");
        return Ok(Exit::Success);
    }
    let workdir = ctx.workdir(recipe);
    let _lock = workdir.lock()?;
    let mut journal = FetchJournal::open_append(&workdir.journal())?;
    let client = Arc::new(NetClient::new(recipe.politeness.clone(), 1)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let raw = workdir.raw(recipe.source.kind());
    let (tally, _) = runtime.block_on(crate::sources::atlas_var::fetch::run(
        Arc::clone(&client),
        cfg,
        raw,
        &cfg.params(),
        &mut journal,
        &ctx.reporter,
    ))?;
    tracing::info!(
        "fetch: {} selected; {} of {} needed; {:.1} MB downloaded, {:.1} MB resumed from \
         earlier runs, {} complete already; {}, {}",
        plural(tally.objects, "object"),
        tally.partitions_needed,
        plural(tally.partitions_total, "partition"),
        tally.downloaded_bytes as f64 / 1e6,
        tally.resumed_bytes as f64 / 1e6,
        plural(tally.reused, "file"),
        plural(client.stats.requests.load(Ordering::Relaxed), "request"),
        plural(client.stats.retries.load(Ordering::Relaxed), "retry"),
    );
    if let Some(signal) = tally.interrupted {
        tracing::warn!(
            "stopped by {}: {} partitions left unfinished; the journal keeps every file done. Run the same \
             command again to continue (downloads resume where they stopped)",
            signal.name(),
            tally.left
        );
        return Ok(signal.exit());
    }
    Ok(Exit::Success)
}
