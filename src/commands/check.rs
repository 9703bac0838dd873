//! `etd check RECIPE`: validate the recipe and print the plan; never touches the network.

use serde::Serialize;

use crate::cli::CheckArgs;
use crate::error::Exit;
use crate::human::human_duration;
use crate::net::Politeness;
use crate::recipe::Recipe;
use crate::report::plural;
use crate::sources::{self, FetchPlan};
use crate::units::Size;

use super::Ctx;

/// The plan as printed (and as JSON with `--json`).
#[derive(Debug, Serialize)]
pub struct Plan {
    pub recipe: String,
    pub name: String,
    pub source: &'static str,
    pub fetch_available: bool,
    pub targets: Option<u64>,
    #[serde(flatten)]
    pub fetch: FetchPlan,
    /// Least time the requests take at the politeness rate, in seconds.
    pub min_fetch_seconds: Option<f64>,
    pub politeness: Option<Politeness>,
    pub splits: Vec<SplitPlan>,
    pub compression: &'static str,
    pub max_samples: u64,
    pub max_bytes: u64,
    pub outputs: Vec<&'static str>,
    pub publish: Option<String>,
    pub workdir: String,
}

#[derive(Debug, Serialize)]
pub struct SplitPlan {
    pub name: String,
    pub fraction: f64,
    /// Expected samples (units x fraction) and the least number of shards they need.
    pub expected_samples: u64,
    pub expected_shards: u64,
}

pub fn run(ctx: &Ctx, args: &CheckArgs) -> anyhow::Result<Exit> {
    let recipe = super::load_recipe(&args.recipe.recipe, args.limits.exceed_archive_limits)?;
    let plan = make_plan(ctx, &recipe)?;
    let text = if args.json { format!("{}\n", serde_json::to_string_pretty(&plan)?) } else { render(&plan) };
    super::print_stdout(&text)?;
    Ok(Exit::Success)
}

pub fn make_plan(ctx: &Ctx, recipe: &Recipe) -> anyhow::Result<Plan> {
    let fetch = sources::plan(&recipe.source, recipe.targets.as_ref().map(|t| t.rows.len() as u64).unwrap_or(0))?;
    let source = recipe.source.source();
    let networked = source.networked();
    let min = fetch.requests.filter(|_| networked).map(|r| recipe.politeness.min_duration(r).as_secs_f64());
    // Without sizes known in advance, shards are estimated from input bytes (local) or count only.
    let per_sample_bytes = fetch.input_bytes.map(|b| b / fetch.units.max(1));
    let splits = recipe
        .shard
        .splits
        .iter()
        .map(|(name, fraction)| {
            let samples = (fetch.units as f64 * fraction).round() as u64;
            let by_count = samples.div_ceil(recipe.shard.max_samples);
            let by_bytes = per_sample_bytes.map(|b| (samples * b).div_ceil(recipe.shard.max_bytes)).unwrap_or(0);
            SplitPlan {
                name: name.clone(),
                fraction: *fraction,
                expected_samples: samples,
                expected_shards: by_count.max(by_bytes),
            }
        })
        .collect();
    Ok(Plan {
        recipe: recipe.path.display().to_string(),
        name: recipe.name.clone(),
        source: recipe.source.kind(),
        fetch_available: true,
        targets: recipe.targets.as_ref().map(|t| t.rows.len() as u64),
        fetch,
        min_fetch_seconds: min,
        politeness: networked.then(|| recipe.politeness.clone()),
        splits,
        compression: recipe.shard.compression.as_str(),
        max_samples: recipe.shard.max_samples,
        max_bytes: recipe.shard.max_bytes,
        outputs: source.outputs(&super::source_inputs(recipe)),
        publish: recipe.publish.as_ref().map(crate::publish::config::PublishConfig::destination),
        workdir: ctx.workdir(recipe).root.display().to_string(),
    })
}

fn render(p: &Plan) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<12} {v}\n"));
    line("recipe", format!("{} ({})", p.name, p.recipe));
    line(
        "source",
        if p.fetch_available {
            p.source.to_string()
        } else {
            format!("{} (fetching not available in this version)", p.source)
        },
    );
    if let Some(t) = p.targets {
        line("targets", t.to_string());
    }
    let bytes = p.fetch.input_bytes.map(|b| format!(", {}", human_bytes(b))).unwrap_or_default();
    line("inputs", format!("{}{bytes}", counted_kind(p.fetch.items, p.fetch.items_kind)));
    line("units", format!("{} ({})", p.fetch.units, p.fetch.samples_per_unit));
    line(
        "requests",
        match p.fetch.requests {
            Some(r) => format!("{r} ({})", p.fetch.requests_note),
            None => format!("unknown until fetch ({})", p.fetch.requests_note),
        },
    );
    if let (Some(secs), Some(pol)) = (p.min_fetch_seconds, &p.politeness) {
        line(
            "min time",
            format!(
                "{} at {} with at most {} in flight",
                human_duration(std::time::Duration::from_secs_f64(secs)),
                pol.rate,
                pol.concurrency
            ),
        );
    }
    for sp in &p.splits {
        line(
            "split",
            if p.fetch.samples_per_unit == crate::sources::ONE_SAMPLE_EACH {
                format!(
                    "{} ({:.0}%): ~{}, {} or more",
                    sp.name,
                    sp.fraction * 100.0,
                    plural(sp.expected_samples, "sample"),
                    plural(sp.expected_shards, "shard")
                )
            } else {
                // Samples per unit are known only from the archive's answers: count units.
                format!(
                    "{} ({:.0}%): ~{} ({}), {} or more",
                    sp.name,
                    sp.fraction * 100.0,
                    plural(sp.expected_samples, p.fetch.items_kind.trim_end_matches('s')),
                    p.fetch.samples_per_unit,
                    plural(sp.expected_shards, "shard")
                )
            },
        );
    }
    line(
        "shards",
        format!("{} each at most {} / {}", p.compression, plural(p.max_samples, "sample"), Size(p.max_bytes)),
    );
    line("outputs", p.outputs.join(", "));
    line("workdir", p.workdir.clone());
    if let Some(dest) = &p.publish {
        line("publish", dest.clone());
    }
    s
}

/// `1 target`, `3 targets`, `0 objects (known after reading the catalog)`: `kind` is the plan's
/// plural noun (as in the JSON), perhaps followed by a remark.
fn counted_kind(n: u64, kind: &str) -> String {
    let (noun, remark) = kind.split_once(' ').map_or((kind, ""), |(noun, rest)| (noun, rest));
    let counted = plural(n, noun.strip_suffix('s').unwrap_or(noun));
    if remark.is_empty() {
        counted
    } else {
        format!("{counted} {remark}")
    }
}

/// Bytes for people: `1.9 MB`.
pub fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}
