//! `NetClient`: the only place etd makes HTTP requests. Every request passes its host's limiter,
//! a timeout and the retry policy; `Retry-After` and throttle messages pause the whole host.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::Method;

use super::limiter::HostLimiter;
use super::retry::{classify_error, classify_status, parse_throttle_message, Backoff, Verdict};
use super::Politeness;

/// Connect timeout for every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The body bound of a request that does not set one ([`Request::max_body`]): JSON, listings,
/// token answers and the like are far smaller.
pub const DEFAULT_MAX_BODY: u64 = 16 << 20;

/// The most of an error answer's body (4xx/5xx) etd reads: enough for the message it shows.
pub const ERROR_BODY_MAX: u64 = 64 << 10;

/// Redirects followed within one origin before the answer counts as a redirect loop.
pub const MAX_REDIRECTS: usize = 5;

/// The slowest transfer a request's total deadline allows for its body bound, in bytes per
/// second: the deadline is twice the idle timeout plus `max_body / MIN_TRANSFER_RATE`, so a
/// server that drips a byte every few seconds (the idle timeout never fires) cannot hold a
/// request for ever, and an honest large answer still has all the time it needs.
pub const MIN_TRANSFER_RATE: u64 = 64 << 10;

/// An answer with a success status and its whole body.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body provably arrived whole: as long as its `Content-Length`, or framed by chunked
    /// encoding or HTTP/2. A body delimited only by the connection closing could be cut short.
    pub whole: bool,
}

/// Retries of an answer that arrived whole but is not what was asked for: it is the archive's
/// answer, not a network fault, so one more try (a server caught mid-update) and no more.
pub const WHOLE_INVALID_RETRIES: u32 = 1;

/// The bytes of an answer etd refused (shown by their length only).
#[derive(Clone, PartialEq, Eq)]
pub struct RefusedBody(pub Vec<u8>);

impl std::fmt::Debug for RefusedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RefusedBody({} bytes)", self.0.len())
    }
}

/// A request that failed for good.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The server refused it (4xx other than 408/429): retrying cannot help.
    #[error("{method} {url} failed: HTTP {status}{}", excerpt(.body))]
    Refused { method: String, url: String, status: u16, body: String },
    /// Transient failures until the retry budget ran out: worth retrying later (exit 75).
    #[error(
        "{method} {url} failed after {} in {:.1}s: {last}",
        crate::report::plural(*.retries, "retry"),
        .elapsed.as_secs_f64()
    )]
    Exhausted { method: String, url: String, retries: u32, elapsed: Duration, last: String },
    /// Not a transient problem (bad URL, TLS configuration, ...).
    #[error("{method} {url} failed: {message}")]
    Fatal { method: String, url: String, message: String },
    /// The download could not be written on this side (a full disk, a read-only folder): the
    /// I/O error stays in the chain, so a full disk is told as such (exit 75).
    #[error("{method} {url}: cannot write {}", .path.display())]
    Local {
        method: String,
        url: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every connection to the origin was refused and nothing there has answered in this run:
    /// the server is not running or `base_url` names the wrong port (exit 75).
    #[error("nothing is listening at {origin} — is the server running?")]
    NothingListening { origin: String, attempts: u32 },
    /// The last answer was not what was asked for (an HTML error page instead of FITS, a table
    /// that does not parse): on two answers that arrived whole (see [`WHOLE_INVALID_RETRIES`]),
    /// else until the retry budget ran out. `body` is what came back.
    #[error("{method} {url}: invalid answer after {}: {reason}", crate::report::plural(*.retries, "retry"))]
    Invalid { method: String, url: String, retries: u32, reason: String, body: RefusedBody, headers: HeaderMap },
}

fn excerpt(body: &str) -> String {
    let t = body.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {}", t.chars().take(200).collect::<String>())
    }
}

