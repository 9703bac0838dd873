//! Emulator of the Pan-STARRS1 image cutout service at MAST (`ps1images.stsci.edu`).
//!
//! # Faithful to docs/archives.md section 1
//! - Paths: `GET`/`POST /cgi-bin/ps1filenames.py` and `GET /cgi-bin/fitscut.cgi`; anything else is 404.
//! - `ps1filenames.py` parameters `ra`, `dec`, `filters` (default `grizy`), `type` (default `stack`,
//!   comma-separated from the eight types of the STScI docstring), `skycell`/`SKYCELL`, and the
//!   bulk `POST` (multipart `file` of `ra dec` lines plus `filters`/`type` fields). The answer is
//!   `text/plain` with exactly the header `projcell subcell ra dec filter mjd type filename shortname
//!   badflag` and one space-separated row per position x band x type (x warp epoch); stacks have
//!   `mjd` `0.0` and `badflag` `0`; file names follow the documented `rings.v3.skycell` layout,
//!   warps are named `…wrp.{band}.{MJDint}_{5-digit frac}.fits` with the MJD truncated to 5
//!   decimals. Positions are echoed like Python's `repr(float)`; skycell queries give the skycell
//!   centre. Dec < -30: header-only body.
//! - `fitscut.cgi`: case-insensitive parameter names; `red` (+ `green`/`blue`), `ra`/`dec` or
//!   `x`/`y` with `wcs=1`, `size` in input pixels (default 240), `format` `fits|jpg|png` (default
//!   jpg, as the HLA page says), `output_size`, `zoom`, `autoscale`, `asinh`, `imagename`.
//! - FITS answers: one float32 primary HDU with linear flux, the header cards of the real
//!   committed cutout (`cutout_rings.v3.skycell.1268.000.stk.r.unconv.fits`) copied in order,
//!   including `RADESYS`/`TIMESYS` "added by fitscut"; only NAXISn, CRPIXn, CRVALn, the band in
//!   `FPA.FILTER`/`FPA.FILTERID` and `SKYCELL` are rewritten. Off-cell pixels are NaN, not an error.
//! - JPEG answers carry the WCS header text (cards joined by `'\n'`) in a COM segment; three
//!   images give colour. Off-cell regions render white.
//!
//! # Invented (no public source says how the real server does it)
//! - The tessellation (module `sky`): the real projection-cell table is not reproduced; a ring formula
//!   with the right numbering range (635 at Dec -30 … 2643 at the pole) stands in, and every
//!   position maps to exactly one skycell (the real cells overlap).
//! - Pixels: a `size` x `size` window of the 700 x 700 fixture whose offset is hashed from the
//!   skycell and position (so all bands of one target are aligned), times a per-band, per-target
//!   and per-warp-epoch factor. Weight/mask/exp/num images are simple functions of those pixels.
//! - Error statuses: the real service documents none; here anything the real server could not
//!   serve (bad numbers, unknown files, a file that does not cover the position) is a 400 with a
//!   short text/plain message. `size` is capped at 6000; `zoom` only affects jpg/png.
//! - Warp epochs (2 to 5 per skycell and band) are hashed, not real.
//! - The faults and `max_inflight` limit (the real blocking behaviour is undocumented).

mod fits;
mod render;
pub(crate) mod sky;

