//! Emulator of the ATLAS forced-photometry server (`https://fallingstar-data.com/forcedphot/`,
//! source `lukeshingles/atlasserver`, a Django REST framework app).
//!
//! # Faithful to docs/archives.md section 2 (and the 2026 server source it summarises)
//! - Paths under `/forcedphot/`, trailing slashes included: `api-token-auth/` (POST), `queue/`
//!   (GET list, POST create), `queue/<id>/` (GET, PUT, PATCH, DELETE) and
//!   `static/results/job{id:05}.txt`. Without the slash Django's `APPEND_SLASH` answers 301 to
//!   the slashed path, for a POST too (its body is then lost). Unknown paths: Django's 404 page.
//! - Authentication: `Authorization: Token <key>` and HTTP Basic, with DRF's 401 messages for
//!   malformed headers and bad credentials, and `WWW-Authenticate: Basic realm="api"` (Basic is
//!   the first authenticator). Anonymous writes: 401 "Authentication credentials were not
//!   provided."; anonymous list: 403; a task's detail is readable anonymously.
//! - Token endpoint: form or JSON `username`/`password`, `200 {"token"}`, DRF's field errors
//!   and `400 {"non_field_errors": ["Unable to log in with provided credentials."]}`.
//! - Submissions are validated like `ForcePhotTaskSerializer`: DRF field parsing (floats with
//!   Python's spellings, `radec_epoch_year` as decimal(7,1), boolean spellings, 300-character
//!   strings), form semantics (last value wins; an omitted boolean is false in a form but keeps
//!   the model default in JSON), the `validate_<field>` hooks whose dict errors DRF nests
//!   (`{"ra": {"ra": "ra must be a finite floating-point number."}}`), and `validate()` (an
//!   `mpc_name` or both coordinates; `mjd_max` > 0 and > `mjd_min`, whose default is now - 30 d
//!   rounded to 5 decimals). `radeclist` follows `splitradeclist`: at most 100 non-blank lines,
//!   `ra,dec` / `ra dec` / six-token sexagesimal / `mpc <name>`, astrocalc's ranges and
//!   sexagesimal patterns, `{"radeclist": "Error on line N: ..."}`, one task per line and a JSON
//!   list in reply. Bodies: JSON, url-encoded or multipart; others 415; bad JSON 400.
//! - `MAX_USER_TASKS` (`max_queued`) counts the user's unstarted tasks and is checked before
//!   validation, with the 2026 text `ERROR: You have too many queued tasks (Q queued + N
//!   requested > MAX).` (docs/archives.md abbreviates it to "(… > 500)").
//! - 201 with the 2026 serializer's fields in order, absolute `url` (built from the request's
//!   `Host`, as Django does) and a `Location` header for single tasks.
//! - Lifecycle: queued (`starttimestamp` null) → running → finished; `queuepos` until finished;
//!   `result_url` = `{BASE}/static/results/job{id:05}.txt` only for a finished task with data;
//!   `error_msg` "No data returned" otherwise; `waittime`/`runtime` in seconds to 0.1;
//!   `attempt_count`; `callback_url` shown to the owner only.
//! - List: the caller's live tasks, newest first, DRF cursor pagination with atlasserver's
//!   `pagefirsttaskposition`, `taskcount` and "previous is top" link, `pagesize` (default 6, at
//!   most 100), `started=true|false`, `ordering=`; list and detail carry an `ETag` and answer
//!   `If-None-Match` with 304.
//! - DELETE by the owner: 204 with no body. A finished task is archived (result file gone, its
//!   detail answers 404 `Page not found`, `text/html` as Django's `HttpResponseNotFound`); an
//!   unfinished one is removed (its detail answers DRF's 404 `{"detail": "No Task matches the
//!   given query."}`). Anyone else gets 403 "You must be the owner of this object." (the 2026
//!   tests pin 403, not 404: the detail queryset is not scoped to the owner).
//! - Throttling as DRF's `SimpleRateThrottle` (a history of request times in a sliding window;
//!   wait = window − age of the oldest; refused requests are not recorded), applied after
//!   authentication and permissions and before the view, so invalid submissions use budget.
//!   Writes (POST/PUT/PATCH/DELETE) per user at `write_rate_per_min`; reads (2026) in their own
//!   scope at `read_rate_per_min`; anonymous callers keyed by address. 429 with `{"detail":
//!   "Request was throttled. Expected available in N seconds."}` ("1 second." when N is 1) and
//!   `Retry-After: N`.
//! - The 2026 failed-login budget: after 10 failed password checks from one address within
//!   600 s, the token endpoint and Basic headers answer 429 "Too many failed login attempts from
//!   this address. Please wait a few minutes." (no `Retry-After`, as DRF omits it).
//! - Result files are the real fixtures byte for byte, as `text/plain`.
//!
//! # Invented or simplified
//! - Time: every task is queued for [`Config::queue_time`] and then runs for
//!   [`Config::run_time`], counted from its own submission (no shared runner, no round-robin);
//!   `queuepos` is its rank among unfinished tasks by id. Ids start at 1.
//! - Results: a fixture picked by a stable hash of (ra, dec) (of the name for `mpc_name` tasks);
//!   [`AtlasEmulator::set_result_for`] overrides are fixed when a task is submitted. `NoData` and
//!   `Error` tasks have no result file.
//! - [`Config::time_scale`] divides the throttle and login windows; `Retry-After` and the
//!   message then state the scaled wait, rounded up, so a client that obeys them is right.
//! - Not emulated: HTML pages (an `Accept` without JSON gets 406 here; the real server would
//!   render HTML), image requests, previews and PDF plots (their URLs are null), completion
//!   callbacks (`callback_url` is only checked to be `https://`, with an invented message),
//!   `queuepositions.json`, the schema, session login, `Range` requests for result files.
//!   OPTIONS answers carry no `actions`. `?ordering=timestamp` sorts by id.
//! - ETags are a hash of the body, not the server's aggregate.
//! - Faults, latency and the meter are test instruments; so is [`FakeResult::Bytes`], a result
//!   file of given bytes.