/// A credential. It is only ever written into the header that carries it (marked sensitive);
/// `Debug` and `Display` show `[redacted]`, so it cannot reach a log, an error or a file by
/// accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A request to make.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    /// Form fields (`application/x-www-form-urlencoded`); may hold a password, so never printed.
    pub form: Option<Vec<(String, Secret)>>,
    /// Sent in the `Authorization` header, marked sensitive.
    pub auth: Option<Auth>,
    /// Upload this file as the body (opened again for every attempt), with its `Content-Length`.
    pub upload: Option<std::path::PathBuf>,
    /// Where the upload records the size and crc32c of what it sent.
    pub sent: Option<super::upload::SentSlot>,
    /// A small body sent from memory, with its content type (a WebDAV `PROPFIND` request).
    pub body: Option<(&'static str, Vec<u8>)>,
    /// Stream the answer into a file instead of memory, resuming what is already there.
    pub download: Option<DownloadTarget>,
    /// The largest body a success answer may have (for a download: the whole file), derived from
    /// what the request asks for. A `Content-Length` above it is refused before the body is read,
    /// and reading stops the moment the body passes it: the answer is invalid (one more try, then
    /// the unit fails as `invalid-answer`), and never more than this is held or written.
    pub max_body: u64,
}

/// Where a download goes. Each attempt asks for the bytes after what `part` already holds
/// (`Range: bytes=N-`, with `If-Range` when a validator is known); a `206` is appended, a `200`
/// replaces the file. Bytes written before an attempt fails stay, so the next one resumes.
#[derive(Clone, Debug)]
pub struct DownloadTarget {
    pub part: std::path::PathBuf,
    /// The object's `ETag` (or `Last-Modified`) when it was first seen.
    pub validator: Option<String>,
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `Authorization: Token <token>` (ATLAS, Django REST framework).
    Token(Secret),
    /// `Authorization: Bearer <token>` (Pelican/XRootD origins, WLCG and SciTokens).
    Bearer(Secret),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("headers", &self.headers)
            .field("form", &self.form.as_ref().map(|f| f.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()))
            .field("auth", &self.auth)
            .field("upload", &self.upload)
            .field("body", &self.body.as_ref().map(|(t, b)| (t, b.len())))
            .field("download", &self.download)
            .field("max_body", &self.max_body)
            .finish()
    }
}

impl Request {
    pub fn get(url: url::Url) -> Self {
        Request {
            method: Method::GET,
            url,
            headers: Vec::new(),
            form: None,
            auth: None,
            upload: None,
            sent: None,
            body: None,
            download: None,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Bound the answer's body to `bytes` (see [`Request::max_body`]).
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// The total time one attempt may take to receive its answer, headers and body (see
    /// [`MIN_TRANSFER_RATE`]); an upload adds the time to send its bytes at that rate.
    pub fn deadline(&self, timeout: Duration) -> Duration {
        timeout.saturating_mul(2).saturating_add(Duration::from_secs(self.max_body / MIN_TRANSFER_RATE))
    }

    pub fn new(method: Method, url: url::Url) -> Self {
        Request { method, ..Request::get(url) }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, content_type: &'static str, body: Vec<u8>) -> Self {
        self.body = Some((content_type, body));
        self
    }

    pub fn form(mut self, fields: Vec<(String, Secret)>) -> Self {
        self.form = Some(fields);
        self
    }

    pub fn auth(mut self, auth: Option<Auth>) -> Self {
        self.auth = auth;
        self
    }

    pub fn upload(mut self, path: std::path::PathBuf) -> Self {
        self.upload = Some(path);
        self
    }

    /// Record in `slot` the size and crc32c of what the upload's last attempt sent.
    pub fn record_sent(mut self, slot: super::upload::SentSlot) -> Self {
        self.sent = Some(slot);
        self
    }
}

/// Counters for progress and the final summary.
#[derive(Debug, Default)]
pub struct NetStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub bytes: AtomicU64,
}

/// The request path, shared by every task of a fetch.
pub struct NetClient {
    http: reqwest::Client,
    politeness: Politeness,
    share: u32,
    backoff: Backoff,
    hosts: Mutex<HashMap<String, Arc<HostLimiter>>>,
    /// Origins that answered at least once in this run (any status), and those found to have
    /// nothing listening (checked again only after they answer).
    origins: Mutex<Origins>,
    pub stats: NetStats,
}

#[derive(Default)]
struct Origins {
    answered: std::collections::HashSet<String>,
    silent: std::collections::HashSet<String>,
}

/// Retries of a refused connection to an origin that never answered before the run concludes
/// that nothing listens there (a server still starting up gets this many backoff delays).
pub const NOTHING_LISTENING_RETRIES: u32 = 2;

impl NetClient {
    /// A client obeying `politeness`, one of `share` tasks splitting it.
    pub fn new(politeness: Politeness, share: u32) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(format!("etd/{}", crate::VERSION))
            // XRootD's HTTP server matches header names case-sensitively (`Content-Length`,
            // `Want-Digest`): lower-case names make it store an empty upload.
            .http1_title_case_headers()
            .connect_timeout(CONNECT_TIMEOUT.min(politeness.timeout))
            // An idle timeout, not a total one: a large cutout may take minutes to arrive, but
            // a connection on which nothing arrives for this long has stalled.
            .read_timeout(politeness.timeout)
            // Redirects are followed within the origin only, and a few of them: an answer that
            // sends etd to another host (which must never see the archive's token) or round in
            // circles reaches `attempt` as the 3xx it is, and fails the unit.
            .redirect(reqwest::redirect::Policy::custom(|a| {
                let first = a.previous().first().map(|u| u.origin());
                if a.previous().len() > MAX_REDIRECTS || first.is_some_and(|o| o != a.url().origin()) {
                    a.stop()
                } else {
                    a.follow()
                }
            }))
            .build()?;
        let backoff = Backoff {
            initial: politeness.backoff_initial,
            max: politeness.backoff_max,
            disabled: std::env::var_os(crate::env_vars::ETD_TEST_NO_RETRY_DELAY).is_some(),
        };
        Ok(NetClient {
            http,
            politeness,
            share: share.max(1),
            backoff,
            hosts: Mutex::new(HashMap::new()),
            origins: Mutex::new(Origins::default()),
            stats: NetStats::default(),
        })
    }