use crate::hostile::{self, Hostile, HostileFault};
use crate::http::{self, Conn, ReadOutcome, Request, Response};
use serde::Serialize;
use sky::{FileRef, Kind, Skycell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use sky::covers;

/// FNV-1a, 64 bit.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Deterministic faults. A fault with period `n` hits the request targets (path + query, as
/// sent) whose salted FNV-1a hash is divisible by `n` (`n = 1`: every target; `n = 0`: none),
/// and only on a target's first attempt, so a retry succeeds and the outcome does not depend on
/// request order. When several faults pick the same target the first of reset, truncate, 429,
/// 503, slow wins.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Added before every answer (emulates server time).
    pub latency: Duration,
    /// `(n, retry_after_secs)`: answer 429 with `Retry-After`.
    pub every_nth_429: Option<(u64, u64)>,
    /// Answer 503.
    pub every_nth_503: Option<u64>,
    /// Close the socket without answering (with SO_LINGER 0 on Linux, so the client sees a reset).
    pub every_nth_reset: Option<u64>,
    /// Send the full `Content-Length` header but only half the body, then close.
    pub every_nth_truncate: Option<u64>,
    /// Sleep this long before answering.
    pub every_nth_slow: Option<(u64, Duration)>,
    /// Beyond this many requests in flight, answer 503 (counted in [`Meter::over_limit`]).
    pub max_inflight: Option<usize>,
    /// Every `fitscut.cgi` answer is a whole `200 text/html` maintenance page instead of the
    /// cutout, on every attempt (a server that sends the wrong thing, not a network fault).
    pub html_instead_of_cutouts: bool,
    /// A hostile answer (see [`crate::hostile`]) to the `fitscut.cgi` requests it picks, on every
    /// attempt; `bad-utf8-json` applies to `ps1filenames.py` (a table that is not UTF-8).
    pub hostile: Option<HostileFault>,
}

/// Politeness as the server saw it.
#[derive(Clone, Debug, Serialize)]
pub struct Meter {
    pub requests: u64,
    /// Max requests being handled at once (request head complete → response written or dropped).
    pub peak_inflight: usize,
    /// Arrival time of every request head, ms since emulator start, in arrival order.
    pub arrivals_ms: Vec<f64>,
    /// `"ps1filenames"`, `"fitscut"`, `"other"`.
    pub by_endpoint: BTreeMap<String, u64>,
    pub status_counts: BTreeMap<u16, u64>,
    /// `(time_ms a 429 was sent, retry_after_ms)`.
    pub throttles: Vec<(f64, f64)>,
    /// Requests arriving more than 100 ms after a 429 was sent and before its Retry-After ended.
    pub requests_during_retry_after: u64,
    /// Requests refused because of `max_inflight`.
    pub over_limit: u64,
    /// Distinct `User-Agent` values (an empty string stands for a request without one).
    pub user_agents: BTreeSet<String>,
    /// Max arrivals inside any sliding 1-second window.
    pub max_starts_in_any_1s: usize,
}

#[derive(Default)]
struct MeterState {
    requests: u64,
    arrivals_ms: Vec<f64>,
    by_endpoint: BTreeMap<String, u64>,
    status_counts: BTreeMap<u16, u64>,
    throttles: Vec<(f64, f64)>,
    requests_during_retry_after: u64,
    over_limit: u64,
    user_agents: BTreeSet<String>,
}

struct Shared {
    addr: SocketAddr,
    start: Instant,
    faults: RwLock<Faults>,
    inflight: http::InFlight,
    meter: Mutex<MeterState>,
    attempts: Mutex<HashMap<String, u64>>,
}

impl Shared {
    fn ms(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }

    fn record_arrival(&self, req: &Request) {
        let t = self.ms(req.head_at);
        let mut m = self.meter.lock().unwrap();
        m.requests += 1;
        let pos = m.arrivals_ms.partition_point(|&a| a <= t);
        m.arrivals_ms.insert(pos, t);
        *m.by_endpoint.entry(endpoint(&req.path).to_string()).or_default() += 1;
        m.user_agents.insert(req.header("user-agent").unwrap_or("").to_string());
        if m.throttles.iter().any(|&(sent, ra)| t > sent + 100.0 && t < sent + ra) {
            m.requests_during_retry_after += 1;
        }
    }

    fn record_status(&self, status: u16) {
        *self.meter.lock().unwrap().status_counts.entry(status).or_default() += 1;
    }

    /// Counts an attempt at `target`; returns the attempt number (1 = first).
    fn attempt(&self, target: &str) -> u64 {
        let mut a = self.attempts.lock().unwrap();
        let n = a.entry(target.to_string()).or_default();
        *n += 1;
        *n
    }
}