mod body;
mod json;
mod paging;
mod radeclist;
mod store;
mod throttle;
mod validate;
mod views;

use crate::hostile::{self, Hostile, HostileFault};
use crate::http::{self, Conn, ReadOutcome, Request, Response};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What a position yields instead of its default fixture.
#[derive(Clone, Debug)]
pub enum FakeResult {
    /// One of the real result files by name (see [`crate::fixtures::ATLAS_RESULTS`]).
    Fixture(&'static str),
    /// The task finishes with `error_msg` "No data returned" and no result file.
    NoData,
    /// The task finishes with this `error_msg` and no result file.
    Error(String),
    /// The task finishes and its result file is exactly these bytes, served whole (a broken
    /// answer for the reject path: bad numbers, not UTF-8, an HTML page).
    Bytes(Vec<u8>),
}

/// Deterministic faults. A fault with period `n` hits the requests whose salted FNV-1a hash of
/// method, target and body is divisible by `n` (`1`: all, `0`: none), and only the first time
/// that exact request arrives, so a retry succeeds. A reset wins over a 503. Faults strike
/// before the request is processed (no task is created).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer 503 Service Unavailable.
    pub every_nth_503: Option<u64>,
    /// Close the connection without answering (SO_LINGER 0, so the client sees a reset).
    pub every_nth_reset: Option<u64>,
    /// The first this many GETs of each result file announce the whole `Content-Length` but
    /// send only half the body, then close (counted per file in [`Meter::result_reads`]).
    pub truncate_result_reads: u64,
    /// A hostile answer (see [`crate::hostile`]) to the result-file GETs it picks, on every
    /// attempt; `bad-utf8-json` applies to task GETs (`/queue/<id>/`) instead.
    pub hostile: Option<HostileFault>,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `(username, password, token)`; user ids are positions + 1.
    pub users: Vec<(String, String, String)>,
    /// How long a task stays queued before it starts.
    pub queue_time: Duration,
    /// How long a task runs before it finishes.
    pub run_time: Duration,
    /// Writes (non-GET) per user per 60 s window (`forcephottasks`).
    pub write_rate_per_min: u32,
    /// Reads per caller per 60 s window (`forcephotread`, 2026); `None` = reads unthrottled.
    pub read_rate_per_min: Option<u32>,
    /// `MAX_USER_TASKS`: unstarted tasks a user may have.
    pub max_queued: usize,
    /// Throttle windows (and `Retry-After`) are divided by this: with 60.0 the "60 s" window
    /// lasts 1 s. Must be finite and positive.
    pub time_scale: f64,
    /// Added before every answer.
    pub latency: Duration,
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            users: vec![("etd".into(), "secret".into(), "0123456789abcdef0123456789abcdef01234567".into())],
            queue_time: Duration::from_millis(300),
            run_time: Duration::from_millis(300),
            write_rate_per_min: 60,
            read_rate_per_min: Some(600),
            max_queued: 500,
            time_scale: 1.0,
            latency: Duration::ZERO,
            faults: Faults::default(),
        }
    }
}

