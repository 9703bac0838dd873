//! `publish`: copy a dataset (its shards, then its manifest) into an OSDF/Pelican origin under
//! `<origin>/<path>/<version>/`, verified, never replacing what is published.
//!
//! Both kinds of origin follow one plan. Every object is first looked up: missing ones are
//! created; ones with the same bytes are skipped; ones with other bytes are a conflict, and any
//! conflict stops the publish before anything is written. Only while a version is a draft (its
//! manifest not yet published) may etd replace an object, and only one its own publish journal
//! shows as an upload it started and never verified (an HTTPS upload cut off midway). The
//! manifest goes last: its presence means the version is complete.

pub mod config;
pub mod https;
pub mod local;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context;
use fs_err as fs;
use serde::{Deserialize, Serialize};

use crate::digest::{Digests, HashingWriter};
use crate::error::UserError;
use crate::report::{plural, Reporter};
use crate::shard::manifest::{Manifest, MANIFEST_NAME};
use config::{Origin, PublishConfig};

/// What a publish stopped by a signal says it kept.
const STOPPED: &str =
    "publish did not finish; every object written is complete and the manifest (written last) is not \
     there yet";

/// One object to publish: a shard, or the manifest (last).
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub crc32c: String,
    /// md5 as the manifest records it, else as publish computed it from the file (a manifest
    /// written without `shard.md5`): only origins that report md5 alone need it.
    md5: OnceLock<String>,
}

impl Item {
    /// Whether digests of a file are this item's: size, sha256, crc32c, and md5 where both
    /// sides have one.
    pub fn matches(&self, d: &Digests) -> bool {
        d.size == self.size
            && d.sha256 == self.sha256
            && d.crc32c == self.crc32c
            && d.md5.as_deref().is_none_or(|m| self.md5().is_none_or(|own| own == m))
    }

    /// The md5, if known (from the manifest, or learnt from the file).
    pub fn md5(&self) -> Option<&str> {
        self.md5.get().map(String::as_str)
    }

    /// Check digests of the local file against the item ([`check_local`]), then keep the
    /// file's md5 if the manifest had none.
    pub fn learn(&self, found: &Digests) -> anyhow::Result<()> {
        check_local(self, found)?;
        if let Some(m) = &found.md5 {
            let _ = self.md5.set(m.clone());
        }
        Ok(())
    }
}

/// The shards of `shards_dir` as its manifest lists them, then the manifest itself.
pub fn items(shards_dir: &Path) -> anyhow::Result<(Manifest, Vec<Item>)> {
    let manifest_path = shards_dir.join(MANIFEST_NAME);
    let bytes = fs::read(&manifest_path).map_err(|e| {
        crate::error::UserError::usage(format!("no finished dataset to publish: {e}"))
            .with_hint("run `etd shard` (or `etd run`) first; the manifest is written last")
    })?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not an etd manifest", manifest_path.display()))?;
    let mut items = Vec::with_capacity(manifest.shards.len() + 1);
    for s in &manifest.shards {
        items.push(Item {
            name: s.name.clone(),
            path: shards_dir.join(&s.name),
            size: s.bytes,
            sha256: s.sha256.clone(),
            crc32c: s.crc32c.clone(),
            md5: s.md5.clone().map(OnceLock::from).unwrap_or_default(),
        });
    }
    let d = digest_bytes(&bytes)?;
    items.push(Item {
        name: MANIFEST_NAME.into(),
        path: manifest_path,
        size: d.size,
        sha256: d.sha256,
        crc32c: d.crc32c,
        md5: d.md5.map(OnceLock::from).unwrap_or_default(),
    });
    Ok((manifest, items))
}

/// Size, sha256, md5 and crc32c of some bytes.
pub fn digest_bytes(bytes: &[u8]) -> anyhow::Result<Digests> {
    let mut w = HashingWriter::new(std::io::sink());
    std::io::Write::write_all(&mut w, bytes)?;
    Ok(w.finish()?.1)
}

