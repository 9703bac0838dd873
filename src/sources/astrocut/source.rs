//! TESScut, Zcut and HAPcut as a `Source`: the look-ups of the targets a task owns, then the
//! cutouts of their sectors (or surveys), each phase driven through `sources::engine`; samples
//! one per (target, sector) or (target, survey). HAPcut has no look-up: its first phase is the
//! cutout of each target, and its samples are one per (target, product file of the answer).

use std::sync::Arc;

use serde_json::{json, Value};

use super::fetch::{
    parse_sectors, parse_surveys, sectors_of, CutoutFetcher, CUTOUT_FIELD, SECTORS_FIELD, SURVEYS_FIELD,
};
use super::{target_keys, AstrocutConfig, Part, Service, KIND};
use crate::error::Exit;
use crate::human::human_duration;
use crate::net::client::NetClient;
use crate::report::plural;
use crate::sample::{Fields, SampleError};
use crate::shard::Job;
use crate::sources::engine::{self, Outcome, Tally};
use crate::sources::{FetchRun, Samples, ShardInput, Source};
use crate::store::journal::{JournalPos, JournalScan, JournalSet};
use crate::store::raw::{read_checked, RawStore, Recorded};
use crate::store::{FetchJournal, InputRecord};

/// What the journals say about the cutouts of the targets a task owns.
#[derive(Debug, Default)]
struct CutoutsPending {
    /// (target index, sector or survey), in target then part order.
    todo: Vec<(usize, Part)>,
    done: usize,
    failed: usize,
    /// Owned targets whose look-up is not done yet (their sectors are unknown).
    not_looked_up: usize,
    /// Looked-up targets none of whose sectors (or surveys) the recipe wants.
    none_wanted: usize,
}

impl AstrocutConfig {
    /// The parts a done look-up recorded that the recipe wants, each with what the look-up said
    /// about it (TESScut: its camera and CCD rows; Zcut: every survey listed).
    fn looked_up(
        &self,
        journals: &JournalSet,
        root: &std::path::Path,
        pos: JournalPos,
    ) -> anyhow::Result<Vec<(Part, Value)>> {
        let field = match self.service {
            Service::Tesscut => SECTORS_FIELD,
            Service::Zcut { .. } => SURVEYS_FIELD,
            // HAPcut looks nothing up.
            Service::Hapcut => return Ok(Vec::new()),
        };
        let noun = self.part_noun();
        let inputs = journals.inputs(pos)?;
        let rec = inputs
            .iter()
            .find(|r| r.field == field)
            .ok_or_else(|| anyhow::anyhow!("a {noun} look-up is recorded without its answer"))?;
        let bytes = read_checked(root, rec, Recorded::RawPayload)?;
        let bad = |e: String| anyhow::anyhow!("{}: the stored {noun} look-up {e}", root.join(&rec.path).display());
        Ok(match &self.service {
            Service::Tesscut => {
                let rows = parse_sectors(&bytes).map_err(bad)?;
                sectors_of(&rows)
                    .into_iter()
                    .filter(|s| self.sectors.wants(*s))
                    .map(|s| {
                        let look_up: Vec<Value> = rows
                            .iter()
                            .filter(|r| r.sector == s)
                            .map(|r| json!({"sectorName": r.name, "camera": r.camera, "ccd": r.ccd}))
                            .collect();
                        (Part::Sector(s), Value::Array(look_up))
                    })
                    .collect()
            }
            Service::Zcut { surveys, .. } => {
                let all = parse_surveys(&bytes).map_err(bad)?;
                all.iter().filter(|s| surveys.wants(s)).map(|s| (Part::Survey(s.clone()), json!(all))).collect()
            }
            Service::Hapcut => Vec::new(),
        })
    }
}

/// Whether every raw file of a done unit is still there with its recorded size.
fn raw_whole(journals: &JournalSet, root: &std::path::Path, pos: JournalPos) -> anyhow::Result<bool> {
    Ok(journals.inputs(pos)?.iter().all(|i| fs_err::metadata(root.join(&i.path)).is_ok_and(|m| m.len() == i.size)))
}