fn endpoint(path: &str) -> &'static str {
    match path {
        "/cgi-bin/ps1filenames.py" => "ps1filenames",
        "/cgi-bin/fitscut.cgi" => "fitscut",
        _ => "other",
    }
}

/// A running emulator; dropping it stops accepting and closes open connections.
pub struct Ps1Emulator {
    shared: Arc<Shared>,
    _acceptor: http::Acceptor,
}

impl Ps1Emulator {
    /// Binds `127.0.0.1:0` and serves on background threads.
    pub fn start(faults: Faults) -> io::Result<Ps1Emulator> {
        Ps1Emulator::start_on("127.0.0.1:0", faults)
    }

    /// Binds `addr` (e.g. `127.0.0.1:8080`) and serves on background threads.
    pub fn start_on(addr: &str, faults: Faults) -> io::Result<Ps1Emulator> {
        // Parse the fixture now so a broken fixture fails loudly here, not in a request thread.
        let _ = fits::fixture();
        let listener = TcpListener::bind(addr)?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            start: Instant::now(),
            faults: RwLock::new(faults),
            inflight: http::InFlight::default(),
            meter: Mutex::new(MeterState::default()),
            attempts: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let _acceptor = http::Acceptor::start(listener, "ps1", move |stream| {
            let _ = serve_connection(stream, &s);
        })?;
        Ok(Ps1Emulator { shared, _acceptor })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", http::connect_addr(self.shared.addr))
    }

    /// Replaces the faults (attempt counts are kept; see [`Ps1Emulator::forget_attempts`]).
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.write().unwrap() = faults;
    }

    /// Forgets which targets were already requested, so faults fire again on the next attempt.
    pub fn forget_attempts(&self) {
        self.shared.attempts.lock().unwrap().clear();
    }

    /// A snapshot of the meter.
    pub fn meter(&self) -> Meter {
        let m = self.shared.meter.lock().unwrap();
        let mut max_1s = 0;
        let mut lo = 0;
        for hi in 0..m.arrivals_ms.len() {
            while m.arrivals_ms[hi] - m.arrivals_ms[lo] >= 1000.0 {
                lo += 1;
            }
            max_1s = max_1s.max(hi - lo + 1);
        }
        Meter {
            requests: m.requests,
            peak_inflight: self.shared.inflight.peak(),
            arrivals_ms: m.arrivals_ms.clone(),
            by_endpoint: m.by_endpoint.clone(),
            status_counts: m.status_counts.clone(),
            throttles: m.throttles.clone(),
            requests_during_retry_after: m.requests_during_retry_after,
            over_limit: m.over_limit,
            user_agents: m.user_agents.clone(),
            max_starts_in_any_1s: max_1s,
        }
    }

    /// Clears the meter (the peak restarts from the requests in flight now).
    pub fn reset_meter(&self) {
        *self.shared.meter.lock().unwrap() = MeterState::default();
        self.shared.inflight.reset_peak();
    }
}

enum FaultKind {
    Reset,
    Truncate,
    Throttle(u64),
    Unavailable,
    Slow(Duration),
}

fn picks(n: u64, salt: &str, target: &str) -> bool {
    n > 0 && fnv1a(format!("{salt}\0{target}").as_bytes()).is_multiple_of(n)
}

fn choose_fault(f: &Faults, target: &str) -> Option<FaultKind> {
    if f.every_nth_reset.is_some_and(|n| picks(n, "reset", target)) {
        return Some(FaultKind::Reset);
    }
    if f.every_nth_truncate.is_some_and(|n| picks(n, "truncate", target)) {
        return Some(FaultKind::Truncate);
    }
    if let Some((n, secs)) = f.every_nth_429 {
        if picks(n, "429", target) {
            return Some(FaultKind::Throttle(secs));
        }
    }
    if f.every_nth_503.is_some_and(|n| picks(n, "503", target)) {
        return Some(FaultKind::Unavailable);
    }
    if let Some((n, d)) = f.every_nth_slow {
        if picks(n, "slow", target) {
            return Some(FaultKind::Slow(d));
        }
    }
    None
}