    /// The limiter of `url`'s host (one per scheme, host and port) for reads (GET, HEAD) and
    /// writes (other methods). They are the same limiter unless `politeness.read_rate` is set.
    pub fn host_for(&self, url: &url::Url, method: &Method) -> Arc<HostLimiter> {
        let read = matches!(*method, Method::GET | Method::HEAD);
        let separate = self.politeness.read_rate.filter(|_| read);
        let key = format!(
            "{}://{}:{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0),
            if separate.is_some() { " reads" } else { "" }
        );
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let (p, share) = (&self.politeness, self.share);
        Arc::clone(hosts.entry(key).or_insert_with(|| {
            Arc::new(match separate {
                Some(rate) => HostLimiter::with_rate(p, rate, share),
                None => HostLimiter::new(p, share),
            })
        }))
    }

    /// The limiter of `url`'s host for reads (see `host_for`).
    pub fn host(&self, url: &url::Url) -> Arc<HostLimiter> {
        self.host_for(url, &Method::GET)
    }

    /// Wall-clock time the hosts were paused by `Retry-After` and throttle messages (summed over
    /// hosts; overlapping pauses of one host counted once).
    pub fn throttled(&self) -> Duration {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner()).values().map(|h| h.paused_total()).sum()
    }

    /// Send a request, retrying transient failures within the retry budget.
    pub async fn send(&self, req: &Request) -> Result<Fetched, NetError> {
        self.send_valid(req, |_| Ok(())).await
    }

    /// Send a request and check its answer with `valid`. An invalid answer that arrived whole
    /// (see [`Fetched::whole`]) is the archive's answer, not a network fault: it is retried
    /// [`WHOLE_INVALID_RETRIES`] time(s), then `NetError::Invalid` carries the reason and the bytes.
    /// One whose length nothing vouches for may have been cut short and is retried within the
    /// retry budget like a transport failure. Truncated bodies and resets never reach `valid`.
    pub async fn send_valid(
        &self,
        req: &Request,
        valid: impl Fn(&Fetched) -> Result<(), String>,
    ) -> Result<Fetched, NetError> {
        let host = self.host_for(&req.url, &req.method);
        let origin = req.url.origin().ascii_serialization();
        if self.origins().silent.contains(&origin) {
            return Err(NetError::NothingListening { origin, attempts: 0 });
        }
        let started = Instant::now();
        let mut retries = 0;
        let mut whole_invalid = 0;
        loop {
            let (outcome, server_wait) = self.attempt(&host, req).await;
            if !matches!(outcome, Err(Attempt::NoListener(_))) {
                self.origins().answered.insert(origin.clone());
            }
            let mut invalid = None;
            let last = match outcome {
                Ok(fetched) => match valid(&fetched) {
                    Ok(()) => return Ok(fetched),
                    Err(reason) => {
                        let last = format!("invalid answer: {reason}");
                        if fetched.whole {
                            whole_invalid += 1;
                        }
                        invalid = Some((reason, fetched));
                        last
                    }
                },
                Err(Attempt::Refused { status, body }) => {
                    return Err(NetError::Refused {
                        method: req.method.to_string(),
                        url: req.url.to_string(),
                        status,
                        body,
                    })
                }
                Err(Attempt::Fatal(message)) => {
                    return Err(NetError::Fatal { method: req.method.to_string(), url: req.url.to_string(), message })
                }
                Err(Attempt::Local(path, source)) => {
                    let (method, url) = (req.method.to_string(), req.url.to_string());
                    return Err(NetError::Local { method, url, path, source });
                }
                Err(Attempt::Unusable { status, reason, headers, body }) => {
                    // The server's own answer, delimited by the bound: as good as whole.
                    whole_invalid += 1;
                    let last = format!("invalid answer: {reason}");
                    invalid = Some((reason, Fetched { status, headers, body, whole: true }));
                    last
                }
                Err(Attempt::Transient(why)) => why,
                Err(Attempt::NoListener(why)) => {
                    if retries >= NOTHING_LISTENING_RETRIES.min(self.politeness.retries) {
                        let mut origins = self.origins();
                        if !origins.answered.contains(&origin) {
                            origins.silent.insert(origin.clone());
                            return Err(NetError::NothingListening { origin, attempts: retries + 1 });
                        }
                    }
                    why
                }
            };
            let whole_spent = whole_invalid > WHOLE_INVALID_RETRIES;
            if retries >= self.politeness.retries || (whole_spent && invalid.is_some()) {
                if let Some((reason, fetched)) = invalid {
                    return Err(NetError::Invalid {
                        method: req.method.to_string(),
                        url: req.url.to_string(),
                        retries,
                        reason,
                        body: RefusedBody(fetched.body),
                        headers: fetched.headers,
                    });
                }
                return Err(NetError::Exhausted {
                    method: req.method.to_string(),
                    url: req.url.to_string(),
                    retries,
                    elapsed: started.elapsed(),
                    last,
                });
            }
            retries += 1;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("{} {}: {last}; retry {retries}/{}", req.method, req.url, self.politeness.retries);
            match server_wait {
                // The server said how long: the whole host waits, every request to it.
                Some(wait) => host.pause_for(wait),
                None => tokio::time::sleep(self.backoff.delay(retries)).await,
            }
        }
    }

    fn origins(&self) -> std::sync::MutexGuard<'_, Origins> {
        self.origins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One try: (result, how long the server asked us to wait). The request holds its host's
    /// in-flight permit until its body is read, and all of it must end within its deadline.
    async fn attempt(&self, host: &HostLimiter, req: &Request) -> (Result<Fetched, Attempt>, Option<Duration>) {
        let slot = host.acquire().await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        // An upload has its own bytes to send in the same time.
        let sending = match &req.upload {
            Some(path) => tokio::fs::metadata(path).await.map(|m| m.len()).unwrap_or(0),
            None => req.body.as_ref().map_or(0, |(_, b)| b.len() as u64),
        };
        let deadline =
            req.deadline(self.politeness.timeout).saturating_add(Duration::from_secs(sending / MIN_TRANSFER_RATE));
        let outcome = match tokio::time::timeout(deadline, self.exchange(req)).await {
            Ok(outcome) => outcome,
            Err(_) => (
                Err(Attempt::Transient(format!(
                    "no complete answer within {} (the deadline of a request whose answer is at most {})",
                    crate::human::human_duration(deadline),
                    human_bytes(req.max_body)
                ))),
                None,
            ),
        };
        drop(slot);
        outcome
    }

    /// Send `req` and read its answer (see [`NetClient::attempt`]).
    async fn exchange(&self, req: &Request) -> (Result<Fetched, Attempt>, Option<Duration>) {
        let mut builder = self.http.request(req.method.clone(), req.url.clone());
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        if let Some(form) = &req.form {
            let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
            builder = builder.form(&fields);
        }
        if let Some((content_type, body)) = &req.body {
            builder = builder.header(reqwest::header::CONTENT_TYPE, *content_type).body(body.clone());
        }
        if let Some(path) = &req.upload {
            let file = match tokio::fs::File::open(path).await {
                Ok(f) => f,
                Err(e) => return (Err(Attempt::Fatal(format!("cannot read {}: {e}", path.display()))), None),
            };
            let len = match file.metadata().await {
                Ok(m) => m.len(),
                Err(e) => return (Err(Attempt::Fatal(format!("cannot read {}: {e}", path.display()))), None),
            };
            let body = super::upload::UploadBody::new(file, len, req.sent.clone());
            builder = builder.header(reqwest::header::CONTENT_LENGTH, len).body(reqwest::Body::wrap_stream(body));
        }
        if let Some(auth) = &req.auth {
            let text = match auth {
                Auth::Token(t) => format!("Token {}", t.expose()),
                Auth::Bearer(t) => format!("Bearer {}", t.expose()),
            };
            match reqwest::header::HeaderValue::from_str(&text) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    builder = builder.header(reqwest::header::AUTHORIZATION, value);
                }
                Err(_) => return (Err(Attempt::Fatal("the token is not valid in an HTTP header".into())), None),
            }
        }
        let mut have = 0;
        if let Some(dl) = &req.download {
            have = tokio::fs::metadata(&dl.part).await.map(|m| m.len()).unwrap_or(0);
            if have > 0 {
                builder = builder.header(reqwest::header::RANGE, format!("bytes={have}-"));
                if let Some(v) = &dl.validator {
                    builder = builder.header(reqwest::header::IF_RANGE, v);
                }
            }
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                if let Some(what) = malformed(&e) {
                    // The server answered, with something that is not HTTP: its answer, not a fault
                    // of the network.
                    let reason = format!("an answer that is not valid HTTP ({what})");
                    return (
                        Err(Attempt::Unusable { status: 0, reason, headers: HeaderMap::new(), body: Vec::new() }),
                        None,
                    );
                }
                return (Err(transport(&e)), None);
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let framed = response.version() >= reqwest::Version::HTTP_2
            || headers
                .get(reqwest::header::TRANSFER_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        // A HEAD answer's `Content-Length` is the size of what a GET would send, not of a body.
        let bodiless = req.method == Method::HEAD || matches!(status, 204 | 304);
        let announced = headers
            .get(reqwest::header::CONTENT_LENGTH)
            .filter(|_| !bodiless)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if (300..400).contains(&status) {
            // Followed redirects end in their target's answer: this one was not followed.
            let to = headers.get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("nowhere");
            let why = if response.url().origin() != req.url.origin() {
                format!("redirected from {} to {to} after another host; not followed", response.url())
            } else if to.starts_with('/') || url::Url::parse(to).is_ok_and(|u| u.origin() == req.url.origin()) {
                format!("more than {MAX_REDIRECTS} redirects (a redirect loop?), the last to {to}")
            } else {
                format!("a redirect to another host, not followed (the archive's credentials never leave it): {to}")
            };
            return (Err(Attempt::Refused { status, body: why }), None);
        }
        let over = |what: String| format!("{what}, the most this request can need; the rest was not read");
        if let (Some(dl), 200 | 206) = (&req.download, status) {
            let base = if status == 206 { have } else { 0 };
            if let Some(n) = announced.filter(|n| base.saturating_add(*n) > req.max_body) {
                let reason = format!(
                    "the answer announces {} (Content-Length), more than the {} this request can need; \
                     nothing was read",
                    human_bytes(n),
                    human_bytes(req.max_body)
                );
                return (Err(Attempt::Unusable { status, reason, headers, body: Vec::new() }), None);
            }
            let outcome = self.stream_into(response, &dl.part, status, have, req.max_body).await;
            let outcome = match outcome {
                Err(Attempt::Unusable { status, reason, body, .. }) => {
                    Err(Attempt::Unusable { status, reason: format!("{reason}; the rest was not read"), headers, body })
                }
                other => other.map(|()| Fetched { status, headers, body: Vec::new(), whole: true }),
            };
            return (outcome, None);
        }
        let success = (200..300).contains(&status);
        if let Some(n) = announced.filter(|n| success && *n > req.max_body) {
            let reason = format!(
                "the answer announces {} (Content-Length), more than the {} this request can need; nothing was read",
                human_bytes(n),
                human_bytes(req.max_body)
            );
            return (Err(Attempt::Unusable { status, reason, headers, body: Vec::new() }), None);
        }
        // An error answer is read for its message only.
        let bound = if success { req.max_body } else { req.max_body.min(ERROR_BODY_MAX) };
        let body = match read_bounded(response, bound).await {
            Ok(Bounded::Whole(b)) => b,
            Ok(Bounded::Over(b)) if success => {
                self.stats.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                let reason = over(format!("the answer goes on past {}", human_bytes(req.max_body)));
                return (Err(Attempt::Unusable { status, reason, headers, body: b }), None);
            }
            Ok(Bounded::Over(b)) => b,
            Err(e) => return (Err(transport(&e)), None),
        };
        self.stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        if success {
            let whole = framed || announced == Some(body.len() as u64);
            return (Ok(Fetched { status, headers, body, whole }), None);
        }
        let retry_after = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok());
        match classify_status(status, retry_after, SystemTime::now()) {
            Verdict::Fail => {
                let body = String::from_utf8_lossy(&body).into_owned();
                (Err(Attempt::Refused { status, body }), None)
            }
            Verdict::Retry { server_wait } => {
                let text = String::from_utf8_lossy(&body);
                let wait = server_wait.or_else(|| if status == 429 { parse_throttle_message(&text) } else { None });
                (Err(Attempt::Transient(format!("HTTP {status}"))), wait)
            }
        }
    }
}

