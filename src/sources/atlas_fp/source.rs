//! ATLAS forced photometry as a `Source`: the fetch of one task split (its own task journal:
//! tasks to delete first, tasks to continue, targets to submit) and the samples (one light curve
//! per fetched target, made by `transform::lightcurve`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fetch::{endpoint, AtlasFetcher, Plan, Unit};
use super::KIND;
use super::{auth, target_keys, AtlasFpConfig};
use crate::error::Exit;
use crate::human::human_duration;
use crate::net::client::NetClient;
use crate::report::plural;
use crate::sample::{Fields, SampleError};
use crate::shard::Job;
use crate::sources::engine;
use crate::sources::run::exit_code;
use crate::sources::{FetchRun, Samples, ShardInput, Source};
use crate::store::journal::JournalScan;
use crate::store::raw::{read_checked, RawStore, Recorded};
use crate::store::{FetchJournal, JournalEntry};
use crate::transform::lightcurve::{lightcurve_fields, LightCurveMeta};

/// Forget the tasks to delete that live at another endpoint than the recipe's (never send this
/// endpoint's token there); returns how many. Tasks to continue are at this endpoint already:
/// their params, which name the endpoint, matched.
fn leave_foreign_tasks(scan: &mut JournalScan, cfg: &AtlasFpConfig) -> usize {
    let before = scan.undeleted.len();
    scan.undeleted.retain(|task, _| cfg.owns_task(task));
    before - scan.undeleted.len()
}

impl Source for AtlasFpConfig {
    fn kind(&self) -> &'static str {
        super::KIND
    }

    fn needs_targets(&self) -> bool {
        true
    }

    fn transforms(&self) -> &'static [crate::transform::Section] {
        super::TRANSFORMS
    }

    fn default_politeness(&self) -> crate::net::Politeness {
        super::default_politeness()
    }

    fn plan(&self, targets: u64) -> anyhow::Result<crate::sources::FetchPlan> {
        Ok(super::plan(self, targets))
    }

    fn fingerprint(&self) -> Option<String> {
        Some(self.params())
    }

    fn outputs(&self, inputs: &crate::sources::Inputs<'_>) -> Vec<&'static str> {
        inputs.lightcurve.outputs.fields()
    }

    fn preamble(&self, run: &FetchRun<'_>) -> anyhow::Result<()> {
        target_keys(run.inputs.targets, run.inputs.lightcurve.outputs)?;
        // The tasks of a split share the queue: each keeps at most its share of it.
        if run.split.count > self.max_in_flight {
            return Err(crate::error::UserError::usage(format!(
                "--num-tasks {} is more than source.atlas-fp.max_in_flight ({}): every task keeps at least one task \
                 queued on the server, so together they would queue more than allowed",
                run.split.count, self.max_in_flight
            ))
            .with_hint(format!("use at most {} tasks", self.max_in_flight))
            .into());
        }
        if self.mjd_min.is_none() {
            tracing::warn!(
                "source.atlas-fp.mjd_min is not set: the server then starts 30 days before each submission, so the \
                 light curves depend on when they were fetched"
            );
        }
        Ok(())
    }

    fn dry_run(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit> {
        let targets = run.inputs.targets;
        let task = run.task_label();
        let mut scan = run.scan_read_only(&self.params())?;
        leave_foreign_tasks(&mut scan, self);
        let p = run.pending(&scan);
        let resume: Vec<usize> =
            p.todo.iter().copied().filter(|&i| scan.submitted.contains_key(&targets[i].id)).collect();
        let submit: Vec<usize> =
            p.todo.iter().copied().filter(|&i| !scan.submitted.contains_key(&targets[i].id)).collect();
        let queue = endpoint(&self.base_url, "queue/");
        let mut out = String::new();
        for (task, unit) in &scan.undeleted {
            out.push_str(&format!("{unit}\tDELETE {task}\n"));
        }
        for &i in &resume {
            let t = &targets[i];
            out.push_str(&format!("{}\tcontinue {}\n", t.id, scan.submitted[&t.id]));
        }
        for (n, chunk) in submit.chunks(self.batch as usize).enumerate() {
            for &i in chunk {
                let t = &targets[i];
                out.push_str(&format!("{}\tPOST {queue} (batch {}: ra {} dec {})\n", t.id, n + 1, t.ra, t.dec));
            }
        }
        (run.print)(&out)?;
        let writes = submit.len().div_ceil(self.batch as usize) + submit.len() + resume.len() + scan.undeleted.len();
        let share = run.task_share();
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
        Ok(Exit::Success)
    }

    fn fetch(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit> {
        let targets = run.inputs.targets;
        let keys = target_keys(targets, run.inputs.lightcurve.outputs)?;
        let task = run.task_label();
        let params = self.params();
        // The token is needed before anything is written.
        let early_token = auth::read_token(&self.credentials)?;
        let started = run.start(KIND, &params)?;
        let (p, mut scan) = (&started.pending, started.scan);
        let elsewhere = leave_foreign_tasks(&mut scan, self);
        if elsewhere > 0 {
            tracing::info!(
                "{elsewhere} tasks recorded on the server were submitted to another endpoint than {}; they are \
                 neither followed nor deleted from here",
                self.base_url
            );
        }
        let unit = |i: usize| Unit { index: i, target: targets[i].clone(), key: keys[i].clone() };
        let mut plan = Plan { undeleted: BTreeMap::new(), resume: Vec::new(), submit: Vec::new() };
        for &i in &p.todo {
            match scan.submitted.get(&targets[i].id) {
                Some(task) => plan.resume.push((unit(i), task.clone())),
                None => plan.submit.push(unit(i)),
            }
        }
        // Leftover tasks of this task's own units (or of every unit when not split).
        plan.undeleted =
            scan.undeleted.iter().filter(|(_, u)| run.split.owns(u)).map(|(t, u)| (t.clone(), u.clone())).collect();
        drop(scan);
        tracing::info!(
            "fetch{task}: {} to submit and {} to continue at {} ({} owned, {} already done, {} failed \
             earlier{}); {} left on the server to delete first",
            plural(plan.submit.len(), "target"),
            plural(plan.resume.len(), "task"),
            self.base_url,
            p.owned,
            p.done,
            p.failed,
            if p.failed > 0 && !run.retry_failed { "; --retry-failed tries them again" } else { "" },
            plural(plan.undeleted.len(), "task")
        );
        let mut journal = FetchJournal::open_append(&started.journal_path)?;
        let store = RawStore::new(run.workdir, KIND);
        run.clean_partials(&store, &keys, &p.todo)?;
        let client = Arc::new(NetClient::new(run.inputs.politeness.clone(), run.split.count)?);
        let runtime = engine::runtime()?;
        let token = match early_token {
            Some(t) => t,
            None => runtime.block_on(auth::token(&client, self))?,
        };
        let fetcher = Arc::new(AtlasFetcher {
            client: Arc::clone(&client),
            cfg: AtlasFpConfig { max_in_flight: self.max_in_flight / run.split.count, ..self.clone() },
            token,
            store,
            comment: format!("etd:{}", run.inputs.name),
        });
        let progress = run.reporter.start("fetch", (plan.submit.len() + plan.resume.len()) as u64);
        let tally = runtime.block_on(super::fetch::run(fetcher, plan, &params, &mut journal, &progress))?;
        drop(progress);
        let failed_owned = run.finish(&params, &tally, &client)?;
        if tally.undeleted > 0 {
            tracing::warn!(
                "{} could not be deleted on the server; run the same command again to delete {}",
                plural(tally.undeleted, "task"),
                if tally.undeleted == 1 { "it" } else { "them" }
            );
        }
        Ok(exit_code(&tally, failed_owned, tally.undeleted > 0))
    }

    fn samples<'a>(&'a self, input: &'a ShardInput<'a>) -> anyhow::Result<Box<dyn Samples + 'a>> {
        Ok(Box::new(AtlasFpSamples { cfg: self, input, store: RawStore::new(input.workdir, KIND) }))
    }
}