const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What [`Faults::html_instead_of_cutouts`] serves.
pub const MAINTENANCE_PAGE: &str =
    "<html><head><title>PS1 image server</title></head><body>The image server is down for maintenance.</body></html>\n";

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
        let (guard, now) = shared.inflight.enter();
        let faults = shared.faults.read().unwrap().clone();
        if !faults.latency.is_zero() {
            std::thread::sleep(faults.latency);
        }
        let head_only = req.method == "HEAD";
        let keep_alive = req.keep_alive;

        if faults.max_inflight.is_some_and(|max| now > max) {
            shared.meter.lock().unwrap().over_limit += 1;
            shared.record_status(503);
            let resp = Response::text(503, "Service Unavailable: too many simultaneous requests");
            write_response(&mut conn.stream, &resp, head_only, keep_alive)?;
            drop(guard);
            if !keep_alive {
                return Ok(());
            }
            continue;
        }

        let hostile_endpoint = |h: &HostileFault| match h.kind {
            Hostile::BadUtf8Json => req.path == "/cgi-bin/ps1filenames.py",
            _ => req.path == "/cgi-bin/fitscut.cgi",
        };
        if let Some(h) = faults.hostile.as_ref().filter(|h| hostile_endpoint(h) && h.hits(&req.target)) {
            let mut normal = route(&req);
            if h.kind == Hostile::BadUtf8Json {
                normal.body.extend_from_slice(b"\xff\xfe not UTF-8\n");
            }
            shared.record_status(normal.status);
            drop(guard);
            return if h.kind == Hostile::BadUtf8Json {
                write_response(&mut conn.stream, &normal, head_only, false)
            } else {
                hostile::answer(&mut conn.stream, &h.kind, &req.target, &normal)
            };
        }
        let fault = if shared.attempt(&req.target) == 1 { choose_fault(&faults, &req.target) } else { None };
        let resp = match fault {
            Some(FaultKind::Reset) => {
                drop(guard);
                http::abort(conn.stream);
                return Ok(());
            }
            Some(FaultKind::Throttle(secs)) => {
                let sent = shared.ms(Instant::now());
                shared.meter.lock().unwrap().throttles.push((sent, secs as f64 * 1000.0));
                Response::text(429, format!("Too Many Requests: retry after {secs} seconds"))
                    .with_header("Retry-After", secs.to_string())
            }
            Some(FaultKind::Unavailable) => Response::text(503, "Service Unavailable: please try again later"),
            Some(FaultKind::Slow(d)) => {
                std::thread::sleep(d);
                route(&req)
            }
            Some(FaultKind::Truncate) => {
                let resp = route(&req);
                shared.record_status(resp.status);
                let mut out = resp.head_bytes(false);
                if !head_only {
                    out.extend_from_slice(&resp.body[..resp.body.len() / 2]);
                }
                let _ = conn.stream.write_all(&out);
                let _ = conn.stream.flush();
                let _ = conn.stream.shutdown(Shutdown::Both);
                drop(guard);
                return Ok(());
            }
            None if faults.html_instead_of_cutouts && req.path == "/cgi-bin/fitscut.cgi" => {
                Response::new(200, "text/html; charset=utf-8", MAINTENANCE_PAGE.as_bytes().to_vec())
            }
            None => route(&req),
        };
        shared.record_status(resp.status);
        let result = write_response(&mut conn.stream, &resp, head_only, keep_alive);
        drop(guard);
        result?;
        if !keep_alive {
            let _ = conn.stream.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
}

/// Query / form parameters; names lower-cased, the first value of a name wins.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(bytes: &[u8]) -> Params {
        Params(url::form_urlencoded::parse(bytes).map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: &str, value: String) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_string(), value));
    }
}

type Answer = Result<Response, String>;

