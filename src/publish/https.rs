//! Publishing to an HTTPS origin (Pelican/XRootD; `http://` for loopback tests).
//!
//! Existence is checked with `HEAD` first (XRootD ignores `If-None-Match`, see docs/design.md §10); an
//! object that is there is compared through `HEAD` with `Want-Digest` (crc32c, then md5; base64
//! and hex both accepted). Uploads are streamed `PUT`s with `Content-Length` and a bearer token,
//! through the `net` request path (retries, backoff); after each upload its digests are read back
//! and compared with the manifest, and a mismatch stops the publish before the manifest. The
//! publish journal (`<workdir>/publish.jsonl`) records each upload as started and as verified,
//! so a rerun may replace only its own uploads that were cut off, and only before the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use fs_err as fs;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::config::PublishConfig;
use super::{describe, digest_file, Action, CheckedPlan, Destination, Item, Replace};
use crate::error::UserError;
use crate::net::client::{Auth, NetClient, NetError, Request, Secret};
use crate::net::Politeness;

/// How hard etd presses an origin: a few uploads at a time is plenty (they are large).
pub fn politeness() -> Politeness {
    Politeness {
        concurrency: 4,
        rate: crate::units::rate(20.0, 1),
        retries: 6,
        timeout: Duration::from_secs(60),
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        read_rate: None,
    }
}

/// The bearer token: the recipe's `token_file`, else `$BEARER_TOKEN_FILE`, else `$BEARER_TOKEN`.
/// A token file holds the token itself or JSON with `access_token` (WLCG convention).
pub fn token(token_file: Option<&Path>) -> anyhow::Result<Option<Secret>> {
    let file = token_file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(crate::env_vars::BEARER_TOKEN_FILE).map(PathBuf::from));
    if let Some(path) = file {
        let text = fs::read_to_string(&path).map_err(|e| {
            UserError::usage(format!("cannot read the origin token file {}: {e}", path.display()))
                .with_hint("create a token with `pelican token create --write ...`, or set $BEARER_TOKEN")
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!("the token file {} is readable by group or others; `chmod 600` it", path.display());
            }
        }
        let text = text.trim();
        #[derive(Deserialize)]
        struct Wlcg {
            access_token: String,
        }
        let token = match serde_json::from_str::<Wlcg>(text) {
            Ok(w) => w.access_token,
            Err(_) => text.to_string(),
        };
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(
                UserError::usage(format!("the origin token file {} does not hold one token", path.display())).into()
            );
        }
        return Ok(Some(Secret::new(token)));
    }
    Ok(std::env::var(crate::env_vars::BEARER_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|t| Secret::new(t.trim())))
}

/// Where an upload stands, as the publish journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UploadState {
    /// The `PUT` was about to be sent: the object may be there cut off.
    Started,
    /// The origin reported the object's size and digests as the manifest lists them.
    Verified,
    /// A state this version of etd does not write (a newer etd's journal): never `started`.
    #[serde(other)]
    Other,
}

/// A line of the publish journal.
#[derive(Debug, Serialize, Deserialize)]
struct JournalLine {
    url: String,
    status: UploadState,
}

/// `<workdir>/publish.jsonl`: which uploads were started and which verified.
pub struct PublishJournal {
    path: PathBuf,
    latest: BTreeMap<String, UploadState>,
}

impl PublishJournal {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut latest = BTreeMap::new();
        if path.exists() {
            for line in fs::read_to_string(path)?.lines() {
                // A torn last line from a killed run is ignored.
                if let Ok(l) = serde_json::from_str::<JournalLine>(line) {
                    latest.insert(l.url, l.status);
                }
            }
        }
        Ok(PublishJournal { path: path.to_path_buf(), latest })
    }

    fn started_not_verified(&self, url: &str) -> bool {
        self.latest.get(url) == Some(&UploadState::Started)
    }

    fn append(&mut self, url: &str, status: UploadState) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        let mut line = serde_json::to_vec(&JournalLine { url: url.into(), status })?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.file().sync_data().with_context(|| format!("cannot sync {}", self.path.display()))?;
        self.latest.insert(url.into(), status);
        Ok(())
    }
}

/// Digests an origin reported for an object (lower-case hex).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reported {
    pub md5: Option<String>,
    pub crc32c: Option<String>,
}