/// Politeness as the server saw it.
#[derive(Clone, Debug, Serialize)]
pub struct Meter {
    pub requests: u64,
    /// Requests with a method other than GET, HEAD or OPTIONS.
    pub writes: u64,
    pub reads: u64,
    /// `"api-token-auth"`, `"queue-list"`, `"queue-detail"`, `"result"`, `"other"`.
    pub by_route: BTreeMap<String, u64>,
    /// Reads (GET or HEAD) of each result file by name (`job00001.txt`), whatever the answer.
    pub result_reads: BTreeMap<String, u64>,
    pub status_counts: BTreeMap<u16, u64>,
    /// 429 answers from the rate throttles.
    pub throttled: u64,
    /// Most writes to the queue endpoints by one user inside any (60 s / time_scale) window,
    /// counting every authenticated write that reached the throttle (refused ones too; not
    /// injected faults or 401s).
    pub max_writes_in_any_window: usize,
    /// Authenticated writes arriving more than 100 ms after a write 429 to that user (the grace
    /// covers requests already in flight) and before its `Retry-After` ran out.
    pub writes_during_retry_after: u64,
    pub posts: u64,
    pub deletes: u64,
    /// `Authorization` schemes as sent (`"Token"`, `"Basic"`; `""` for none).
    pub authorization_headers_seen: BTreeSet<String>,
    /// Most unstarted tasks one user had right after a submission.
    pub max_queued_seen: usize,
    /// Distinct `User-Agent` values (`""` for none).
    pub user_agents: BTreeSet<String>,
}

/// One task as the emulator holds it, for test assertions.
#[derive(Clone, Debug, Serialize)]
pub struct TaskSnapshot {
    pub id: u64,
    pub user: String,
    pub mpc_name: Option<String>,
    pub ra: Option<f64>,
    pub dec: Option<f64>,
    pub comment: Option<String>,
    pub mjd_min: Option<f64>,
    pub mjd_max: Option<f64>,
    pub use_reduced: bool,
    /// `"queued"`, `"running"`, `"finished"`, `"archived"` or `"cancelled"`.
    pub state: &'static str,
    /// Deleted by its owner (archived if it had finished, cancelled if not).
    pub deleted: bool,
}

/// Exactly the result file served by default for a position.
pub fn result_text_for(ra: f64, dec: f64) -> String {
    store::default_fixture(ra, dec).to_string()
}

#[derive(Default)]
struct MeterState {
    requests: u64,
    writes: u64,
    reads: u64,
    by_route: BTreeMap<String, u64>,
    result_reads: BTreeMap<String, u64>,
    status_counts: BTreeMap<u16, u64>,
    throttled: u64,
    posts: u64,
    deletes: u64,
    auth_schemes: BTreeSet<String>,
    user_agents: BTreeSet<String>,
    max_queued_seen: usize,
    writes_during_retry_after: u64,
    /// Write arrivals per caller, ms since start.
    write_arrivals: HashMap<String, Vec<f64>>,
    /// Write 429s per caller: (sent ms, Retry-After ms).
    retry_windows: HashMap<String, Vec<(f64, f64)>>,
}