impl NetClient {
    /// Write a `200`/`206` answer's body into `part` (appending a `206` that continues it).
    async fn stream_into(
        &self,
        mut response: reqwest::Response,
        part: &std::path::Path,
        status: u16,
        have: u64,
        max_size: u64,
    ) -> Result<(), Attempt> {
        use tokio::io::AsyncWriteExt;
        let continues = status == 206
            && response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|start| start.parse::<u64>().ok())
                == Some(have);
        if status == 206 && !continues {
            return Err(Attempt::Transient("the server answered a range that does not continue the file".into()));
        }
        let fatal = |e: std::io::Error| Attempt::Local(part.to_path_buf(), e);
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(continues)
            .truncate(!continues)
            .open(part)
            .await
            .map_err(fatal)?;
        let mut size = if continues { have } else { 0 };
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    let room = max_size.saturating_sub(size);
                    let take = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                    file.write_all(&bytes[..take]).await.map_err(fatal)?;
                    self.stats.bytes.fetch_add(take as u64, Ordering::Relaxed);
                    size += take as u64;
                    if take < bytes.len() {
                        // Bytes past the size the object had are not the object: none of this
                        // answer can be trusted, so nothing of it is left to resume from.
                        drop(file);
                        tokio::fs::remove_file(part).await.map_err(fatal)?;
                        return Err(Attempt::Unusable {
                            status,
                            reason: format!("the file goes on past {}, its size when asked", human_bytes(max_size)),
                            headers: HeaderMap::new(),
                            body: Vec::new(),
                        });
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // What arrived is kept: the next attempt asks for the rest.
                    file.flush().await.map_err(fatal)?;
                    return Err(transport(&e));
                }
            }
        }
        file.flush().await.map_err(fatal)?;
        file.sync_all().await.map_err(fatal)
    }
}

