//! The local source as a `Source`: fetch records the files found (no requests, no split), and
//! each unit's sample is its FITS file through the image transform plus its other files as they are.

use rayon::prelude::*;
use std::collections::BTreeSet;

use super::{discover, longest_field, LocalConfig};
use crate::error::{Exit, UserError};
use crate::failure::Stage;
use crate::keys;
use crate::report::plural;
use crate::sample::{Fields, SampleError};
use crate::shard::Job;
use crate::sources::{FetchRun, Samples, ShardInput, Source};
use crate::store::journal::{read_failures, JournalPos};
use crate::store::raw::{read_checked, Recorded};
use crate::store::{FetchJournal, InputRecord};
use crate::transform::image::{check_structure, fits_fields, ImageOutput, Provenance};

impl Source for LocalConfig {
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
        super::plan(self)
    }

    fn fingerprint(&self) -> Option<String> {
        None
    }

    fn local_inputs(&self) -> Vec<std::path::PathBuf> {
        vec![self.dir.clone()]
    }

    fn preamble(&self, run: &FetchRun<'_>) -> anyhow::Result<()> {
        if run.retry_failed {
            tracing::info!("--retry-failed: the local source records no fetch failures");
        }
        Ok(())
    }

    fn networked(&self) -> bool {
        false
    }

    fn outputs(&self, inputs: &crate::sources::Inputs<'_>) -> Vec<&'static str> {
        inputs.image.outputs.iter().map(|o| o.field()).collect()
    }

    fn dry_run(&self, run: &FetchRun<'_>) -> anyhow::Result<Exit> {
        let mut units = discover(self)?;
        units.retain(|u| run.split.owns(&u.id));
        let mut out = String::new();
        for u in &units {
            let files: Vec<&str> = u.files.iter().map(|(p, _)| p.as_str()).collect();
            out.push_str(&format!("{}\t{}\n", u.id, files.join(" ")));
        }
        (run.print)(&out)?;
        tracing::info!(
            "dry run: {} from {}; 0 requests; nothing recorded",
            plural(units.len(), "unit"),
            self.dir.display()
        );
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
        let mut journal = FetchJournal::open(&journal_path)?;
        let summary = super::fetch(self, &mut journal, run.reporter, split)?;
        tracing::info!(
            "fetch{}: {} recorded, {} unchanged, {} removed; journal {}",
            run.task_label(),
            plural(summary.recorded, "unit"),
            summary.unchanged,
            summary.removed,
            journal_path.display()
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

    fn samples<'a>(&'a self, input: &'a ShardInput<'a>) -> anyhow::Result<Box<dyn Samples + 'a>> {
        Ok(Box::new(LocalSamples { cfg: self, input }))
    }
}

/// One sample per recorded unit.
struct LocalSamples<'a> {
    cfg: &'a LocalConfig,
    input: &'a ShardInput<'a>,
}

impl Samples for LocalSamples<'_> {
    /// Keys from unit ids, checked for collisions and field clashes. Reads each unit's journal
    /// line once here (chunks of units on every core) and again when its sample is made. A job's input is its unit's
    /// place in id order.
    fn jobs(&self) -> anyhow::Result<Vec<Job<usize>>> {
        let image = self.input.inputs.image;
        let journals = self.input.journals;
        let image_fields: Vec<&str> = image.outputs.iter().map(|o| o.field()).collect();
        // Each unit's fields, checked on every core; the first problem in id order is reported.
        let fields_of = |(unit, pos): (&String, &JournalPos)| -> anyhow::Result<Vec<String>> {
            let inputs = journals.inputs(*pos)?;
            let has_fits = inputs.iter().any(|i| i.field == "fits");
            let mut fields = Vec::with_capacity(inputs.len());
            for input in inputs {
                if let Some(problem) = keys::field_problem(&input.field) {
                    return Err(UserError::usage(format!("{}: {problem}", input.path)).into());
                }
                let produced = has_fits && input.field != "fits" && image_fields.contains(&input.field.as_str());
                if produced {
                    return Err(UserError::usage(format!(
                        "sample `{unit}`: {} would become field `{}`, which the image transform also writes",
                        input.path, input.field
                    ))
                    .with_hint(format!("remove `{}` from transform.image.outputs or rename the file", input.field))
                    .into());
                }
                fields.push(input.field);
            }
            Ok(fields)
        };
        let done: Vec<(&String, &JournalPos)> = self.input.done.iter().collect();
        let mut input_fields = BTreeSet::new();
        // In chunks, so what is held at once does not grow with the units.
        for chunk in done.chunks(4096) {
            let per_unit: Vec<anyhow::Result<Vec<String>>> = chunk.par_iter().copied().map(fields_of).collect();
            for fields in per_unit {
                input_fields.extend(fields?);
            }
        }
        let longest = longest_field(image, input_fields.iter().map(String::as_str));
        let keys = keys::assign_keys(self.input.done.keys().map(String::as_str), longest).map_err(|e| {
            UserError::failure(format!("sample keys: {e}"))
                .with_hint("keys keep only [A-Za-z0-9_-]; rename the files so their stems differ")
        })?;
        Ok(keys
            .into_iter()
            .zip(self.input.done.keys())
            .enumerate()
            .map(|(i, (key, id))| Job { key, id: id.clone(), input: i })
            .collect())
    }

    fn classes(&self) -> Option<Vec<String>> {
        None
    }

    /// A FITS file goes through the image transform, other files pass through.
    fn make(&self, job: &Job<usize>) -> anyhow::Result<Result<Fields, SampleError>> {
        let inputs = self.input.journals.inputs(self.input.pos(job)?)?;
        local_sample(self.cfg, self.input.inputs.image, &job.id, &inputs)
    }
}

fn local_sample(
    cfg: &LocalConfig,
    image: &crate::transform::image::ImageTransform,
    unit: &str,
    inputs: &[InputRecord],
) -> anyhow::Result<Result<Fields, SampleError>> {
    let mut fields = Fields::new();
    let provenance: Vec<(String, String)> = inputs.iter().map(|i| (i.path.clone(), i.sha256.clone())).collect();
    for input in inputs {
        let bytes = read_checked(&cfg.dir, input, Recorded::LocalInput)?;
        if input.field == "fits" && image.outputs == [ImageOutput::Fits] {
            // Pass-through: the same check as `fits_fields`, and the bytes move into the sample
            // instead of being copied.
            if let Err(e) = check_structure(&bytes) {
                return Ok(Err(SampleError(format!("{}: {e}", input.path))));
            }
            fields.push(("fits".into(), bytes));
        } else if input.field == "fits" {
            let prov = Provenance { id: unit, inputs: &provenance };
            match fits_fields(&bytes, image, &prov) {
                Ok(f) => fields.extend(f),
                Err(e) => return Ok(Err(SampleError(format!("{}: {e}", input.path)))),
            }
            if !image.outputs.contains(&ImageOutput::Fits) {
                continue;
            }
        } else {
            fields.push((input.field.clone(), bytes));
        }
    }
    // Samples without an image still carry their original id (keys are sanitised) and inputs.
    let has_json = fields.iter().any(|(f, _)| f == "json");
    if !has_json && image.outputs.contains(&ImageOutput::Json) {
        let meta = serde_json::json!({
            "id": unit,
            "inputs": provenance.iter().map(|(p, s)| serde_json::json!({"path": p, "sha256": s})).collect::<Vec<_>>(),
        });
        let mut bytes = serde_json::to_vec(&meta)?;
        bytes.push(b'\n');
        fields.push(("json".into(), bytes));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields.dedup_by(|a, b| a.0 == b.0);
    Ok(Ok(fields))
}
