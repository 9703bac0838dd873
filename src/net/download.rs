//! Big downloads done right: a file is fetched into `<name>.part` with range requests that
//! resume from what is already there (after a dropped connection or a killed run), validated
//! against the server's `ETag` (or `Last-Modified`) and size so a changed object starts over, and
//! renamed into place only when complete. A file already complete with the same validator and
//! size is never downloaded again.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fs_err as fs;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{DownloadTarget, NetClient, Request};

/// The bound of a download whose `HEAD` gave no size (see `Request::max_body`).
pub const UNKNOWN_SIZE_MAX: u64 = 64 << 30;

/// What the server says about an object (from `HEAD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteObject {
    pub url: String,
    pub size: Option<u64>,
    /// `ETag`, else `Last-Modified`.
    pub validator: Option<String>,
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// Complete from an earlier run: no byte was fetched.
    pub reused: bool,
    /// Bytes already there from an interrupted run when this one started.
    pub resumed_from: u64,
}

/// `HEAD` an object: its size and validator.
pub async fn head(client: &NetClient, url: &url::Url) -> anyhow::Result<RemoteObject> {
    let answer = client.send(&Request::new(Method::HEAD, url.clone())).await?;
    let header =
        |name: reqwest::header::HeaderName| answer.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok(RemoteObject {
        url: url.to_string(),
        size: header(reqwest::header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        validator: header(reqwest::header::ETAG).or_else(|| header(reqwest::header::LAST_MODIFIED)),
    })
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn read_meta(path: &Path) -> Option<RemoteObject> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn write_meta(path: &Path, meta: &RemoteObject) -> anyhow::Result<()> {
    crate::fsx::write_atomic(path, &serde_json::to_vec(meta)?)
}

/// Download `url` to `dest`, resuming and never fetching a complete file twice.
pub async fn download(client: &NetClient, url: &url::Url, dest: &Path) -> anyhow::Result<Downloaded> {
    let remote = head(client, url).await?;
    let done_meta = sidecar(dest, ".etd-source.json");
    let part = sidecar(dest, ".part");
    let part_meta = sidecar(dest, ".part.json");
    if let (Some(meta), Ok(m)) = (read_meta(&done_meta), fs::metadata(dest)) {
        if meta == remote && remote.size.is_none_or(|s| s == m.len()) {
            let (size, sha256) = crate::digest::hash_file(dest)?;
            return Ok(Downloaded { path: dest.to_path_buf(), size, sha256, reused: true, resumed_from: size });
        }
    }
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir)?;
    }
    // A part from another version of the object (or another URL) cannot be continued.
    if part.exists() && read_meta(&part_meta).as_ref() != Some(&remote) {
        tracing::info!("{}: the object changed on the server since the partial download; starting over", url);
        fs::remove_file(&part)?;
    }
    write_meta(&part_meta, &remote)?;
    let resumed_from = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if resumed_from > 0 {
        tracing::info!("{url}: resuming at byte {resumed_from}");
    }
    let complete = remote.size.is_some_and(|s| s == resumed_from && s > 0);
    if !complete {
        let target = DownloadTarget { part: part.clone(), validator: remote.validator.clone() };
        let mut req = Request::get(url.clone()).max_body(remote.size.unwrap_or(UNKNOWN_SIZE_MAX));
        req.download = Some(target);
        client.send(&req).await?;
    }
    let got = fs::metadata(&part)?.len();
    if let Some(size) = remote.size {
        anyhow::ensure!(got == size, "{url}: downloaded {got} bytes, the server announced {size}; run again to resume");
    }
    let (size, sha256) = crate::digest::hash_file(&part)?;
    fs::rename(&part, dest).with_context(|| format!("cannot move the download into {}", dest.display()))?;
    write_meta(&done_meta, &remote)?;
    let _ = fs::remove_file(&part_meta);
    if let Some(dir) = dest.parent() {
        crate::fsx::sync_dir(dir)?;
    }
    Ok(Downloaded { path: dest.to_path_buf(), size, sha256, reused: false, resumed_from })
}