impl AstrocutConfig {
    fn cutouts_pending(&self, run: &FetchRun<'_>, scan: &JournalScan) -> anyhow::Result<CutoutsPending> {
        let mut p = CutoutsPending::default();
        if self.service == Service::Hapcut {
            // Its one request per target is the unit `run.pending` counts.
            return Ok(p);
        }
        if !run.workdir.root.is_dir() {
            p.not_looked_up = run.inputs.targets.iter().filter(|t| run.split.owns(&t.id)).count();
            return Ok(p);
        }
        let journals = JournalSet::open(run.workdir.journals()?)?;
        let root = run.workdir.raw(KIND);
        for (i, t) in run.inputs.targets.iter().enumerate() {
            if !run.split.owns(&t.id) {
                continue;
            }
            let Some(&pos) = scan.done.get(&t.id) else {
                p.not_looked_up += 1;
                continue;
            };
            let wanted = self.looked_up(&journals, &root, pos)?;
            if wanted.is_empty() {
                p.none_wanted += 1;
            }
            for (part, _) in wanted {
                let unit = part.unit(&t.id);
                match scan.done.get(&unit) {
                    Some(&pos) if raw_whole(&journals, &root, pos)? => p.done += 1,
                    _ if scan.failed.contains_key(&unit) && !run.retry_failed => p.failed += 1,
                    _ => p.todo.push((i, part)),
                }
            }
        }
        Ok(p)
    }
}

fn merge(mut a: Tally, b: Tally) -> Tally {
    a.done += b.done;
    a.bytes += b.bytes;
    for (k, v) in b.failed {
        *a.failed.entry(k).or_default() += v;
    }
    a.transient += b.transient;
    a.not_attempted += b.not_attempted;
    a.stopped = a.stopped.or(b.stopped);
    a.undeleted += b.undeleted;
    a.interrupted = a.interrupted.or(b.interrupted);
    a.abandoned += b.abandoned;
    a.elapsed += b.elapsed;
    a
}

impl Source for AstrocutConfig {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn needs_targets(&self) -> bool {
        true
    }

