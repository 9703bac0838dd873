//! Fetching ATLAS-VAR: the object catalog, then the light-curve partitions that hold selected
//! objects. Over `https://` each file is a resumable range download (`net::download`): a killed
//! run continues where it stopped and a finished file is never fetched again; several partitions
//! download at once within the politeness limits. Over `file://` (a DTN's copy, an OSDF mount)
//! the files are used where they are and only recorded. Each file becomes one journal unit.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinSet;

use super::catalog::{self, Object};
use super::partitions::{self, Partition};
use super::AtlasVarConfig;
use crate::error::UserError;
use crate::net::client::{NetClient, NetError, Request};
use crate::net::download::{download, Downloaded};
use crate::report::Reporter;
use crate::stop::unless_stopped;
use crate::store::journal::{file_times, now_ns, recordable_times};
use crate::store::{FetchJournal, InputRecord, JournalEntry};
use reqwest::Method;

/// Journal unit of the catalog file.
pub const CATALOG_UNIT: &str = "catalog";

/// Journal unit of a partition file.
pub fn partition_unit(name: &str) -> String {
    format!("partition/{name}")
}

/// What a fetch did.
#[derive(Debug, Default)]
pub struct VarTally {
    pub objects: usize,
    pub partitions_total: usize,
    pub partitions_needed: usize,
    /// Of those, the ones this task of a split fetches (all of them without a split).
    pub partitions_owned: usize,
    pub downloaded_bytes: u64,
    pub resumed_bytes: u64,
    pub reused: usize,
    /// The signal that stopped the fetch; downloads under way were abandoned (they resume).
    pub interrupted: Option<crate::stop::StopSignal>,
    /// Partitions not fetched because of it (not started or abandoned).
    pub left: usize,
}

/// The last path segment of a URL (the file name).
fn file_name(url: &url::Url) -> anyhow::Result<String> {
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
        .map(str::to_string)
        .with_context(|| format!("{url} does not end in a file name"))
}

/// A local path for a `file://` URL.
fn local_path(url: &url::Url) -> anyhow::Result<PathBuf> {
    url.to_file_path().map_err(|_| anyhow::anyhow!("{url} is not a local file path"))
}

/// Fetch (or, for `file://`, record) one file; its input record.
async fn get_file(
    client: &NetClient,
    url: &url::Url,
    raw: &std::path::Path,
    field: &str,
) -> anyhow::Result<(InputRecord, Option<Downloaded>)> {
    if url.scheme() == "file" {
        let path = local_path(url)?;
        let p = path.clone();
        // The times before hashing: a change while hashing shows as a newer time at shard. A
        // file modified within 2 s of now gets none (shard hashes it): see `recordable_times`.
        let ((mtime_ns, ctime_ns), size, sha256) = tokio::task::spawn_blocking(move || {
            let times = recordable_times(&fs_err::metadata(&p)?, now_ns());
            crate::digest::hash_file(&p).map(|(size, sha)| (times, size, sha))
        })
        .await??;
        let rec = InputRecord {
            path: path.to_string_lossy().into_owned(),
            field: field.into(),
            size,
            sha256,
            mtime_ns,
            ctime_ns,
            url: Some(url.to_string()),
        };
        return Ok((rec, None));
    }
    let name = file_name(url)?;
    let d = download(client, url, &raw.join(&name)).await?;
    // etd wrote and renamed this file itself just now: its times are recorded as they are.
    let (mtime_ns, ctime_ns) = file_times(&fs_err::metadata(raw.join(&name))?);
    let rec = InputRecord {
        path: name,
        field: field.into(),
        size: d.size,
        sha256: d.sha256.clone(),
        mtime_ns,
        ctime_ns,
        url: Some(url.to_string()),
    };
    Ok((rec, Some(d)))
}