fn route(req: &Request) -> Response {
    let answer = match (req.path.as_str(), req.method.as_str()) {
        ("/cgi-bin/ps1filenames.py", "GET" | "HEAD" | "POST") => ps1filenames(req),
        ("/cgi-bin/fitscut.cgi", "GET" | "HEAD") => fitscut(&Params::parse(req.query.as_bytes())),
        ("/cgi-bin/ps1filenames.py", _) => {
            return Response::text(405, "method not allowed").with_header("Allow", "GET, HEAD, POST")
        }
        ("/cgi-bin/fitscut.cgi", _) => {
            return Response::text(405, "method not allowed").with_header("Allow", "GET, HEAD")
        }
        _ => return Response::text(404, format!("Not Found: {}", req.path)),
    };
    answer.unwrap_or_else(|msg| Response::text(400, msg))
}

fn parse_float(name: &str, value: Option<&str>) -> Result<f64, String> {
    let v = value.ok_or_else(|| format!("missing parameter {name}"))?;
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("invalid {name}: {v:?}")),
    }
}

fn parse_position(ra: Option<&str>, dec: Option<&str>) -> Result<(f64, f64), String> {
    parse_position_named(("ra", ra), ("dec", dec))
}

fn parse_position_named(ra: (&str, Option<&str>), dec: (&str, Option<&str>)) -> Result<(f64, f64), String> {
    let ra_v = parse_float(ra.0, ra.1)?;
    let dec_v = parse_float(dec.0, dec.1)?;
    if !(0.0..360.0).contains(&ra_v) {
        return Err(format!("{} out of range [0, 360): {}", ra.0, ra.1.unwrap_or_default()));
    }
    if !(-90.0..=90.0).contains(&dec_v) {
        return Err(format!("{} out of range [-90, 90]: {}", dec.0, dec.1.unwrap_or_default()));
    }
    Ok((ra_v, dec_v))
}