pub(crate) struct State {
    store: store::Store,
    throttle: throttle::RateThrottle,
    logins: throttle::LoginFailures,
}

pub(crate) struct Shared {
    addr: SocketAddr,
    start: Instant,
    cfg: Config,
    timing: store::Timing,
    faults: RwLock<Faults>,
    state: Mutex<State>,
    meter: Mutex<MeterState>,
    attempts: Mutex<HashMap<u64, u64>>,
}

impl Shared {
    fn ms(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }

    fn connect_addr(&self) -> SocketAddr {
        http::connect_addr(self.addr)
    }

    fn scaled(&self, d: Duration) -> Duration {
        Duration::from_secs_f64(d.as_secs_f64() / self.cfg.time_scale)
    }

    fn record_arrival(&self, req: &Request) {
        let mut m = self.meter.lock().unwrap();
        m.requests += 1;
        if views::is_safe(&req.method) {
            m.reads += 1;
        } else {
            m.writes += 1;
        }
        match req.method.as_str() {
            "POST" => m.posts += 1,
            "DELETE" => m.deletes += 1,
            _ => {}
        }
        let route = views::route(&req.path);
        *m.by_route.entry(route.name().to_string()).or_default() += 1;
        if let views::Route::Result(name) = route {
            *m.result_reads.entry(name).or_default() += 1;
        }
        m.user_agents.insert(req.header("user-agent").unwrap_or("").to_string());
        let scheme = req.header("authorization").and_then(|a| a.split_whitespace().next()).unwrap_or("");
        m.auth_schemes.insert(scheme.to_string());
    }

    /// Whether this answer (a result file read) is cut short by [`Faults::truncate_result_reads`].
    fn cut_short(&self, req: &Request, resp: &Response, faults: &Faults) -> bool {
        let views::Route::Result(name) = views::route(&req.path) else { return false };
        let reads = self.meter.lock().unwrap().result_reads.get(&name).copied().unwrap_or(0);
        req.method == "GET" && resp.status == 200 && reads <= faults.truncate_result_reads
    }

    fn record_status(&self, status: u16) {
        *self.meter.lock().unwrap().status_counts.entry(status).or_default() += 1;
    }

    /// A write to the queue endpoints by `ident` that got past authentication.
    fn note_write(&self, ident: &str, at: Instant) {
        let t = self.ms(at);
        let mut m = self.meter.lock().unwrap();
        let during =
            m.retry_windows.get(ident).is_some_and(|w| w.iter().any(|&(sent, ra)| t > sent + 100.0 && t < sent + ra));
        if during {
            m.writes_during_retry_after += 1;
        }
        m.write_arrivals.entry(ident.to_string()).or_default().push(t);
    }

    fn note_throttled(&self, ident: &str, write: bool, at: Instant, retry_after_secs: u64) {
        let t = self.ms(at);
        let mut m = self.meter.lock().unwrap();
        m.throttled += 1;
        if write {
            m.retry_windows.entry(ident.to_string()).or_default().push((t, retry_after_secs as f64 * 1000.0));
        }
    }

    fn note_queued(&self, queued: usize) {
        let mut m = self.meter.lock().unwrap();
        m.max_queued_seen = m.max_queued_seen.max(queued);
    }

    /// Failed password checks from `addr` in the current (scaled) 600 s window.
    fn login_failures(&self, addr: IpAddr, increment: bool) -> u32 {
        let window = self.scaled(Duration::from_secs(600));
        self.state.lock().unwrap().logins.count(&addr.to_string(), window, Instant::now(), increment)
    }

    /// Counts an attempt at a request key; true for the first.
    fn first_attempt(&self, key: u64) -> bool {
        let mut a = self.attempts.lock().unwrap();
        let n = a.entry(key).or_default();
        *n += 1;
        *n == 1
    }
}

/// A running emulator; dropping it stops accepting and closes open connections.
pub struct AtlasEmulator {
    shared: Arc<Shared>,
    _acceptor: http::Acceptor,
}

impl AtlasEmulator {
    /// Binds `127.0.0.1:0` and serves on background threads.
    pub fn start(cfg: Config) -> io::Result<AtlasEmulator> {
        AtlasEmulator::start_on("127.0.0.1:0", cfg)
    }