/// What hyper says of a response head it could not parse (too large, a bad header or status
/// line), if that is why `e` happened.
fn malformed(e: &reqwest::Error) -> Option<String> {
    const PARSE: [&str; 6] = [
        "message head is too large",
        "invalid HTTP header parsed",
        "invalid HTTP status-code parsed",
        "invalid HTTP version parsed",
        "invalid content-length parsed",
        "invalid transfer-encoding parsed",
    ];
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |c| c.source()).find_map(|c| {
        let text = c.to_string();
        PARSE.iter().find(|p| text.contains(*p)).map(|p| p.to_string())
    })
}

/// A body read up to a bound.
enum Bounded {
    Whole(Vec<u8>),
    /// The body went on past the bound: its first `bound` bytes; the rest was not read.
    Over(Vec<u8>),
}

/// Read `response`'s body, at most `bound` bytes of it; never more is held in memory.
async fn read_bounded(mut response: reqwest::Response, bound: u64) -> Result<Bounded, reqwest::Error> {
    let cap = usize::try_from(bound).unwrap_or(usize::MAX);
    let hint = response.content_length().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let mut body = Vec::with_capacity(hint.min(cap).min(1 << 20));
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if body.capacity() - body.len() < chunk.len().min(room) {
            // Grow by doubling, but never past the bound.
            let want = (body.capacity() * 2).max(body.len() + chunk.len()).min(cap);
            body.reserve_exact(want - body.len());
        }
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Bounded::Over(body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bounded::Whole(body))
}