fn parse_filters(s: &str) -> Result<Vec<char>, String> {
    let letters: Vec<char> = if s.contains(',') {
        s.split(',')
            .map(|t| {
                let t = t.trim();
                let mut c = t.chars();
                match (c.next(), c.next()) {
                    (Some(ch), None) => Ok(ch),
                    _ => Err(format!("invalid filters: {s:?}")),
                }
            })
            .collect::<Result<_, _>>()?
    } else {
        s.trim().chars().collect()
    };
    if letters.is_empty() {
        return Err("invalid filters: empty".into());
    }
    let mut out = Vec::new();
    for c in letters {
        if !sky::BANDS.contains(&c) {
            return Err(format!("invalid filter {c:?} (allowed: grizy)"));
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_types(s: &str) -> Result<Vec<Kind>, String> {
    let mut out = Vec::new();
    for t in s.split(',') {
        let k = Kind::parse(t.trim()).ok_or_else(|| format!("invalid type {:?}", t.trim()))?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

fn table(rows: Vec<String>) -> Response {
    let mut body = String::with_capacity(128 * (rows.len() + 1));
    body.push_str(sky::TABLE_HEADER);
    body.push('\n');
    for r in rows {
        body.push_str(&r);
        body.push('\n');
    }
    Response::new(200, "text/plain", body.into_bytes())
}

fn rows_for_position(ra: f64, dec: f64, bands: &[char], kinds: &[Kind]) -> Vec<String> {
    match sky::skycell_for(ra, dec) {
        Some(sc) => sky::files(sc, bands, kinds).iter().map(|f| sky::row(f, ra, dec)).collect(),
        None => Vec::new(),
    }
}

fn ps1filenames(req: &Request) -> Answer {
    let mut params = Params::parse(req.query.as_bytes());
    let mut upload: Option<String> = None;
    if req.method == "POST" {
        let ctype = req.header("content-type").unwrap_or("");
        let lower = ctype.to_ascii_lowercase();
        if lower.starts_with("multipart/form-data") {
            for part in parse_multipart(ctype, &req.body)? {
                if part.name == "file" {
                    upload = Some(String::from_utf8_lossy(&part.data).into_owned());
                } else {
                    params.set(&part.name.to_ascii_lowercase(), String::from_utf8_lossy(&part.data).into_owned());
                }
            }
        } else if lower.starts_with("application/x-www-form-urlencoded") {
            for (k, v) in Params::parse(&req.body).0 {
                params.set(&k, v);
            }
        } else if !req.body.is_empty() {
            return Err(format!("unsupported Content-Type for POST: {ctype:?}"));
        }
    }
    let bands = parse_filters(params.get("filters").unwrap_or("grizy"))?;
    let kinds = parse_types(params.get("type").unwrap_or("stack"))?;

    if let Some(id) = params.get("skycell") {
        let sc: Skycell = sky::parse_skycell_id(id.trim()).ok_or_else(|| format!("invalid skycell {id:?}"))?;
        let rows = match sc.centre() {
            Some((ra, dec)) => sky::files(sc, &bands, &kinds).iter().map(|f| sky::row(f, ra, dec)).collect(),
            None => Vec::new(),
        };
        return Ok(table(rows));
    }
    if let Some(text) = upload {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut it = line.split_whitespace();
            let (ra, dec) = (it.next(), it.next());
            if it.next().is_some() {
                return Err(format!("line {}: expected 'ra dec'", i + 1));
            }
            let (ra, dec) = parse_position(ra, dec).map_err(|e| format!("line {}: {e}", i + 1))?;
            rows.extend(rows_for_position(ra, dec, &bands, &kinds));
        }
        return Ok(table(rows));
    }
    let (ra, dec) = parse_position(params.get("ra"), params.get("dec"))?;
    Ok(table(rows_for_position(ra, dec, &bands, &kinds)))
}

struct Part {
    name: String,
    data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Splits `k=v; k2="v 2"` parameter lists (values may be quoted and contain `;`).
fn header_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut pieces = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '\\' if quoted => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ';' if !quoted => pieces.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    pieces.push(cur);
    for p in pieces {
        if let Some((k, v)) = p.split_once('=') {
            let v = v.trim();
            let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                v[1..v.len() - 1].replace("\\\"", "\"").replace("\\\\", "\\")
            } else {
                v.to_string()
            };
            out.push((k.trim().to_ascii_lowercase(), v));
        }
    }
    out
}

fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = header_params(content_type)
        .into_iter()
        .find(|(k, _)| k == "boundary")
        .map(|(_, v)| v)
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or("multipart body without boundary")?;
    let delim = format!("--{boundary}").into_bytes();
    let mut next_delim = b"\r\n".to_vec();
    next_delim.extend_from_slice(&delim);
    // The first delimiter may start the body (no preceding CRLF).
    let mut pos = if body.starts_with(&delim) {
        delim.len()
    } else {
        find(body, &next_delim, 0).ok_or("multipart boundary not found")? + next_delim.len()
    };
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then CRLF.
        while pos < body.len() && (body[pos] == b' ' || body[pos] == b'\t') {
            pos += 1;
        }
        if body[pos..].starts_with(b"\r\n") {
            pos += 2;
        } else if body[pos..].starts_with(b"\n") {
            pos += 1;
        } else {
            return Err("malformed multipart body".into());
        }
        let end = find(body, &next_delim, pos).ok_or("unterminated multipart body")?;
        let part = &body[pos..end];
        let (head, data) = match find(part, b"\r\n\r\n", 0) {
            Some(i) => (&part[..i], &part[i + 4..]),
            None if part.starts_with(b"\r\n") => (&part[..0], &part[2..]),
            None => return Err("malformed multipart part".into()),
        };
        let head = String::from_utf8_lossy(head);
        let mut name = None;
        for line in head.split("\r\n") {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-disposition") {
                    name = header_params(v).into_iter().find(|(k, _)| k == "name").map(|(_, v)| v);
                }
            }
        }
        let name = name.ok_or("multipart part without a name")?;
        parts.push(Part { name, data: data.to_vec() });
        pos = end + next_delim.len();
        if pos > body.len() {
            return Err("malformed multipart body".into());
        }
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" => Ok(true),
        "0" | "false" | "f" | "no" | "n" => Ok(false),
        _ => Err(format!("invalid {name}: {v:?}")),
    }
}

