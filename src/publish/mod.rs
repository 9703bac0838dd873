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

use anyhow::Context;
use fs_err as fs;
use serde::Serialize;

use crate::shard::manifest::{Manifest, MANIFEST_NAME};
use crate::shard::writer::{Digests, HashingWriter};
use config::{Origin, PublishConfig};

/// What a publish stopped by a signal says it kept.
const STOPPED: &str =
    "publish did not finish; every object written is complete and the manifest (written last) is not \
     there yet";

/// The folder or URL a version is published under: `<origin>/<path>/<version>/`.
pub fn destination(cfg: &PublishConfig) -> String {
    match &cfg.origin {
        Origin::Folder(f) => format!("{}/{}/{}/", f.display(), cfg.path, cfg.version),
        Origin::Url(u) => format!("{}/{}/{}/", u.as_str().trim_end_matches('/'), cfg.path, cfg.version),
    }
}

/// One object to publish: a shard, or the manifest (last).
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub md5: String,
    pub crc32c: String,
}

impl Item {
    pub fn matches(&self, d: &Digests) -> bool {
        d.size == self.size && d.sha256 == self.sha256 && d.md5 == self.md5 && d.crc32c == self.crc32c
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
            md5: s.md5.clone(),
            crc32c: s.crc32c.clone(),
        });
    }
    let d = digest_bytes(&bytes)?;
    items.push(Item {
        name: MANIFEST_NAME.into(),
        path: manifest_path,
        size: d.size,
        sha256: d.sha256,
        md5: d.md5,
        crc32c: d.crc32c,
    });
    Ok((manifest, items))
}

/// Size, sha256, md5 and crc32c of some bytes.
pub fn digest_bytes(bytes: &[u8]) -> anyhow::Result<Digests> {
    let mut w = HashingWriter::new(std::io::sink());
    std::io::Write::write_all(&mut w, bytes)?;
    Ok(w.finish()?.1)
}

/// Size and digests of a file, read once.
pub fn digest_file(path: &Path) -> anyhow::Result<Digests> {
    let mut f = fs::File::open(path)?;
    let mut w = HashingWriter::new(std::io::sink());
    std::io::copy(&mut f, &mut w).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(w.finish()?.1)
}

/// What publish does with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    Create {
        name: String,
        bytes: u64,
    },
    /// The object is there with the same bytes.
    SkipIdentical {
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
    pub fn line(&self) -> String {
        match self {
            Action::Create { name, bytes } => format!("create    {name} ({bytes} bytes)"),
            Action::SkipIdentical { name } => format!("identical {name} (already published; skipped)"),
            Action::Replace { name, bytes } => {
                format!("replace   {name} ({bytes} bytes; an upload of ours that did not finish)")
            }
            Action::Conflict { name, published, local } => {
                format!("conflict  {name}: the origin has {published}, this dataset has {local}")
            }
        }
    }
}

/// What a publish did.
#[derive(Debug, Default)]
pub struct Report {
    pub created: u64,
    pub skipped: u64,
    pub replaced: u64,
    pub bytes: u64,
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
    Err(crate::error::UserError::failure(format!(
        "{} does not match its manifest ({} here, {} in the manifest); nothing more was published",
        item.path.display(),
        describe(found.size, Some(&found.sha256), None, None),
        describe(item.size, Some(&item.sha256), None, None)
    ))
    .with_hint("run `etd verify` on the shard folder, then `etd shard` to rebuild it")
    .into())
}

/// Stop on conflicts, naming every conflicting object and both sides' checksums.
pub fn refuse_conflicts(plan: &[Action], dest: &str) -> anyhow::Result<()> {
    let conflicts: Vec<String> =
        plan.iter().filter(|a| matches!(a, Action::Conflict { .. })).map(|a| format!("  {}", a.line())).collect();
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(crate::error::UserError::failure(format!(
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
