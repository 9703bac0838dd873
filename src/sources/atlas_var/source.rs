//! ATLAS-VAR as a `Source`: the fetch (the catalog, then the partitions that hold selected
//! objects; one task) and the samples, made by grouping the fetched partitions' rows by selected
//! object (`group`), one variable star each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;

use super::catalog::{self, Number};
use super::fetch::{stored_path, CATALOG_UNIT};
use super::KIND;
use super::{group, longest_field, AtlasVarConfig, CLASSES, SELECTION_HINT};
use crate::error::{Exit, UserError};
use crate::keys;
use crate::net::client::NetClient;
use crate::report::plural;
use crate::sample::{Fields, SampleError};
use crate::shard::Job;
use crate::sources::{FetchRun, Samples, ShardInput, Source};
use crate::store::journal::{JournalPos, JournalSet};
use crate::store::{FetchJournal, InputRecord};

impl Source for AtlasVarConfig {
    fn kind(&self) -> &'static str {
        super::KIND
    }

    fn needs_targets(&self) -> bool {
        false
    }

    fn transforms(&self) -> &'static [crate::transform::Section] {
        super::TRANSFORMS
    }

    fn default_politeness(&self) -> crate::net::Politeness {
        super::default_politeness()
    }

    fn plan(&self, _targets: u64) -> anyhow::Result<crate::sources::FetchPlan> {
        Ok(super::plan(self))
    }

    fn fingerprint(&self) -> Option<String> {
        Some(self.params())
    }

    fn samples_span_units(&self) -> bool {
        true
    }

    fn local_inputs(&self) -> Vec<std::path::PathBuf> {
        [&self.catalog_url, &self.lightcurves_url].into_iter().filter_map(|u| u.to_file_path().ok()).collect()
    }

    fn outputs(&self, _inputs: &crate::sources::Inputs<'_>) -> Vec<&'static str> {
        super::FIELDS.to_vec()
    }

    fn dry_run(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit> {
        let out = format!(
            "catalog\tGET {}\npartitions\tlisted from {}, then one download per partition that holds a selected object\n",
            self.catalog_url, self.lightcurves_url
        );
        (run.print)(&out)?;
        tracing::info!("dry run: which partitions are needed is known only after the catalog is read; 0 requests made");
        Ok(Exit::Success)
    }

    fn fetch(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit> {
        let workdir = run.workdir;
        let split = run.split;
        let (_lock, journal_path) = if split.is_whole() {
            (workdir.lock()?, workdir.journal())
        } else {
            (workdir.lock_task(split.index, split.count)?, workdir.task_journal(split.index, split.count))
        };
        let mut journal = FetchJournal::open_append(&journal_path)?;
        let client = Arc::new(NetClient::new(run.inputs.politeness.clone(), split.count)?);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let raw = workdir.raw(KIND);
        let (tally, _) = runtime.block_on(super::fetch::run(
            Arc::clone(&client),
            self,
            raw,
            &self.params(),
            &mut journal,
            run.reporter,
            split,
        ))?;
        let share = if split.is_whole() {
            String::new()
        } else {
            format!(" (task {} of {}: {} of them)", split.index, split.count, tally.partitions_owned)
        };
        tracing::info!(
            "fetch: {} selected; {} of {} needed{share}; {:.1} MB downloaded, {:.1} MB resumed from \
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

    fn samples<'a>(&'a self, input: &'a ShardInput<'a>) -> anyhow::Result<Box<dyn Samples + 'a>> {
        let raw = input.workdir.raw(KIND);
        let tmp = input.workdir.root.join("tmp").join("atlas-var-group");
        // Spill and grouped files of an earlier run that stopped are of no use.
        let _ = fs_err::remove_dir_all(&tmp);
        let grouping = atlas_var_group(self, &input.done, input.journals, &raw, &tmp);
        if grouping.is_err() {
            let _ = fs_err::remove_dir_all(&tmp);
        }
        let (jobs, objects, grouped) = grouping?;
        Ok(Box::new(VarSamples { jobs, objects, grouped: Some(grouped), tmp }))
    }

    fn empty_hint(&self) -> Option<&'static str> {
        Some(SELECTION_HINT)
    }
}

/// One sample per selected object; the grouped rows live in `tmp` until this is dropped.
struct VarSamples {
    jobs: Vec<Job<usize>>,
    objects: Vec<catalog::Object>,
    grouped: Option<group::Grouped>,
    tmp: PathBuf,
}

impl Drop for VarSamples {
    fn drop(&mut self) {
        drop(self.grouped.take());
        let _ = fs_err::remove_dir_all(&self.tmp);
    }
}

impl Samples for VarSamples {
    fn jobs(&self) -> anyhow::Result<Vec<Job<usize>>> {
        Ok(self.jobs.iter().map(|j| Job { key: j.key.clone(), id: j.id.clone(), input: j.input }).collect())
    }

    fn classes(&self) -> Option<Vec<String>> {
        Some(CLASSES.iter().map(|c| c.to_string()).collect())
    }

    fn make(&self, job: &Job<usize>) -> anyhow::Result<Result<Fields, SampleError>> {
        let o = &self.objects[job.input];
        let grouped = self.grouped.as_ref().context("the grouped rows are gone")?;
        let rows = grouped.rows(job.input)?;
        if rows.is_empty() {
            return Ok(Err(SampleError("no light-curve rows for this object in the partitions".into())));
        }
        Ok(Ok(variable_star_fields(o, &rows)?))
    }
}

/// Read the ATLAS-VAR catalog and group the fetched partitions' rows by selected object.
fn atlas_var_group(
    cfg: &AtlasVarConfig,
    done: &BTreeMap<String, JournalPos>,
    journals: &JournalSet,
    raw: &Path,
    tmp: &Path,
) -> anyhow::Result<(Vec<Job<usize>>, Vec<catalog::Object>, group::Grouped)> {
    let pos = done.get(CATALOG_UNIT).ok_or_else(|| {
        UserError::usage("the ATLAS-VAR catalog has not been fetched").with_hint("run `etd fetch` first")
    })?;
    let cat = journals.inputs(*pos)?.into_iter().next().context("no catalog input recorded")?;
    let cat_path = stored_path(raw, &cat);
    check_file(&cat_path, &cat)?;
    let objects = catalog::read(&cat_path, cfg)?;
    let ids: Vec<String> = objects.iter().map(|o| o.ato_id.clone()).collect();
    let mut partitions = Vec::new();
    for (unit, pos) in done.range("partition/".to_string()..) {
        let Some(name) = unit.strip_prefix("partition/") else { break };
        for rec in journals.inputs(*pos)? {
            let path = stored_path(raw, &rec);
            check_file(&path, &rec)?;
            partitions.push(group::PartitionFile { path, name: name.to_string(), size: rec.size });
        }
    }
    // The keys depend only on the ids: assigned on a thread of their own while the partitions
    // are grouped (they were a serial step between grouping and making samples).
    let (grouped, keys) = std::thread::scope(|scope| {
        let keys = scope.spawn(|| keys::assign_keys(ids.iter().map(String::as_str), longest_field()));
        let grouped = group::group(&group::Selection::new(&ids), &partitions, cfg.memory as usize, tmp);
        (grouped, keys.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    let (grouped, report) = grouped?;
    tracing::info!(
        "atlas-var: {} selected; {} of {} kept; {} to disk",
        plural(objects.len(), "object"),
        report.rows_kept,
        plural(report.rows_read, "row"),
        plural(report.spills, "spill")
    );
    if report.bad_rows > 0 {
        for b in &report.bad_examples {
            tracing::warn!("{}:{}: row skipped: {}", b.file, b.line, b.reason);
        }
        tracing::warn!(
            "{} did not parse and {} skipped",
            plural(report.bad_rows, "row"),
            if report.bad_rows == 1 { "was" } else { "were" }
        );
    }
    let keys =
        keys.map_err(|e| UserError::failure(format!("ATO_ID keys: {e}")).with_hint("keys keep only [A-Za-z0-9_-]"))?;
    let jobs = keys.into_iter().zip(ids).enumerate().map(|(i, (key, id))| Job { key, id, input: i }).collect();
    Ok((jobs, objects, grouped))
}

/// A recorded input file must still be what fetch recorded: the same size, and the same
/// modification and change times or else (touched, or recorded without them) the same sha256.
fn check_file(path: &Path, rec: &InputRecord) -> anyhow::Result<()> {
    let changed = |what: String| -> anyhow::Error {
        UserError::failure(format!("{} changed since it was fetched ({what})", path.display()))
            .with_hint("run `etd fetch` again")
            .into()
    };
    let meta = fs_err::metadata(path).map_err(|e| {
        UserError::failure(format!("{} recorded by fetch cannot be read: {e}", path.display()))
            .with_hint("run `etd fetch` again")
    })?;
    if meta.len() != rec.size {
        return Err(changed(format!("{} bytes then, {} now", rec.size, meta.len())));
    }
    if rec.stat_matches(&meta) {
        return Ok(());
    }
    let (_, sha256) = crate::digest::hash_file(path)?;
    if sha256 != rec.sha256 {
        return Err(changed(format!("sha256 {} then, {sha256} now", rec.sha256)));
    }
    Ok(())
}

/// One variable star's sample: npy (the light curve), cls (its class), json (catalog columns).
fn variable_star_fields(o: &catalog::Object, rows: &[group::Row]) -> anyhow::Result<Fields> {
    let mut rows_per_filter: BTreeMap<char, u64> = BTreeMap::new();
    for r in rows {
        *rows_per_filter.entry(char::from(r.filter)).or_default() += 1;
    }
    let cls = o.class_index();
    let probabilities: Vec<_> = CLASSES.iter().zip(o.probs).map(|(c, p)| (ProbKey(c), Number::F32(p))).collect();
    let doc = VariableStarJson {
        ato_id: &o.ato_id,
        ra: o.ra,
        dec: o.dec,
        class: &o.class,
        cls,
        probabilities: Pairs(&probabilities),
        catalog: Pairs(&o.extra),
        rows: rows.len(),
        rows_per_filter,
        mjd_min: rows.first().map(|r| r.mjd),
        mjd_max: rows.last().map(|r| r.mjd),
        columns: columns_json(),
    };
    // About 2 KiB: sized once instead of grown by doubling.
    let mut json = Vec::with_capacity(4096);
    serde_json::to_writer(&mut json, &doc)?;
    json.push(b'\n');
    let mut fields = vec![("json".to_string(), json), ("npy".to_string(), group::npy(rows)?)];
    if let Some(c) = cls {
        fields.push(("cls".into(), c.to_string().into_bytes()));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(fields)
}

/// A variable star's `json` member.
#[derive(serde::Serialize)]
struct VariableStarJson<'a> {
    #[serde(rename = "ATO_ID")]
    ato_id: &'a str,
    ra: f64,
    dec: f64,
    #[serde(rename = "CLASS")]
    class: &'a str,
    cls: Option<usize>,
    probabilities: Pairs<'a, ProbKey<'a>>,
    catalog: Pairs<'a, &'static str>,
    rows: usize,
    rows_per_filter: BTreeMap<char, u64>,
    mjd_min: Option<f64>,
    mjd_max: Option<f64>,
    columns: &'static serde_json::value::RawValue,
}

/// The `columns` of every light curve's `json`, serialised once (the same bytes as serialising
/// it in each sample, which was a third of the JSON's cost).
fn columns_json() -> &'static serde_json::value::RawValue {
    static COLUMNS: std::sync::OnceLock<Box<serde_json::value::RawValue>> = std::sync::OnceLock::new();
    COLUMNS.get_or_init(|| {
        let docs = group::NPY_COLUMNS.map(|(name, dtype, unit, meaning)| ColumnDoc { name, dtype, unit, meaning });
        serde_json::value::to_raw_value(&docs).expect("static strings serialise")
    })
}

#[derive(serde::Serialize)]
struct ColumnDoc {
    name: &'static str,
    dtype: &'static str,
    unit: &'static str,
    meaning: &'static str,
}

/// `(key, value)` pairs written as a JSON object in their order.
struct Pairs<'a, K>(&'a [(K, Number)]);

impl<K: serde::Serialize> serde::Serialize for Pairs<'_, K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// `prob_<CLASS>`, written without building a string.
struct ProbKey<'a>(&'a str);

impl serde::Serialize for ProbKey<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("prob_{}", self.0))
    }
}