fn parse_uint(name: &str, v: &str, max: u32) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("invalid {name}: {v:?} (an integer 1..={max})")),
    }
}

/// Everything a valid fitscut request names, after checking it the way the real server could.
struct Cutout {
    files: Vec<FileRef>,
    ra: f64,
    dec: f64,
    size: u32,
}

/// Checks a file name against the requested position: the server can only open files that
/// exist, and the skycell must be the one `ps1filenames.py` gives for that position.
fn open_file(param: &str, name: &str, ra: f64, dec: f64) -> Result<FileRef, String> {
    let f = FileRef::parse(name).ok_or_else(|| format!("{param}: cannot open file {name:?}"))?;
    match sky::skycell_for(ra, dec) {
        Some(sc) if sc == f.skycell => Ok(f),
        _ => Err(format!("{param}: {name:?} does not cover ra={ra} dec={dec}")),
    }
}

fn check_size(size: u32) -> Result<(), String> {
    if (1..=fits::MAX_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(format!("invalid size: {size} (an integer 1..={})", fits::MAX_SIZE))
    }
}

const MAX_OUTPUT: u32 = 10_000;

fn fitscut(p: &Params) -> Answer {
    let red = p.get("red").ok_or("missing parameter red")?;
    let colour = match (p.get("green"), p.get("blue")) {
        (None, None) => None,
        (Some(g), Some(b)) => Some((g, b)),
        _ => return Err("green and blue must be given together".into()),
    };
    let (ra, dec) = if p.get("ra").is_some() || p.get("dec").is_some() {
        parse_position(p.get("ra"), p.get("dec"))?
    } else if p.get("x").is_some() || p.get("y").is_some() {
        let wcs = p.get("wcs").map(|v| parse_bool("wcs", v)).transpose()?.unwrap_or(false);
        if !wcs {
            return Err("x/y pixel positions are not supported here; give ra/dec or x/y with wcs=1".into());
        }
        parse_position_named(("x", p.get("x")), ("y", p.get("y")))?
    } else {
        return Err("missing position: give ra and dec".into());
    };
    let size = match p.get("size") {
        Some(v) => parse_uint("size", v, fits::MAX_SIZE)?,
        None => 240,
    };
    check_size(size)?;
    let format = p.get("format").unwrap_or("jpg").trim().to_ascii_lowercase();
    if !matches!(format.as_str(), "fits" | "jpg" | "png") {
        return Err(format!("invalid format {format:?} (fits, jpg or png)"));
    }
    let output_size = p.get("output_size").map(|v| parse_uint("output_size", v, MAX_OUTPUT)).transpose()?;
    let zoom = match p.get("zoom") {
        Some(v) => match v.trim().parse::<f64>() {
            Ok(z) if z.is_finite() && z > 0.0 => Some(z),
            _ => return Err(format!("invalid zoom: {v:?}")),
        },
        None => None,
    };
    let autoscale = match p.get("autoscale") {
        Some(v) => match v.trim().parse::<f64>() {
            Ok(a) if a.is_finite() && a > 0.0 && a <= 100.0 => a,
            _ => return Err(format!("invalid autoscale: {v:?}")),
        },
        None => 99.5,
    };
    let asinh = p.get("asinh").map(|v| parse_bool("asinh", v)).transpose()?.unwrap_or(false);
    if format == "fits" && colour.is_some() {
        return Err("format=fits takes a single image (red only)".into());
    }
    let mut files = vec![open_file("red", red, ra, dec)?];
    if let Some((g, b)) = colour {
        files.push(open_file("green", g, ra, dec)?);
        files.push(open_file("blue", b, ra, dec)?);
    }
    let cut = Cutout { files, ra, dec, size };

    let mut resp = if format == "fits" {
        Response::new(200, "image/fits", fits::fits_bytes(&cut.files[0], cut.ra, cut.dec, cut.size))
    } else {
        let out = match (output_size, zoom) {
            (Some(o), _) => o,
            (None, Some(z)) if z < 1.0 => (cut.size / ((1.0 / z).round() as u32).max(1)).max(1),
            (None, Some(z)) => cut.size.saturating_mul(z.round() as u32),
            (None, None) => cut.size,
        };
        if out > MAX_OUTPUT {
            return Err(format!("output image too large: {out} pixels"));
        }
        let channels: Vec<Vec<f32>> = cut.files.iter().map(|f| fits::pixels(f, cut.ra, cut.dec, cut.size)).collect();
        let (fmt, ctype) =
            if format == "png" { (render::Format::Png, "image/png") } else { (render::Format::Jpeg, "image/jpeg") };
        let com = fits::wcs_text(cut.ra, cut.dec, cut.size, out, out);
        let bytes = render::render(&channels, cut.size, out, autoscale, asinh, fmt, Some(&com))?;
        Response::new(200, ctype, bytes)
    };
    if let Some(name) = p.get("imagename") {
        let safe: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect();
        if !safe.is_empty() {
            resp = resp.with_header("Content-Disposition", format!("attachment; filename=\"{safe}\""));
        }
    }
    Ok(resp)
}