/// The partitions in the light-curve folder: the links of its HTML index page, or else (an origin
/// that does not answer GET on a folder, as Pelican and XRootD origins do not) its WebDAV
/// `PROPFIND` listing.
async fn list_partitions(client: &NetClient, folder: &url::Url) -> anyhow::Result<Vec<Partition>> {
    if folder.scheme() == "file" {
        return partitions::from_dir(&local_path(folder)?);
    }
    let index = match client.send(&Request::get(folder.clone())).await {
        Ok(answer) => {
            let found = partitions::from_index(&String::from_utf8_lossy(&answer.body));
            if !found.is_empty() {
                return Ok(found);
            }
            format!("GET answered {} with no partition links", answer.status)
        }
        Err(NetError::Refused { status, .. }) => format!("GET answered {status}"),
        Err(e) => return Err(e.into()),
    };
    tracing::debug!("{folder}: {index}; asking with PROPFIND");
    let propfind =
        Request::new(Method::from_bytes(b"PROPFIND").expect("PROPFIND is a valid method name"), folder.clone())
            .header("Depth", "1")
            .body("application/xml; charset=utf-8", partitions::PROPFIND_BODY.as_bytes().to_vec());
    let listing = match client.send(&propfind).await {
        Ok(answer) if answer.status == 207 => {
            partitions::from_multistatus(&answer.body).map_err(|e| anyhow::anyhow!("PROPFIND {folder}: {e}"))?
        }
        Ok(answer) => {
            return Err(no_partitions(folder, &index, &format!("PROPFIND answered {}", answer.status)));
        }
        Err(NetError::Refused { status, .. }) => {
            return Err(no_partitions(folder, &index, &format!("PROPFIND answered {status}")));
        }
        Err(e) => return Err(e.into()),
    };
    if listing.is_empty() {
        return Err(no_partitions(folder, &index, "its PROPFIND listing names none"));
    }
    Ok(listing)
}

fn no_partitions(folder: &url::Url, index: &str, propfind: &str) -> anyhow::Error {
    UserError::usage(format!("lightcurves_url {folder}: no partition files found ({index}; {propfind})"))
        .with_hint(
            "lightcurves_url must be a folder whose HTML index page or WebDAV listing names \
             atlas_lc_dr1_{dec_from}-{dec_upto}.csv files (end it with `/`)",
        )
        .into()
}

/// Where a recorded file is on this machine.
pub fn stored_path(raw: &std::path::Path, rec: &InputRecord) -> PathBuf {
    if rec.url.as_deref().is_some_and(|u| u.starts_with("file:")) {
        PathBuf::from(&rec.path)
    } else {
        raw.join(&rec.path)
    }
}

fn count(tally: &mut VarTally, d: &Option<Downloaded>) {
    match d {
        Some(d) if d.reused => tally.reused += 1,
        Some(d) => {
            tally.downloaded_bytes += d.size - d.resumed_from;
            tally.resumed_bytes += d.resumed_from;
        }
        None => {}
    }
}