/// A size in messages: exact, as a `Content-Length` is.
fn human_bytes(n: u64) -> String {
    crate::report::plural(n, "byte")
}

enum Attempt {
    Transient(String),
    /// Writing the download failed on this side.
    Local(std::path::PathBuf, std::io::Error),
    /// An answer the server sent whole but etd cannot use: a success answer past the request's
    /// body bound (see [`Request::max_body`]), or a head that is not valid HTTP. An invalid
    /// answer, not a network fault. `body`: what was read, at most the bound.
    Unusable {
        status: u16,
        reason: String,
        headers: HeaderMap,
        body: Vec<u8>,
    },
    /// The connection was refused (nothing listens at the port): transient, unless the origin
    /// never answered.
    NoListener(String),
    Refused {
        status: u16,
        body: String,
    },
    Fatal(String),
}

fn transport(e: &reqwest::Error) -> Attempt {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    let refused = std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |c| c.source())
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
    match classify_error(e) {
        Verdict::Retry { .. } if refused => Attempt::NoListener(text),
        Verdict::Retry { .. } => Attempt::Transient(text),
        Verdict::Fail => Attempt::Fatal(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-connection HTTP/1.1 server on loopback that takes a `PUT`, calls `between` once the
    /// head is in (before it reads the body), reads the body and answers 201; returns the body.
    fn put_server(between: impl FnOnce() + Send + 'static) -> (url::Url, std::thread::JoinHandle<Vec<u8>>) {
        use std::io::{BufRead, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = url::Url::parse(&format!("http://{}/up/s.tar", listener.local_addr().unwrap())).unwrap();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
                if line == "\r\n" {
                    break;
                }
            }
            between();
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            (&stream).write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n").unwrap();
            body
        });
        (url, handle)
    }

    #[test]
    fn an_upload_records_what_it_sent_not_what_the_file_became() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tar");
        // 32 MiB: more than loopback's socket buffers hold, so the end of the file is read only
        // after the server has read some of the body.
        let data: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
        fs_err::write(&path, &data).unwrap();
        let client = NetClient::new(crate::publish::https::politeness(), 1).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let put = |url: url::Url, slot: &super::super::upload::SentSlot| {
            let req = Request::new(Method::PUT, url).upload(path.clone()).record_sent(slot.clone());
            runtime.block_on(client.send(&req)).unwrap();
        };

        let (url, server) = put_server(|| {});
        let slot = super::super::upload::SentSlot::default();
        put(url, &slot);
        assert_eq!(server.join().unwrap(), data);
        let sent = *slot.lock().unwrap();
        assert_eq!((sent.size, sent.crc32c), (data.len() as u64, crc32c::crc32c(&data)));

        // The file's last MiB changes while it is sent: what was sent is counted, not the file.
        let changer = path.clone();
        let (url, server) = put_server(move || {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = fs_err::OpenOptions::new().write(true).open(&changer).unwrap();
            f.seek(SeekFrom::End(-(1 << 20))).unwrap();
            f.write_all(&vec![7u8; 1 << 20]).unwrap();
        });
        let slot = super::super::upload::SentSlot::default();
        put(url, &slot);
        let received = server.join().unwrap();
        assert_ne!(received, data, "the server saw the changed end");
        let sent = *slot.lock().unwrap();
        assert_eq!((sent.size, sent.crc32c), (received.len() as u64, crc32c::crc32c(&received)));
        assert_ne!(sent.crc32c, crc32c::crc32c(&data));
    }

    #[test]
    fn the_deadline_grows_with_the_body_bound() {
        let url = url::Url::parse("http://127.0.0.1:9/x").unwrap();
        let t = Duration::from_secs(60);
        assert_eq!(Request::get(url.clone()).max_body(0).deadline(t), Duration::from_secs(120));
        // A 240-pixel cutout (524,288 bytes): 8 s more.
        assert_eq!(Request::get(url.clone()).max_body(524_288).deadline(t), Duration::from_secs(128));
        // The default bound of 16 MiB: 256 s more.
        assert_eq!(Request::get(url).deadline(t), Duration::from_secs(376));
    }
}