/// Exactly the float32 pixels (row-major, H x W, first row = FITS row 1) that a fitscut FITS
/// answer for this request contains, so tests can compare arrays. Returns `(pixels, H, W)`.
/// Fails like the server would (unknown file, file not covering the position, bad size).
pub fn cutout_pixels(filename: &str, ra: f64, dec: f64, size: u32) -> Result<(Vec<f32>, usize, usize), String> {
    if !(0.0..360.0).contains(&ra) || !(-90.0..=90.0).contains(&dec) {
        return Err(format!("position out of range: {ra} {dec}"));
    }
    check_size(size)?;
    let f = open_file("red", filename, ra, dec)?;
    Ok((fits::pixels(&f, ra, dec, size), size as usize, size as usize))
}

/// The `filename` values `ps1filenames.py` lists for a position (stacks of the given bands, in
/// band order); empty outside the footprint. A convenience for tests building fitscut URLs.
pub fn stack_filenames(ra: f64, dec: f64, filters: &str) -> Vec<String> {
    let bands: Vec<char> = filters.chars().filter(|c| sky::BANDS.contains(c)).collect();
    match sky::skycell_for(ra, dec) {
        Some(sc) => sky::files(sc, &bands, &[Kind::Stack]).iter().map(|f| f.filename()).collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parsing() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"filters\"\r\n\r\nr\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.txt\"\r\nContent-Type: text/plain\r\n\r\n10 20\n30 40\n\r\n--XyZ--\r\n";
        let parts = parse_multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "filters");
        assert_eq!(parts[0].data, b"r");
        assert_eq!(parts[1].name, "file");
        assert_eq!(parts[1].data, b"10 20\n30 40\n");
        assert!(parse_multipart("multipart/form-data", body).is_err());
        assert!(parse_multipart("multipart/form-data; boundary=\"XyZ\"", body).is_ok());
    }

    #[test]
    fn filters_and_types() {
        assert_eq!(parse_filters("g,r,i").unwrap(), vec!['g', 'r', 'i']);
        assert_eq!(parse_filters("rgr").unwrap(), vec!['r', 'g']);
        assert!(parse_filters("rgbi").is_err());
        assert!(parse_filters("").is_err());
        assert_eq!(parse_types("stack,warp").unwrap(), vec![Kind::Stack, Kind::Warp]);
        assert!(parse_types("stack.psf").is_err());
    }

    #[test]
    fn fault_selection_is_spread() {
        let targets: Vec<String> = (0..400).map(|i| format!("/cgi-bin/fitscut.cgi?ra={i}")).collect();
        let hit = |salt: &str| targets.iter().filter(|t| picks(4, salt, t)).cloned().collect::<Vec<_>>();
        let (a, b) = (hit("429"), hit("503"));
        assert!(a.len() > 60 && a.len() < 140, "{}", a.len());
        assert_ne!(a, b);
        assert!(targets.iter().all(|t| picks(1, "reset", t)));
        assert!(!targets.iter().any(|t| picks(0, "reset", t)));
    }
}