    fn transforms(&self) -> &'static [crate::transform::Section] {
        match self.service {
            Service::Tesscut => &[],
            Service::Zcut { .. } | Service::Hapcut => &[crate::transform::Section::Image],
        }
    }

    fn check_image(&self, image: &crate::transform::image::ImageTransform) -> Result<(), crate::spec::KeyError> {
        use crate::transform::image::ImageOutput;
        match self.service {
            Service::Zcut { format, .. }
                if format != super::ZcutFormat::Fits && image.outputs.contains(&ImageOutput::Fits) =>
            {
                Err(crate::spec::KeyError::with_hint(
                    "transform.image.outputs",
                    format!("a Zcut {} cutout has no FITS file to put in the `fits` field", format.name()),
                    "drop `fits` from the outputs, or ask Zcut for `format: fits`",
                ))
            }
            _ => Ok(()),
        }
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
        let (max_c, max_r) = (super::MAX_CONCURRENCY, super::MAX_RATE);
        let rate = politeness.rate.per_second();
        let mut over = Vec::new();
        if politeness.concurrency > max_c {
            over.push((
                "politeness.concurrency",
                format!(
                    "{} requests in flight is above MAST's limit of {max_c} for {}",
                    politeness.concurrency,
                    self.service_name()
                ),
            ));
        }
        if rate > max_r + 1e-9 {
            over.push((
                "politeness.rate",
                format!(
                    "{} is above MAST's limit of {max_r} requests per second for {}",
                    politeness.rate,
                    self.service_name()
                ),
            ));
        }
        if exceed {
            return Ok(over
                .into_iter()
                .map(|(k, m)| format!("{k}: {m} (allowed by --exceed-archive-limits)"))
                .collect());
        }
        match over.into_iter().next() {
            None => Ok(Vec::new()),
            Some((key, message)) => Err(crate::spec::KeyError::with_hint(
                key,
                message,
                format!(
                    "{} answers 503 above 5 requests per second or 10 simultaneous calls, and MAST blocks heavy \
                     clients; pass --exceed-archive-limits only for a mirror or with the archive's permission",
                    self.service_name()
                ),
            )),
        }
    }

    fn fingerprint(&self) -> Option<String> {
        Some(self.params())
    }

    fn outputs(&self, inputs: &crate::sources::Inputs<'_>) -> Vec<&'static str> {
        let labelled = !inputs.classes.is_empty();
        let mut fields: Vec<&'static str> = match self.service {
            Service::Tesscut => super::field_names(self),
            Service::Zcut { .. } => inputs.image.outputs.iter().map(|o| o.field()).chain(["cls"]).collect(),
            Service::Hapcut => {
                let wht =
                    inputs.image.outputs.contains(&crate::transform::image::ImageOutput::Npy).then_some("wht.npy");
                inputs.image.outputs.iter().map(|o| o.field()).chain(["cls"]).chain(wht).collect()
            }
        };
        fields.sort_unstable();
        fields.into_iter().filter(|f| labelled || *f != "cls").collect()
    }

    fn dry_run(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit> {
        let targets = run.inputs.targets;
        target_keys(self, targets)?;
        let task = run.task_label();
        let scan = run.scan_read_only(&self.params())?;
        let lookups = run.pending(&scan);
        let cutouts = self.cutouts_pending(run, &scan)?;
        if self.service == Service::Hapcut {
            let mut out = String::new();
            for &i in &lookups.todo {
                let t = &targets[i];
                out.push_str(&format!("{}\tGET {}\n", t.id, self.hapcut_url(t.ra, t.dec)));
            }
            (run.print)(&out)?;
            let requests = lookups.todo.len() as u64;
            let share = run.task_share();
            tracing::info!(
                "dry run{task}: {} to fetch ({} done, {} failed earlier); at least {}, at least {} at {} per task; \
                 0 requests made",
                plural(lookups.todo.len(), "cutout"),
                lookups.done,
                lookups.failed,
                plural(requests, "request"),
                human_duration(share.min_duration(requests)),
                share.rate
            );
            return Ok(Exit::Success);
        }
        let lookup_url = self.lookup_url();
        let noun = self.part_noun();
        let mut out = String::new();
        for &i in &lookups.todo {
            let t = &targets[i];
            let form: Vec<String> =
                self.lookup_form(t.ra, t.dec).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("{}\tPOST {lookup_url} ({})\tthen 1 astrocut per {noun}\n", t.id, form.join("&")));
        }
        for (i, part) in &cutouts.todo {
            let t = &targets[*i];
            out.push_str(&format!("{}\tGET {}\n", part.unit(&t.id), self.part_url(t.ra, t.dec, part)));
        }
        (run.print)(&out)?;
        let requests = (lookups.todo.len() + cutouts.todo.len()) as u64;
        let share = run.task_share();
        tracing::info!(
            "dry run{task}: {} and {} to fetch ({} done, {} failed earlier){}; at least {}, at least {} at {} \
             per task; 0 requests made",
            plural(lookups.todo.len(), &format!("{noun} look-up")),
            plural(cutouts.todo.len(), "cutout"),
            cutouts.done,
            lookups.failed + cutouts.failed,
            if lookups.todo.is_empty() {
                String::new()
            } else {
                format!(", plus 1 cutout per {noun} of the {} not looked up yet", plural(lookups.todo.len(), "target"))
            },
            plural(requests, "request"),
            human_duration(share.min_duration(requests)),
            share.rate
        );
        Ok(Exit::Success)
    }

    fn fetch(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit> {
        let targets = run.inputs.targets;
        let keys = target_keys(self, targets)?;
        let task = run.task_label();
        let params = self.params();
        // The lock is held until the end of both phases.
        let started = run.start(KIND, &params)?;
        let (_lock, journal_path, lookups) = (started._lock, started.journal_path, started.pending);
        drop(started.scan);
        let hapcut = self.service == Service::Hapcut;
        tracing::info!(
            "fetch{task}: {} to {} at {} ({} owned, {} already {}, {} failed earlier{})",
            plural(lookups.todo.len(), "target"),
            if hapcut { "cut" } else { "look up" },
            self.base_url,
            lookups.owned,
            lookups.done,
            if hapcut { "cut" } else { "looked up" },
            lookups.failed,
            if lookups.failed > 0 && !run.retry_failed { "; --retry-failed tries them again" } else { "" }
        );
        let mut journal = FetchJournal::open_append(&journal_path)?;
        let store = RawStore::new(run.workdir, KIND);
        let owned: Vec<usize> = (0..targets.len()).filter(|&i| run.split.owns(&targets[i].id)).collect();
        run.clean_partials(&store, &keys, &owned)?;
        let client = Arc::new(NetClient::new(run.inputs.politeness.clone(), run.split.count)?);
        let limiter = client.host(&self.base_url);
        let fetcher = Arc::new(CutoutFetcher { client: Arc::clone(&client), cfg: self.clone(), store });
        // Each unit is one request; twice the in-flight limit keeps the limiter busy.
        let parallel = (limiter.concurrency() as usize * 2).max(2);
        let runtime = engine::runtime()?;

        let jobs = lookups.todo.iter().map(|&i| {
            let (f, key, target) = (Arc::clone(&fetcher), keys[i].clone(), targets[i].clone());
            async move {
                let unit = target.id.clone();
                Outcome { unit, result: f.lookup(key, target).await }
            }
        });
        let progress = run.reporter.start(if hapcut { "fetch" } else { "look up" }, lookups.todo.len() as u64);
        let tally = runtime.block_on(engine::drive(jobs, parallel, &params, &mut journal, &progress, &client))?;
        drop(progress);

        let tally = if tally.interrupted.is_some() || tally.stopped.is_some() || hapcut {
            tally
        } else {
            let scan = run.scan(&params)?;
            let p = self.cutouts_pending(run, &scan)?;
            tracing::info!(
                "fetch{task}: {} to fetch ({} already done, {} failed earlier{}){}",
                plural(p.todo.len(), "cutout"),
                p.done,
                p.failed,
                if p.failed > 0 && !run.retry_failed { "; --retry-failed tries them again" } else { "" },
                if p.none_wanted > 0 {
                    match self.service {
                        Service::Tesscut => {
                            format!(
                                "; {} observed in none of the recipe's sectors",
                                plural(p.none_wanted, "target was")
                            )
                        }
                        Service::Zcut { .. } | Service::Hapcut => {
                            format!("; {} in none of the recipe's surveys", plural(p.none_wanted, "target is"))
                        }
                    }
                } else {
                    String::new()
                }
            );
            let jobs = p.todo.iter().map(|(i, part)| {
                let (f, key, target, part) =
                    (Arc::clone(&fetcher), keys[*i].clone(), targets[*i].clone(), part.clone());
                async move {
                    let unit = part.unit(&target.id);
                    Outcome { unit, result: f.cutout(key, target, part).await }
                }
            });
            let progress = run.reporter.start("fetch", p.todo.len() as u64);
            let second = runtime.block_on(engine::drive(jobs, parallel, &params, &mut journal, &progress, &client))?;
            drop(progress);
            merge(tally, second)
        };
        let failed_targets = run.finish(&params, &tally, &client)?;
        let scan = run.scan(&params)?;
        let failed_cutouts = targets
            .iter()
            .filter(|t| run.split.owns(&t.id))
            .map(|t| {
                let prefix = format!("{} {} ", t.id, self.part_noun());
                scan.failed.range(prefix.clone()..).take_while(|(u, _)| u.starts_with(&prefix)).count()
            })
            .sum::<usize>();
        if failed_cutouts > 0 {
            tracing::warn!(
                "{} failed permanently (no data for the {}, or refused); see {}",
                plural(failed_cutouts, "cutout"),
                self.part_noun(),
                run.workdir.failures().display()
            );
        }
        Ok(crate::sources::run::exit_code(&tally, failed_targets + failed_cutouts, false))
    }

    fn samples<'a>(&'a self, input: &'a ShardInput<'a>) -> anyhow::Result<Box<dyn Samples + 'a>> {
        let targets = input.inputs.targets;
        let keys = target_keys(self, targets)?;
        let root = input.workdir.raw(KIND);
        let mut units = Vec::new();
        let mut jobs = Vec::new();
        for (i, (t, key)) in targets.iter().zip(&keys).enumerate() {
            let Some(&pos) = input.done.get(&t.id) else { continue };
            if self.service == Service::Hapcut {
                // One sample per product file of the target's answer (names checked at fetch).
                let inputs = input.journals.inputs(pos)?;
                let rec = inputs
                    .iter()
                    .find(|r| r.field == CUTOUT_FIELD)
                    .ok_or_else(|| anyhow::anyhow!("{}: recorded without its cutout", t.id))?;
                let bytes = read_checked(&root, rec, Recorded::RawPayload)?;
                let file = root.join(&rec.path);
                let mut names = super::zip::names(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                names.sort();
                for member in names {
                    let product =
                        super::product_key(&member).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                    let part = Part::Product { member, key: product };
                    jobs.push((format!("{key}{}", part.suffix()), part.unit(&t.id), units.len()));
                    units.push(Unit { target: i, part, pos, look_up: Value::Null });
                }
                continue;
            }
            for (part, look_up) in self.looked_up(input.journals, &root, pos)? {
                let unit = part.unit(&t.id);
                let Some(&pos) = input.done.get(&unit) else { continue };
                jobs.push((format!("{key}{}", part.suffix()), unit, units.len()));
                units.push(Unit { target: i, part, pos, look_up });
            }
        }
        Ok(Box::new(CutoutSamples { cfg: self, input, store: RawStore::new(input.workdir, KIND), units, jobs }))
    }

    fn empty_hint(&self) -> Option<&'static str> {
        Some(match self.service {
            Service::Tesscut => {
                "run `etd fetch` first; a target TESS never observed, or none of whose sectors the recipe lists, makes \
                 no sample"
            }
            Service::Hapcut => "run `etd fetch` first; a target no Hubble product covers makes no sample",
            Service::Zcut { .. } => {
                "run `etd fetch` first; a target no Zcut survey covers, or none of whose surveys the recipe lists, \
                 makes no sample"
            }
        })
    }
}