/// One light curve per fetched target.
struct AtlasFpSamples<'a> {
    cfg: &'a AtlasFpConfig,
    input: &'a ShardInput<'a>,
    store: RawStore,
}

impl Samples for AtlasFpSamples<'_> {
    fn jobs(&self) -> anyhow::Result<Vec<Job<usize>>> {
        let keys = target_keys(self.input.inputs.targets, self.input.inputs.lightcurve.outputs)?;
        Ok(self.input.target_jobs(keys))
    }

    fn classes(&self) -> Option<Vec<String>> {
        self.input.target_classes()
    }

    fn make(&self, job: &Job<usize>) -> anyhow::Result<Result<Fields, SampleError>> {
        let target = &self.input.inputs.targets[job.input];
        let (inputs, task) = match self.input.journals.read(self.input.pos(job)?)? {
            JournalEntry::Done { inputs, task, .. } => (inputs, task),
            other => anyhow::bail!("journal index points at a non-`done` entry of {}", other.unit()),
        };
        let rec = inputs.first().ok_or_else(|| anyhow::anyhow!("{}: no light curve recorded", target.id))?;
        let bytes = read_checked(self.store.root(), rec, Recorded::RawPayload)?;
        let class = self.input.class_of(target);
        let meta = LightCurveMeta {
            target: serde_json::to_value(target)?,
            task_url: task.as_deref(),
            result_url: rec.url.as_deref(),
            sha256: &rec.sha256,
            use_reduced: self.cfg.use_reduced,
        };
        let lc = self.input.inputs.lightcurve;
        Ok(lightcurve_fields(&bytes, lc.quality, lc.outputs, &meta).map(|mut fields| {
            if let Some(c) = class {
                fields.push(("cls".into(), c.to_string().into_bytes()));
                fields.sort_by(|a, b| a.0.cmp(&b.0));
            }
            fields
        }))
    }
}