/// Size and digests of a file (md5 only if `md5`), read once.
pub fn digest_file(path: &Path, md5: bool) -> anyhow::Result<Digests> {
    let mut f = fs::File::open(path)?;
    let mut w = HashingWriter::with_md5(std::io::sink(), md5);
    std::io::copy(&mut f, &mut w).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(w.finish()?.1)
}

/// Describe a set of digests for an error message.
pub fn describe(size: u64, sha256: Option<&str>, md5: Option<&str>, crc32c: Option<&str>) -> String {
    let mut parts = vec![format!("{size} bytes")];
    if let Some(s) = sha256 {
        parts.push(format!("sha256 {s}"));
    }
    if let Some(m) = md5 {
        parts.push(format!("md5 {m}"));
    }
    if let Some(c) = crc32c {
        parts.push(format!("crc32c {c}"));
    }
    parts.join(", ")
}

/// The local file differs from its manifest entry: refuse to publish it.
pub fn check_local(item: &Item, found: &Digests) -> anyhow::Result<()> {
    if item.matches(found) {
        return Ok(());
    }
    Err(UserError::failure(format!(
        "{} does not match its manifest ({} here, {} in the manifest); nothing more was published",
        item.path.display(),
        describe(found.size, Some(&found.sha256), None, None),
        describe(item.size, Some(&item.sha256), None, None)
    ))
    .with_hint("run `etd verify` on the shard folder, then `etd shard` to rebuild it")
    .into())
}

/// A place a version is published to. Each kind of origin implements this in its own file and
/// gets one arm in [`open`]; [`run`] does the rest (plan, dry run, refusing conflicts, the order
/// of writes, progress, stopping on a signal, the summary).
pub trait Destination {
    /// `<origin>/<path>/<version>/`, as messages name it.
    fn describe(&self) -> String;

    /// Check, without writing, that this process may create what publishing creates. `None`
    /// when that shows only by writing (an HTTPS origin's permissions). A dry run reports the
    /// answer; a publish stops on an error before it takes the lock.
    fn check_writable(&self) -> Option<Result<(), UserError>> {
        None
    }

    /// Take what keeps two publishes of this version from interleaving (publish only; a dry
    /// run does not lock). Held until the destination is dropped.
    fn lock(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// What to do with each item, in the same order (reads what is there; writes nothing).
    fn plan(&mut self, items: &[Item]) -> anyhow::Result<Vec<Action>>;

    /// Make ready for the writes of a checked plan (folders, collections), before the first one.
    fn begin(&mut self, plan: &CheckedPlan) -> anyhow::Result<()>;

    /// Write one object and check it arrived intact; `replace` says whether an object of ours
    /// that is there under the name may be replaced.
    fn put(&mut self, item: &Item, replace: Replace) -> anyhow::Result<()>;

    /// Clean up after the last write, or when a signal stops the publish between objects.
    fn end(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The destination a recipe's `publish` section names (the one match on origin kinds).
/// `journal` is the publish journal of the workdir (`publish.jsonl`), for origins that need one.
pub fn open(cfg: &PublishConfig, journal: &Path) -> anyhow::Result<Box<dyn Destination>> {
    Ok(match &cfg.origin {
        Origin::Folder(origin) => Box::new(local::LocalFolder::new(origin, cfg)),
        Origin::Url(origin) => Box::new(https::HttpsOrigin::open(origin, cfg, journal)?),
    })
}

/// What `publish` does with one object; the words are those of the dry-run lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    Create,
    Identical,
    Replace,
    Conflict,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Identical => "identical",
            ActionKind::Replace => "replace",
            ActionKind::Conflict => "conflict",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What publish does with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        name: String,
        bytes: u64,
    },
    /// The object is there with the same bytes.
    Identical {
        name: String,
    },
    /// An upload of ours that was cut off (draft only): uploaded again.
    Replace {
        name: String,
        bytes: u64,
    },
    /// Another object is there under the name.
    Conflict {
        name: String,
        published: String,
        local: String,
    },
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Create { .. } => ActionKind::Create,
            Action::Identical { .. } => ActionKind::Identical,
            Action::Replace { .. } => ActionKind::Replace,
            Action::Conflict { .. } => ActionKind::Conflict,
        }
    }

    /// The dry-run line: the action word padded to one width, the object name, the detail.
    pub fn line(&self) -> String {
        let kind = self.kind();
        match self {
            Action::Create { name, bytes } => format!("{kind:<9} {name} ({bytes} bytes)"),
            Action::Identical { name } => format!("{kind:<9} {name} (already published; skipped)"),
            Action::Replace { name, bytes } => {
                format!("{kind:<9} {name} ({bytes} bytes; an upload of ours that did not finish)")
            }
            Action::Conflict { name, published, local } => {
                format!("{kind:<9} {name}: the origin has {published}, this dataset has {local}")
            }
        }
    }
}