struct Unit {
    target: usize,
    part: Part,
    pos: JournalPos,
    look_up: Value,
}

/// One sample per fetched (target, sector) or (target, survey).
struct CutoutSamples<'a> {
    cfg: &'a AstrocutConfig,
    input: &'a ShardInput<'a>,
    store: RawStore,
    units: Vec<Unit>,
    /// (key, unit id, index into `units`).
    jobs: Vec<(String, String, usize)>,
}

impl Samples for CutoutSamples<'_> {
    fn jobs(&self) -> anyhow::Result<Vec<Job<usize>>> {
        Ok(self.jobs.iter().map(|(key, id, input)| Job { key: key.clone(), id: id.clone(), input: *input }).collect())
    }

    fn classes(&self) -> Option<Vec<String>> {
        self.input.target_classes()
    }

    /// A cutout's shard task is its target's fetch task (which looked it up and fetched it).
    fn split_id(&self, job: &Job<usize>) -> String {
        self.input.inputs.targets[self.units[job.input].target].id.clone()
    }

    fn make(&self, job: &Job<usize>) -> anyhow::Result<Result<Fields, SampleError>> {
        let unit = &self.units[job.input];
        let target = &self.input.inputs.targets[unit.target];
        let inputs: Vec<InputRecord> = self.input.journals.inputs(unit.pos)?;
        let rec = inputs
            .iter()
            .find(|r| r.field == CUTOUT_FIELD)
            .ok_or_else(|| anyhow::anyhow!("{}: recorded without its cutout", job.id))?;
        let bytes = read_checked(self.store.root(), rec, Recorded::RawPayload)?;
        let file = self.store.root().join(&rec.path);
        let class = self.input.class_of(target);
        let sector = match &unit.part {
            Part::Sector(s) => *s,
            Part::Product { member, key } => {
                let members = match super::fetch::hap_members(&bytes) {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(SampleError(format!("{}: {e}", file.display())))),
                };
                let Some((_, m)) = members.iter().find(|(_, m)| &m.name == member) else {
                    return Ok(Err(SampleError(format!("{}: no member `{member}`", file.display()))));
                };
                let prov = super::hapcut::Provenance {
                    target,
                    product: key,
                    url: rec.url.as_deref().unwrap_or_default(),
                    raw_sha256: &rec.sha256,
                    members: members.iter().map(|(_, m)| m.name.as_str()).collect(),
                };
                let made = super::hapcut::fields(m, self.input.inputs.image, &prov, class);
                return Ok(made.map_err(|e| SampleError(format!("{} member `{member}`: {}", file.display(), e.0))));
            }
            Part::Survey(survey) => {
                let format = self.cfg.zcut_format();
                let mut members = match super::zip::image_members(&bytes, format) {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(SampleError(format!("{}: {e}", file.display())))),
                };
                members.sort_by(|a, b| a.name.cmp(&b.name));
                let prov = super::zcut::Provenance {
                    target,
                    survey,
                    url: rec.url.as_deref().unwrap_or_default(),
                    raw_sha256: &rec.sha256,
                    look_up: unit.look_up.clone(),
                };
                let made = super::zcut::fields(&members, format, self.input.inputs.image, &prov, class);
                return Ok(made.map_err(|e| SampleError(format!("{}: {}", file.display(), e.0))));
            }
        };
        let members = match super::zip::fits_members(&bytes) {
            Ok(m) => m,
            Err(e) => return Ok(Err(SampleError(format!("{}: {e}", file.display())))),
        };
        let mut names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        names.sort();
        let Some(first) = members.iter().find(|m| m.name == names[0]) else {
            return Ok(Err(SampleError(format!("{}: no member", file.display()))));
        };
        let tpf = match super::tpf::read(&first.data) {
            Ok(t) => t,
            Err(e) => return Ok(Err(SampleError(format!("{} member `{}`: {}", file.display(), first.name, e.0)))),
        };
        let prov = super::tpf::Provenance {
            target,
            sector,
            url: rec.url.as_deref().unwrap_or_default(),
            raw_sha256: &rec.sha256,
            member: &first.name,
            members: names.clone(),
            look_up: Some(unit.look_up.clone()),
        };
        Ok(super::tpf::fields(&tpf, self.cfg.fits.then_some(first.data.as_slice()), &prov, class))
    }
}