/// Parse an RFC 3230 `Digest` header: `md5=<base64>`, `crc32c=<hex or base64>` (XRootD sends
/// crc32c in base64, Pelican in hex), comma-separated.
pub fn parse_digest(header: &str, into: &mut Reported) {
    let b64 = base64::engine::general_purpose::STANDARD;
    for part in header.split(',') {
        let Some((alg, value)) = part.trim().split_once('=') else { continue };
        let value = value.trim();
        match alg.trim().to_ascii_lowercase().as_str() {
            "md5" => {
                if let Ok(bytes) = b64.decode(value) {
                    into.md5 = Some(hex::encode(bytes));
                } else if value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    into.md5 = Some(value.to_ascii_lowercase());
                }
            }
            "crc32c" => {
                if value.len() == 8 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    into.crc32c = Some(value.to_ascii_lowercase());
                } else if let Ok(bytes) = b64.decode(value) {
                    if bytes.len() == 4 {
                        into.crc32c = Some(hex::encode(bytes));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A version folder on an HTTPS origin: its requests run on a runtime of its own.
pub struct HttpsOrigin {
    remote: Remote,
    runtime: tokio::runtime::Runtime,
    /// The origin URL and `<path>/<version>` below it, for the collections to make.
    origin: url::Url,
    rel: String,
    /// `<origin>/<path>/<version>/` as the recipe spells it, for messages.
    shown: String,
}

impl HttpsOrigin {
    /// Read the token (warning when there is none) and the publish journal at `journal`.
    pub fn open(origin: &url::Url, cfg: &PublishConfig, journal: &Path) -> anyhow::Result<Self> {
        let dest = cfg.destination();
        let token = token(cfg.token_file.as_deref())?;
        if token.is_none() {
            tracing::warn!(
                "no token for {dest} (publish.token_file, $BEARER_TOKEN_FILE or $BEARER_TOKEN): uploading without one"
            );
        }
        let base = url::Url::parse(&dest)?;
        let journal = PublishJournal::open(journal)?;
        let client = NetClient::new(politeness(), 1)?;
        let remote = Remote { client, base, auth: token.map(Auth::Bearer), journal };
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let rel = format!("{}/{}", cfg.path, cfg.version);
        Ok(HttpsOrigin { remote, runtime, origin: origin.clone(), rel, shown: dest })
    }
}

impl Destination for HttpsOrigin {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn plan(&mut self, items: &[Item]) -> anyhow::Result<Vec<Action>> {
        self.runtime.block_on(self.remote.plan(items))
    }

    fn begin(&mut self, plan: &CheckedPlan) -> anyhow::Result<()> {
        if plan.writes() {
            self.runtime.block_on(self.remote.make_collections(&self.origin, &self.rel))?;
        }
        Ok(())
    }

    /// A `PUT` replaces whatever is there: `replace` was settled by the plan, which lets only
    /// our own cut-off uploads be replaced (XRootD ignores `If-None-Match`).
    fn put(&mut self, item: &Item, replace: Replace) -> anyhow::Result<()> {
        self.runtime.block_on(self.remote.upload(item, replace))
    }
}

/// How long a second upload over a replaced cut-off object waits, so that its modification time
/// falls in a later second than the one the origin's cached checksum is tied to.
const STALE_CHECKSUM_WAIT: Duration = Duration::from_millis(1100);

/// The version folder on an origin.
struct Remote {
    client: NetClient,
    /// `<origin>/<path>/<version>/`.
    base: url::Url,
    auth: Option<Auth>,
    journal: PublishJournal,
}

enum Found {
    Missing,
    Present { size: Option<u64>, digests: Reported },
}

impl Remote {
    fn url(&self, name: &str) -> anyhow::Result<url::Url> {
        self.base.join(name).with_context(|| format!("bad object name {name}"))
    }

    fn request(&self, method: Method, url: url::Url) -> Request {
        Request::new(method, url).auth(self.auth.clone())
    }

    /// `HEAD` the object: missing, or present with its size and digests.
    async fn look(&self, url: &url::Url) -> anyhow::Result<Found> {
        let mut digests = Reported::default();
        let mut size = None;
        for alg in ["crc32c", "md5"] {
            let req = self.request(Method::HEAD, url.clone()).header("Want-Digest", alg);
            match self.client.send(&req).await {
                Ok(a) => {
                    size = a
                        .headers
                        .get(reqwest::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    for v in a.headers.get_all("digest") {
                        if let Ok(text) = v.to_str() {
                            parse_digest(text, &mut digests);
                        }
                    }
                }
                Err(NetError::Refused { status: 404, .. }) => return Ok(Found::Missing),
                Err(e) => return Err(auth_hint(e)),
            }
        }
        Ok(Found::Present { size, digests })
    }

    /// What to do with each item (HEADs only; writes nothing).
    async fn plan(&self, items: &[Item]) -> anyhow::Result<Vec<Action>> {
        let mut found = Vec::with_capacity(items.len());
        for item in items {
            found.push(self.look(&self.url(&item.name)?).await?);
        }
        let manifest_published = matches!(found.last(), Some(Found::Present { .. }));
        let mut plan = Vec::with_capacity(items.len());
        for (item, found) in items.iter().zip(found) {
            let url = self.url(&item.name)?;
            if let Found::Present { digests: Reported { md5: Some(_), crc32c: None }, .. } = &found {
                if item.md5().is_none() {
                    // The origin reports md5 alone (multiuser XRootD) and the manifest has none.
                    learn_from_file(item).await?;
                }
            }
            plan.push(match found {
                Found::Missing => Action::Create { name: item.name.clone(), bytes: item.size },
                Found::Present { size, digests } => {
                    if same(item, size, &digests) {
                        Action::Identical { name: item.name.clone() }
                    } else if !manifest_published && self.journal.started_not_verified(url.as_str()) {
                        Action::Replace { name: item.name.clone(), bytes: item.size }
                    } else {
                        Action::Conflict {
                            name: item.name.clone(),
                            published: describe(
                                size.unwrap_or(0),
                                None,
                                digests.md5.as_deref(),
                                digests.crc32c.as_deref(),
                            ),
                            local: describe(item.size, None, item.md5(), Some(&item.crc32c)),
                        }
                    }
                }
            });
        }
        Ok(plan)
    }

    /// `MKCOL` the version folder and its parents below `origin` (201 created; 405 means it is
    /// there already). WebDAV servers want the collection before a `PUT` into it; XRootD makes
    /// paths itself and answers either way.
    async fn make_collections(&self, origin: &url::Url, rel: &str) -> anyhow::Result<()> {
        let mkcol = Method::from_bytes(b"MKCOL").expect("MKCOL is a valid method name");
        let mut url = origin.clone();
        let mut path = origin.path().trim_end_matches('/').to_string();
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            path = format!("{path}/{seg}");
            url.set_path(&format!("{path}/"));
            match self.client.send(&self.request(mkcol.clone(), url.clone())).await {
                Ok(_) | Err(NetError::Refused { status: 405, .. }) => {}
                Err(e) => return Err(auth_hint(e)),
            }
        }
        Ok(())
    }

    async fn upload(&mut self, item: &Item, replace: Replace) -> anyhow::Result<()> {
        // The local file must be what the manifest says before it goes anywhere.
        learn_from_file(item).await?;
        let url = self.url(&item.name)?;
        self.journal.append(url.as_str(), UploadState::Started)?;
        let sent = crate::net::upload::SentSlot::default();
        let put = self.request(Method::PUT, url.clone()).upload(item.path.clone()).record_sent(sent.clone());
        self.client.send(&put).await.map_err(auth_hint)?;
        check_sent(item, &url, &sent)?;
        let mut found = self.look(&url).await?;
        if replace == Replace::UnfinishedUpload
            && matches!(&found, Found::Present { size, digests } if !same(item, *size, digests))
        {
            // The plan's `HEAD` made the origin checksum the cut-off object, and XRootD keeps a
            // checksum while the file's modification time, in whole seconds, is unchanged: a
            // `PUT` over it in the same second is reported with the old digests. Upload once
            // more in a later second, which makes the origin checksum the new bytes.
            tracing::info!(
                "{url}: digests after replacing a cut-off upload are not the file's; uploading it once more"
            );
            tokio::time::sleep(STALE_CHECKSUM_WAIT).await;
            self.client.send(&put).await.map_err(auth_hint)?;
            check_sent(item, &url, &sent)?;
            found = self.look(&url).await?;
        }
        match found {
            Found::Present { size, digests } if same(item, size, &digests) => {
                if digests.md5.is_none() && digests.crc32c.is_none() {
                    tracing::warn!("{url}: the origin reports no md5 or crc32c; only the size was checked");
                }
                self.journal.append(url.as_str(), UploadState::Verified)
            }
            Found::Present { size, digests } => Err(UserError::failure(format!(
                "{url} does not match after upload: the origin has {}, the file has {}; the manifest was not published",
                describe(size.unwrap_or(0), None, digests.md5.as_deref(), digests.crc32c.as_deref()),
                describe(item.size, None, item.md5(), Some(&item.crc32c))
            ))
            .with_hint("run `etd publish` again: the version is still a draft and etd replaces its own uploads")
            .into()),
            Found::Missing => Err(UserError::failure(format!("{url} is missing right after its upload")).into()),
        }
    }
}

/// What the upload sent (size and crc32c, counted as the body went out) must be what the manifest
/// describes. The file was checked just before the upload; this catches a change while it was
/// sent, which an origin that reports no checksum would not show.
fn check_sent(item: &Item, url: &url::Url, sent: &crate::net::upload::SentSlot) -> anyhow::Result<()> {
    let sent = *sent.lock().unwrap_or_else(|e| e.into_inner());
    let crc = format!("{:08x}", sent.crc32c);
    if sent.size == item.size && crc == item.crc32c {
        return Ok(());
    }
    Err(UserError::failure(format!(
        "{url}: the upload sent {} bytes with crc32c {crc}, but the manifest has {} bytes with crc32c {} for {}: \
         the file changed while it was sent; the manifest was not published",
        sent.size,
        item.size,
        item.crc32c,
        item.path.display()
    ))
    .with_hint("check the shards with `etd verify`, then run `etd publish` again: the version is still a draft and etd replaces its own uploads")
    .into())
}

/// Read the item's file once: its digests are checked against the manifest and its md5 kept
/// (computed even when the manifest has none: the origin may report md5 alone).
async fn learn_from_file(item: &Item) -> anyhow::Result<()> {
    let path = item.path.clone();
    let local = tokio::task::spawn_blocking(move || digest_file(&path, true)).await??;
    item.learn(&local)
}

/// Whether what the origin reports agrees with the item (size, and every digest reported). An
/// md5 the item does not know (not learnt from the file) is no agreement when it is all the
/// origin reports: the object would be judged by its size alone.
fn same(item: &Item, size: Option<u64>, d: &Reported) -> bool {
    let md5 = match (d.md5.as_deref(), item.md5()) {
        (Some(theirs), Some(ours)) => theirs == ours,
        (Some(_), None) => d.crc32c.is_some(),
        (None, _) => true,
    };
    size.is_none_or(|s| s == item.size) && md5 && d.crc32c.as_deref().is_none_or(|c| c == item.crc32c)
}

/// 401/403 from an origin: most often the token (missing, expired, or without the scope).
fn auth_hint(e: NetError) -> anyhow::Error {
    match &e {
        NetError::Refused { status: 401 | 403, .. } => anyhow::Error::new(
            UserError::failure(e.to_string())
                .with_hint("the origin refused the token: check `publish.token_file`, $BEARER_TOKEN_FILE or $BEARER_TOKEN, and that it grants storage.create on this path"),
        ),
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_base64_and_hex() {
        let mut r = Reported::default();
        parse_digest("md5=sZRqySSS0jR8YjW00mERhA==", &mut r);
        parse_digest("crc32c=NT3Yvg==", &mut r);
        assert_eq!(r.md5.as_deref(), Some("b1946ac92492d2347c6235b4d2611184"));
        assert_eq!(r.crc32c.as_deref(), Some("353dd8be"));
        let mut h = Reported::default();
        parse_digest("crc32c=353DD8BE, md5=sZRqySSS0jR8YjW00mERhA==", &mut h);
        assert_eq!(h, r);
    }

    #[test]
    fn what_an_upload_sent_must_be_what_the_manifest_says() {
        let item = Item {
            name: "s.tar".into(),
            path: "shards/s.tar".into(),
            size: 3,
            sha256: "00".into(),
            crc32c: format!("{:08x}", crc32c::crc32c(b"abc")),
            md5: Default::default(),
        };
        let url = url::Url::parse("https://origin.example/v1/s.tar").unwrap();
        let slot =
            |size, crc| std::sync::Arc::new(std::sync::Mutex::new(crate::net::upload::Sent { size, crc32c: crc }));
        check_sent(&item, &url, &slot(3, crc32c::crc32c(b"abc"))).unwrap();
        for (size, bytes) in [(3, &b"abd"[..]), (4, &b"abcd"[..])] {
            let err = check_sent(&item, &url, &slot(size, crc32c::crc32c(bytes))).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("changed while it was sent") && text.contains("shards/s.tar"), "{text}");
            assert!(err.downcast_ref::<UserError>().is_some());
        }
    }

    #[test]
    fn what_the_origin_reports_is_compared_with_what_the_item_knows() {
        let item = |md5: Option<&str>| Item {
            name: "s.tar".into(),
            path: "s.tar".into(),
            size: 3,
            sha256: "00".into(),
            crc32c: "0000000a".into(),
            md5: md5.map(|m| std::sync::OnceLock::from(m.to_string())).unwrap_or_default(),
        };
        let rep = |md5: Option<&str>, crc: Option<&str>| Reported {
            md5: md5.map(str::to_string),
            crc32c: crc.map(str::to_string),
        };
        let (known, unknown) = (item(Some("aa")), item(None));
        // (item, size, md5 reported, crc32c reported, same?)
        let cases = [
            (&known, Some(3), Some("aa"), Some("0000000a"), true),
            (&known, Some(3), Some("bb"), Some("0000000a"), false),
            (&known, Some(3), Some("aa"), None, true),
            (&known, Some(3), Some("bb"), None, false),
            (&known, Some(4), Some("aa"), None, false),
            (&known, None, None, Some("0000000a"), true),
            (&known, Some(3), None, Some("0000000b"), false),
            (&unknown, Some(3), Some("bb"), Some("0000000a"), true),
            (&unknown, Some(3), Some("bb"), Some("0000000b"), false),
            // md5 alone and not learnt: never judged by the size alone.
            (&unknown, Some(3), Some("aa"), None, false),
            (&unknown, Some(3), None, None, true),
        ];
        for (i, (item, size, md5, crc, want)) in cases.into_iter().enumerate() {
            assert_eq!(same(item, size, &rep(md5, crc)), want, "case {i}");
        }
    }

    #[test]
    fn journal_states_are_the_words_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("publish.jsonl");
        let mut j = PublishJournal::open(&path).unwrap();
        j.append("http://o/a", UploadState::Started).unwrap();
        j.append("http://o/b", UploadState::Started).unwrap();
        j.append("http://o/b", UploadState::Verified).unwrap();
        let text = fs_err::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"url\":\"http://o/a\",\"status\":\"started\"}\n{\"url\":\"http://o/b\",\"status\":\"started\"}\n\
             {\"url\":\"http://o/b\",\"status\":\"verified\"}\n"
        );
        // A state a newer etd wrote ends `started`; a torn last line is ignored.
        fs_err::write(
            &path,
            format!("{text}{{\"url\":\"http://o/a\",\"status\":\"abandoned\"}}\n{{\"url\":\"http://o/b\",\"sta"),
        )
        .unwrap();
        let j = PublishJournal::open(&path).unwrap();
        assert!(!j.started_not_verified("http://o/a"));
        assert!(!j.started_not_verified("http://o/b"));
        assert!(!j.started_not_verified("http://o/c"));
        let j = PublishJournal::open(&dir.path().join("none.jsonl")).unwrap();
        assert!(!j.started_not_verified("http://o/a"));
        fs_err::write(&path, "{\"url\":\"http://o/a\",\"status\":\"started\"}\n").unwrap();
        assert!(PublishJournal::open(&path).unwrap().started_not_verified("http://o/a"));
    }

    #[test]
    fn token_files_hold_a_token_or_wlcg_json() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        fs_err::write(&raw, "eyJhbGciOi.abc.def\n").unwrap();
        assert_eq!(token(Some(&raw)).unwrap().unwrap().expose(), "eyJhbGciOi.abc.def");
        let json = dir.path().join("json");
        fs_err::write(&json, r#"{"access_token": "eyJ.x.y", "expires_in": 1200}"#).unwrap();
        assert_eq!(token(Some(&json)).unwrap().unwrap().expose(), "eyJ.x.y");
    }
}