/// One step of a checked plan: an action that is not a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Identical,
    /// Replace an upload of ours that was cut off (draft only).
    Replace,
}

/// Whether [`Destination::put`] may replace an object that is there under the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Nothing may be replaced: an object that appeared meanwhile stops the publish.
    No,
    /// The object there is an upload of ours that was cut off before it was verified.
    UnfinishedUpload,
}

/// A plan with no conflict in it, one step per item in item order. Only
/// [`check_plan`] makes one, so executing a plan never meets a conflict.
#[derive(Debug)]
pub struct CheckedPlan {
    steps: Vec<Step>,
}

impl CheckedPlan {
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Whether any step writes.
    pub fn writes(&self) -> bool {
        self.steps.iter().any(|s| *s != Step::Identical)
    }
}

/// Stop on conflicts, naming every conflicting object and both sides' checksums; else the plan
/// as steps that cannot hold a conflict.
pub fn check_plan(plan: &[Action], dest: &str) -> anyhow::Result<CheckedPlan> {
    let mut steps = Vec::with_capacity(plan.len());
    let mut conflicts = Vec::new();
    for action in plan {
        match action {
            Action::Create { .. } => steps.push(Step::Create),
            Action::Identical { .. } => steps.push(Step::Identical),
            Action::Replace { .. } => steps.push(Step::Replace),
            Action::Conflict { .. } => conflicts.push(format!("  {}", action.line())),
        }
    }
    if conflicts.is_empty() {
        return Ok(CheckedPlan { steps });
    }
    Err(UserError::failure(format!(
        "{} under {dest} {} from this dataset; nothing was published:\n{}",
        crate::report::plural(conflicts.len(), "object"),
        if conflicts.len() == 1 { "differs" } else { "differ" },
        conflicts.join("\n")
    ))
    .with_hint(
        "published objects are immutable (OSDF caches never refetch them): publish under a new `publish.version`",
    )
    .into())
}

/// What a publish did.
#[derive(Debug, Default)]
pub struct Report {
    pub created: u64,
    pub skipped: u64,
    pub replaced: u64,
    pub bytes: u64,
}