/// Fetch the catalog and the partitions the selection needs; journal each file.
pub async fn run(
    client: Arc<NetClient>,
    cfg: &AtlasVarConfig,
    raw: PathBuf,
    params: &str,
    journal: &mut FetchJournal,
    reporter: &Reporter,
    split: crate::sources::TaskSplit,
) -> anyhow::Result<(VarTally, Vec<Object>)> {
    let mut tally = VarTally::default();
    fs_err::create_dir_all(&raw)?;
    // Every task of a split reads the catalog to know its partitions; each keeps its own copy,
    // so tasks sharing a workdir never write one file at once.
    let catalog_sub = if split.is_whole() { String::new() } else { format!("task-{}-of-{}", split.index, split.count) };
    let catalog_dir = raw.join(&catalog_sub);
    fs_err::create_dir_all(&catalog_dir)?;
    let (mut catalog_rec, d) = match unless_stopped(get_file(&client, &cfg.catalog_url, &catalog_dir, "catalog")).await
    {
        Ok(got) => got?,
        Err(signal) => return Ok((VarTally { interrupted: Some(signal), ..tally }, Vec::new())),
    };
    if !catalog_sub.is_empty() && !catalog_rec.url.as_deref().is_some_and(|u| u.starts_with("file:")) {
        catalog_rec.path = format!("{catalog_sub}/{}", catalog_rec.path);
    }
    count(&mut tally, &d);
    let catalog_path = stored_path(&raw, &catalog_rec);
    journal.append(JournalEntry::Done {
        unit: CATALOG_UNIT.into(),
        inputs: vec![catalog_rec],
        params: Some(params.to_string()),
        task: None,
    })?;
    let c = cfg.clone();
    let objects = tokio::task::spawn_blocking(move || catalog::read(&catalog_path, &c)).await??;
    tally.objects = objects.len();
    if objects.is_empty() {
        tracing::warn!("{}", super::EMPTY_SELECTION);
        tracing::warn!("hint: {}", super::SELECTION_HINT);
    }
    let all = match unless_stopped(list_partitions(&client, &cfg.lightcurves_url)).await {
        Ok(all) => all?,
        Err(signal) => return Ok((VarTally { interrupted: Some(signal), ..tally }, objects)),
    };
    tally.partitions_total = all.len();
    let needed: Vec<Partition> = partitions::needed(&all, objects.iter().map(|o| o.dec)).into_iter().cloned().collect();
    tally.partitions_needed = needed.len();
    // A split fetches its share of the partitions (the catalog's look-up is the same in every task).
    let needed: Vec<Partition> = needed.into_iter().filter(|p| split.owns(&partition_unit(&p.name))).collect();
    tally.partitions_owned = needed.len();
    let missing = objects.iter().filter(|o| !all.iter().any(|p| p.holds(o.dec))).count();
    if missing > 0 {
        tracing::warn!("{missing} selected objects lie in no partition of {}", cfg.lightcurves_url);
    }
    tracing::info!(
        "atlas-var: {} selected; {} of {} {} them",
        crate::report::plural(objects.len(), "object"),
        needed.len(),
        crate::report::plural(all.len(), "partition"),
        if needed.len() == 1 { "holds" } else { "hold" }
    );
    let mut folder = cfg.lightcurves_url.clone();
    if !folder.path().ends_with('/') {
        folder.set_path(&format!("{}/", folder.path()));
    }
    let parallel = client.host(&folder).concurrency() as usize;
    let progress = reporter.start_counting("fetch", "partitions", needed.len() as u64);
    let mut queue = needed.into_iter();
    let mut running: JoinSet<anyhow::Result<(String, InputRecord, Option<Downloaded>)>> = JoinSet::new();
    // A failed download stops new ones from starting but lets those under way finish, so no
    // transferred byte is thrown away; the first error is returned at the end.
    let mut first_error: Option<anyhow::Error> = None;
    loop {
        if tally.interrupted.is_none() {
            tally.interrupted = crate::stop::requested();
            if let Some(signal) = tally.interrupted {
                // Range downloads resume where they stop: abandon those under way at once.
                tracing::warn!(
                    "{}: stopping the {} downloads under way; they resume next run",
                    signal.name(),
                    running.len()
                );
                tally.left = running.len() + queue.len();
                running.abort_all();
                break;
            }
        }
        while first_error.is_none() && running.len() < parallel.max(1) {
            let Some(p) = queue.next() else { break };
            let (client, raw, url) = (Arc::clone(&client), raw.clone(), folder.join(&p.name)?);
            running.spawn(async move {
                let (rec, d) = get_file(&client, &url, &raw, "csv").await?;
                Ok((p.name, rec, d))
            });
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            _ = crate::stop::wait() => continue,
        };
        let Some(joined) = joined else { break };
        let (name, rec, d) = match joined.map_err(|e| anyhow::anyhow!("a download task failed: {e}")).and_then(|r| r) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("{e:#}");
                first_error.get_or_insert(e);
                continue;
            }
        };
        count(&mut tally, &d);
        progress.advance(1, rec.size);
        journal.append(JournalEntry::Done {
            unit: partition_unit(&name),
            inputs: vec![rec],
            params: Some(params.to_string()),
            task: None,
        })?;
    }
    journal.sync()?;
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok((tally, objects))
}