    /// Binds `addr` (e.g. `127.0.0.1:8080`) and serves on background threads.
    pub fn start_on(addr: &str, cfg: Config) -> io::Result<AtlasEmulator> {
        if !(cfg.time_scale.is_finite() && cfg.time_scale > 0.0) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "time_scale must be finite and positive"));
        }
        let listener = TcpListener::bind(addr)?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            start: Instant::now(),
            timing: store::Timing { queue: cfg.queue_time, run: cfg.run_time },
            faults: RwLock::new(cfg.faults.clone()),
            cfg,
            state: Mutex::new(State {
                store: store::Store::default(),
                throttle: throttle::RateThrottle::default(),
                logins: throttle::LoginFailures::default(),
            }),
            meter: Mutex::new(MeterState::default()),
            attempts: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let _acceptor = http::Acceptor::start(listener, "atlas", move |stream| {
            let _ = serve_connection(stream, &s);
        })?;
        Ok(AtlasEmulator { shared, _acceptor })
    }

    /// `http://127.0.0.1:PORT/forcedphot` (the service lives under `/forcedphot/`).
    pub fn base_url(&self) -> String {
        format!("http://{}/forcedphot", self.shared.connect_addr())
    }

    /// Replaces the faults (attempt counts are kept; see [`AtlasEmulator::forget_attempts`]).
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.write().unwrap() = faults;
    }

    /// Forgets which requests were already seen, so faults fire again.
    pub fn forget_attempts(&self) {
        self.shared.attempts.lock().unwrap().clear();
    }

    /// A snapshot of the meter.
    pub fn meter(&self) -> Meter {
        let window = self.shared.scaled(Duration::from_secs(60)).as_secs_f64() * 1000.0;
        let m = self.shared.meter.lock().unwrap();
        let mut max_writes = 0;
        for arrivals in m.write_arrivals.values() {
            let mut a = arrivals.clone();
            a.sort_by(f64::total_cmp);
            let mut lo = 0;
            for hi in 0..a.len() {
                while a[hi] - a[lo] >= window {
                    lo += 1;
                }
                max_writes = max_writes.max(hi - lo + 1);
            }
        }
        Meter {
            requests: m.requests,
            writes: m.writes,
            reads: m.reads,
            by_route: m.by_route.clone(),
            result_reads: m.result_reads.clone(),
            status_counts: m.status_counts.clone(),
            throttled: m.throttled,
            max_writes_in_any_window: max_writes,
            writes_during_retry_after: m.writes_during_retry_after,
            posts: m.posts,
            deletes: m.deletes,
            authorization_headers_seen: m.auth_schemes.clone(),
            max_queued_seen: m.max_queued_seen,
            user_agents: m.user_agents.clone(),
        }
    }

    /// Clears the meter (tasks and throttle histories are kept).
    pub fn reset_meter(&self) {
        *self.shared.meter.lock().unwrap() = MeterState::default();
    }

    /// Every task ever created, by id.
    pub fn tasks(&self) -> Vec<TaskSnapshot> {
        let now = Instant::now();
        let st = self.shared.state.lock().unwrap();
        st.store
            .tasks
            .values()
            .map(|t| TaskSnapshot {
                id: t.id,
                user: self.shared.cfg.users.get(t.user).map_or_else(String::new, |u| u.0.clone()),
                mpc_name: t.fields.mpc_name.clone(),
                ra: t.fields.ra,
                dec: t.fields.dec,
                comment: t.fields.comment.clone(),
                mjd_min: t.fields.mjd_min,
                mjd_max: t.fields.mjd_max,
                use_reduced: t.fields.use_reduced,
                state: t.state(now, &self.shared.timing),
                deleted: t.deleted,
            })
            .collect()
    }

    /// Makes tasks submitted from now on at (ra, dec) (within 1e-9 deg) yield `result`.
    ///
    /// # Panics
    /// On a [`FakeResult::Fixture`] name that is not one of the fixtures.
    pub fn set_result_for(&self, ra: f64, dec: f64, result: FakeResult) {
        if let FakeResult::Fixture(name) = &result {
            assert!(
                store::fixture(name).is_some(),
                "unknown ATLAS fixture {name:?} (one of {:?})",
                crate::fixtures::ATLAS_RESULTS
            );
        }
        self.shared.state.lock().unwrap().store.overrides.push((ra, dec, result));
    }

    /// Simulates expiry: the task is archived, its result file goes and its detail answers 404.
    pub fn archive_task(&self, id: u64) {
        if let Some(t) = self.shared.state.lock().unwrap().store.tasks.get_mut(&id) {
            if !t.cancelled {
                t.archived = true;
            }
        }
    }
}

