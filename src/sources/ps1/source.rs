//! PS1 cutouts as a `Source`: the fetch of one task split through `sources::engine`, and the
//! samples (one per fetched target, made by `sample::ps1_fields`).

use std::sync::Arc;

use super::fetch::Ps1Fetcher;
use super::sample::ps1_fields;
use super::urls::filenames_url;
use super::KIND;
use super::{target_keys, CutoutFormat, Ps1Config};
use crate::error::Exit;
use crate::human::human_duration;
use crate::net::client::NetClient;
use crate::report::plural;
use crate::sample::{Fields, SampleError};
use crate::shard::Job;
use crate::sources::engine::{self, Outcome};
use crate::sources::{FetchRun, Samples, ShardInput, Source};
use crate::store::raw::{read_checked, RawStore, Recorded};
use crate::store::FetchJournal;

impl Ps1Config {
    /// Requests per target: the table, then one cutout per filter (one colour cutout).
    fn requests_per_target(&self) -> usize {
        1 + if self.format == CutoutFormat::Fits { self.filters.len() } else { 1 }
    }
}

impl Source for Ps1Config {
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

    fn check_politeness(
        &self,
        politeness: &crate::net::Politeness,
        exceed: bool,
    ) -> Result<Vec<String>, crate::spec::KeyError> {
        let max = super::MAX_CONCURRENCY;
        if politeness.concurrency <= max {
            return Ok(Vec::new());
        }
        if exceed {
            return Ok(vec![format!(
                "politeness.concurrency {} is above PS1's stated maximum of {max} (allowed by --exceed-archive-limits)",
                politeness.concurrency
            )]);
        }
        Err(crate::spec::KeyError::with_hint(
            "politeness.concurrency",
            format!("{} requests in flight is above PS1's stated maximum of {max}", politeness.concurrency),
            "MAST asks for at most 10 simultaneous downloads and blocks clients that exceed it; \
             pass --exceed-archive-limits only for a mirror or with the archive's permission",
        ))
    }

    fn check_image(&self, image: &crate::transform::image::ImageTransform) -> Result<(), crate::spec::KeyError> {
        if self.format != super::CutoutFormat::Fits
            && image.outputs.contains(&crate::transform::image::ImageOutput::Fits)
        {
            return Err(crate::spec::KeyError::with_hint(
                "transform.image.outputs",
                "`fits` output needs FITS cutouts, but the source fetches jpg/png",
                "set `source.ps1-cutouts.format: fits`, or drop `fits` from the outputs",
            ));
        }
        Ok(())
    }

    fn fingerprint(&self) -> Option<String> {
        Some(self.params())
    }

    fn outputs(&self, inputs: &crate::sources::Inputs<'_>) -> Vec<&'static str> {
        inputs.image.outputs.iter().map(|o| o.field()).collect()
    }

    fn dry_run(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit> {
        let targets = run.inputs.targets;
        target_keys(self, run.inputs.image, targets)?;
        let task = run.task_label();
        let per_target = self.requests_per_target();
        // Read-only: no lock, nothing created.
        let scan = run.scan_read_only(&self.params())?;
        let p = run.pending(&scan);
        let mut out = String::new();
        for &i in &p.todo {
            let t = &targets[i];
            let url = filenames_url(self, t.ra, t.dec);
            out.push_str(&format!("{}\tGET {url}\tthen {} fitscut.cgi\n", t.id, per_target - 1));
        }
        (run.print)(&out)?;
        let requests = (p.todo.len() * per_target) as u64;
        let share = run.task_share();
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
        Ok(Exit::Success)
    }

    fn fetch(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit> {
        let targets = run.inputs.targets;
        let keys = target_keys(self, run.inputs.image, targets)?;
        let task = run.task_label();
        let params = self.params();
        let started = run.start(KIND, &params)?;
        let p = &started.pending;
        drop(started.scan);
        tracing::info!(
            "fetch{task}: {} to fetch from {} ({} owned, {} already done, {} failed earlier{})",
            plural(p.todo.len(), "target"),
            self.base_url,
            p.owned,
            p.done,
            p.failed,
            if p.failed > 0 && !run.retry_failed { "; --retry-failed tries them again" } else { "" }
        );
        let mut journal = FetchJournal::open_append(&started.journal_path)?;
        let store = RawStore::new(run.workdir, KIND);
        run.clean_partials(&store, &keys, &p.todo)?;
        let client = Arc::new(NetClient::new(run.inputs.politeness.clone(), run.split.count)?);
        let limiter = client.host(&self.base_url);
        let fetcher = Arc::new(Ps1Fetcher { client: Arc::clone(&client), cfg: self.clone(), store });
        // Units run their requests one after another; twice the in-flight limit keeps it busy.
        let parallel = (limiter.concurrency() as usize * 2).max(2);
        let jobs = p.todo.iter().map(|&i| {
            let (f, key, target) = (Arc::clone(&fetcher), keys[i].clone(), targets[i].clone());
            async move {
                let unit = target.id.clone();
                Outcome { unit, result: f.fetch(key, target).await }
            }
        });
        let progress = run.reporter.start("fetch", p.todo.len() as u64);
        let runtime = engine::runtime()?;
        let tally = runtime.block_on(engine::drive(jobs, parallel, &params, &mut journal, &progress, &client))?;
        drop(progress);
        let failed_owned = run.finish(&params, &tally, &client)?;
        Ok(crate::sources::run::exit_code(&tally, failed_owned, false))
    }

    fn samples<'a>(&'a self, input: &'a ShardInput<'a>) -> anyhow::Result<Box<dyn Samples + 'a>> {
        Ok(Box::new(Ps1Samples { cfg: self, input, store: RawStore::new(input.workdir, KIND) }))
    }
}

/// One sample per fetched target.
struct Ps1Samples<'a> {
    cfg: &'a Ps1Config,
    input: &'a ShardInput<'a>,
    store: RawStore,
}

impl Samples for Ps1Samples<'_> {
    fn jobs(&self) -> anyhow::Result<Vec<Job<usize>>> {
        let keys = target_keys(self.cfg, self.input.inputs.image, self.input.inputs.targets)?;
        Ok(self.input.target_jobs(keys))
    }

    fn classes(&self) -> Option<Vec<String>> {
        self.input.target_classes()
    }

    fn make(&self, job: &Job<usize>) -> anyhow::Result<Result<Fields, SampleError>> {
        let target = &self.input.inputs.targets[job.input];
        let mut inputs = Vec::new();
        for rec in self.input.journals.inputs(self.input.pos(job)?)? {
            let bytes = read_checked(self.store.root(), &rec, Recorded::RawPayload)?;
            inputs.push((rec, bytes));
        }
        let class = self.input.class_of(target);
        Ok(ps1_fields(self.cfg, self.input.inputs.image, target, class, &inputs))
    }
}