/// How [`run`] runs.
pub enum Mode<'a> {
    /// Print the plan, one line per object, through the function given; write nothing.
    DryRun(&'a dyn Fn(&str) -> anyhow::Result<()>),
    /// Publish, reporting progress.
    Publish(&'a Reporter),
}

/// Publish `items` (manifest last) to `dest`: check it is writable, lock, plan, then either print
/// the plan (dry run) or refuse conflicts and carry out the checked plan in item order.
pub fn run(dest: &mut dyn Destination, items: &[Item], mode: Mode<'_>) -> anyhow::Result<()> {
    let describe = dest.describe();
    let writable = dest.check_writable();
    let reporter = match mode {
        Mode::DryRun(print) => {
            let plan = dest.plan(items)?;
            dry_run_report(&plan, &describe, writable, print)?;
            return Ok(());
        }
        Mode::Publish(reporter) => reporter,
    };
    if let Some(Err(e)) = writable {
        return Err(e.into());
    }
    dest.lock()?;
    let plan = dest.plan(items)?;
    let checked = check_plan(&plan, &describe)?;
    let progress = reporter.start("publish", items.len() as u64);
    dest.begin(&checked)?;
    let mut report = Report::default();
    for (item, step) in items.iter().zip(checked.steps()) {
        if let Err(stopped) = crate::stop::check(|| STOPPED.into()) {
            dest.end()?;
            return Err(stopped.into());
        }
        match step {
            Step::Identical => report.skipped += 1,
            Step::Create => {
                dest.put(item, Replace::No)?;
                report.created += 1;
                report.bytes += item.size;
            }
            Step::Replace => {
                dest.put(item, Replace::UnfinishedUpload)?;
                report.replaced += 1;
                report.bytes += item.size;
            }
        }
        progress.advance(1, item.size);
    }
    dest.end()?;
    summarize(&plan, &report, &describe);
    Ok(())
}

/// Print the plan; `writable` is the destination's permission check, when it has one.
fn dry_run_report(
    plan: &[Action],
    dest: &str,
    writable: Option<Result<(), UserError>>,
    print: &dyn Fn(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let text: String = plan.iter().map(|a| format!("{}\n", a.line())).collect();
    print(&text)?;
    let objects = plural(plan.len(), "object");
    match writable {
        Some(Err(e)) => {
            tracing::info!("dry run: {objects} for {dest}; nothing was written");
            return Err(e.into());
        }
        Some(Ok(())) => {
            tracing::info!("dry run: {objects} for {dest}; the destination is writable; nothing was written")
        }
        None => tracing::info!("dry run: {objects} for {dest}; nothing was written"),
    }
    check_plan(plan, dest)?;
    Ok(())
}

fn summarize(plan: &[Action], report: &Report, dest: &str) {
    if report.created == 0 && report.replaced == 0 {
        tracing::info!(
            "{dest} is already published with identical bytes ({}); nothing to do",
            plural(plan.len(), "object")
        );
        return;
    }
    tracing::info!(
        "published {dest}: {} written ({:.1} MB), {} replaced, {} already there and identical; manifest last",
        plural(report.created + report.replaced, "object"),
        report.bytes as f64 / 1e6,
        report.replaced,
        report.skipped
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Vec<Action> {
        vec![
            Action::Identical { name: "a.tar".into() },
            Action::Create { name: "b.tar".into(), bytes: 10 },
            Action::Replace { name: "c.tar".into(), bytes: 20 },
        ]
    }

    #[test]
    fn dry_run_lines_use_the_action_words() {
        let mut p = plan();
        p.push(Action::Conflict { name: "manifest.json".into(), published: "1 bytes".into(), local: "2 bytes".into() });
        let lines: Vec<String> = p.iter().map(Action::line).collect();
        assert_eq!(
            lines,
            [
                "identical a.tar (already published; skipped)",
                "create    b.tar (10 bytes)",
                "replace   c.tar (20 bytes; an upload of ours that did not finish)",
                "conflict  manifest.json: the origin has 1 bytes, this dataset has 2 bytes",
            ]
        );
        let words: Vec<&str> = p.iter().map(|a| a.kind().as_str()).collect();
        let json: Vec<String> = p.iter().map(|a| serde_json::to_string(&a.kind()).unwrap()).collect();
        assert_eq!(json, words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>());
    }

    #[test]
    fn a_checked_plan_holds_no_conflict() {
        let checked = check_plan(&plan(), "/o/ns/v1/").unwrap();
        assert_eq!(checked.steps(), [Step::Identical, Step::Create, Step::Replace]);
        assert!(checked.writes());
        assert!(!check_plan(&plan()[..1], "/o/ns/v1/").unwrap().writes());

        let mut p = plan();
        p.insert(1, Action::Conflict { name: "x.tar".into(), published: "1 bytes".into(), local: "2 bytes".into() });
        let e = check_plan(&p, "/o/ns/v1/").unwrap_err().to_string();
        assert_eq!(
            e,
            "1 object under /o/ns/v1/ differs from this dataset; nothing was published:\n  \
             conflict  x.tar: the origin has 1 bytes, this dataset has 2 bytes"
        );
    }
}