const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(b"\0") {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

enum Fault {
    Reset,
    Unavailable,
}

fn choose_fault(f: &Faults, req: &Request) -> Option<Fault> {
    let picks = |n: Option<u64>, salt: &str| {
        n.is_some_and(|n| {
            n > 0
                && fnv1a(&[salt.as_bytes(), req.method.as_bytes(), req.target.as_bytes(), &req.body]).is_multiple_of(n)
        })
    };
    if picks(f.every_nth_reset, "reset") {
        Some(Fault::Reset)
    } else if picks(f.every_nth_503, "503") {
        Some(Fault::Unavailable)
    } else {
        None
    }
}

fn write_response(stream: &mut TcpStream, resp: &Response, head_only: bool, keep_alive: bool) -> io::Result<()> {
    let mut out = resp.head_bytes(keep_alive);
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    stream.write_all(&out)?;
    stream.flush()
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr()?.ip();
    let mut conn = Conn::new(stream);
    loop {
        let req = match conn.read_request()? {
            ReadOutcome::Eof => return Ok(()),
            ReadOutcome::Bad(status, msg) => {
                shared.record_status(status);
                let _ = write_response(&mut conn.stream, &Response::text(status, msg), false, false);
                return Ok(());
            }
            ReadOutcome::Request(r) => r,
        };
        shared.record_arrival(&req);
        let faults = shared.faults.read().unwrap().clone();
        if !shared.cfg.latency.is_zero() {
            std::thread::sleep(shared.cfg.latency);
        }
        let hostile_route = |h: &HostileFault| match (h.kind == Hostile::BadUtf8Json, views::route(&req.path)) {
            (true, views::Route::Detail(_)) | (false, views::Route::Result(_)) => req.method == "GET",
            _ => false,
        };
        if let Some(h) = faults.hostile.as_ref().filter(|h| hostile_route(h) && h.hits(&req.target)) {
            let normal = views::respond(shared, &req, peer);
            shared.record_status(normal.status);
            if normal.status != 200 {
                // Not there yet (a result before its task finished): answered as it is.
                write_response(&mut conn.stream, &normal, false, false)?;
            } else if h.kind == Hostile::BadUtf8Json {
                let bad = Response::new(200, "application/json", hostile::BAD_UTF8_JSON.to_vec());
                write_response(&mut conn.stream, &bad, false, false)?;
            } else {
                hostile::answer(&mut conn.stream, &h.kind, &req.target, &normal)?;
            }
            let _ = conn.stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        let key = fnv1a(&[req.method.as_bytes(), req.target.as_bytes(), &req.body]);
        let fault = if shared.first_attempt(key) { choose_fault(&faults, &req) } else { None };
        let resp = match fault {
            Some(Fault::Reset) => {
                http::abort(conn.stream);
                return Ok(());
            }
            Some(Fault::Unavailable) => Response::text(503, "Service Unavailable"),
            None => views::respond(shared, &req, peer),
        };
        shared.record_status(resp.status);
        if shared.cut_short(&req, &resp, &faults) {
            let mut out = resp.head_bytes(false);
            out.extend_from_slice(&resp.body[..resp.body.len() / 2]);
            let _ = conn.stream.write_all(&out);
            let _ = conn.stream.flush();
            let _ = conn.stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        write_response(&mut conn.stream, &resp, req.method == "HEAD", req.keep_alive)?;
        if !req.keep_alive {
            let _ = conn.stream.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
}
