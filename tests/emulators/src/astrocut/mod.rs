//! Emulator of MAST's astrocut services: TESScut (`https://mast.stsci.edu/tesscut/api/v0.1/`)
//! and Zcut (`https://mast.stsci.edu/zcut/api/v0.1/`), behind one meter.
//!
//! # Faithful to docs/archives.md section 4 and 4.1
//! - Paths below `/tesscut/api/v0.1/`: `sector` (`POST` with form data as astroquery sends it, or
//!   `GET` with a query) answers `{"results": [{"sectorName": "tess-s0006-1-2", "sector": "0006",
//!   "camera": "1", "ccd": "2"}, ...]}` (sectors zero-padded as in the MAST docs); `astrocut`
//!   (`GET` only) with `ra`, `dec`, `y`, `x`, `units` (`px` or `d`), optional `sector` and
//!   `product`, answers `application/zip` holding one target-pixel file per matching sector,
//!   named `tess-sSSSS-C-C_<ra>_<dec>_<ny>x<nx>_astrocut.fits`, or JSON `{"msg": ...}` (status 200)
//!   when nothing matches. Anything else under the API is 404.
//! - Invalid parameters (a missing or non-numeric `ra`/`dec`, an out-of-range position, a `units`
//!   other than `px`/`d`, a bad `radius` suffix, a non-numeric `sector`, a `product` other than
//!   SPOC, as TICA is withdrawn) answer 400.
//! - Limits: more than 5 request arrivals in any second, or more than 10 requests in flight,
//!   answer `503 Service Temporarily Unavailable` (counted in [`Meter::over_limit`]).
//! - Target-pixel files are written with cfitsio (`fitsio`) in the real layout: PRIMARY (`ORIGIN`,
//!   `TELESCOP`, `SECTOR`, `CAMERA`, `CCD`, `RA_OBJ`, `DEC_OBJ`), `PIXELS` binary table with
//!   `TIME D, TIMECORR E, CADENCENO J, RAW_CNTS nJ, FLUX nE, FLUX_ERR nE, FLUX_BKG nE,
//!   FLUX_BKG_ERR nE, QUALITY J, POS_CORR1 E, POS_CORR2 E, FFI_FILE 38A` (image columns with
//!   `TDIMn = '(nx,ny)'`), and the `APERTURE` int32 image holding the cutout's WCS.
//!
//! - Zcut, below `/zcut/api/v0.1/`: `survey` (`POST` with form data only, as astroquery sends it;
//!   `GET` is 405) with `ra`, `dec`, optional `radius`, answers `{"surveys": [...]}`; `astrocut`
//!   (`GET`) with `ra`, `dec`, `y`, `x`, `units` (`px` or `d`), optional `survey` (all covering
//!   surveys when absent) and `format` (`fits`, `jpg`, `png`; default `fits`) answers a zip: for
//!   FITS one file per survey, an empty primary and one float32 image HDU per mosaic with
//!   `ORIG_FLE`, `FILTER` and the cutout's WCS; for jpg/png one 8-bit grey image per mosaic.
//!   `{"msg": ...}` when the survey does not cover the position. Bad parameters answer 400.
//!
//! - HAPcut, below `/hapcut/api/v0.1/`: `astrocut` (`GET`) with `ra`, `dec`, `x`, `y`, `units`
//!   answers a zip of one FITS file per Hubble Advanced Product covering the position (an empty
//!   primary, `SCI` and `WHT` float32 image HDUs), named
//!   `hst_cutout_skycell-<cell>-ra<ra>-dec<dec>_<instrument>_<detector>_<filter>.fits`, or
//!   `{"msg": ...}` when no skycell covers it. Bad parameters answer 400.
//!
//! # Invented (no public source says how the real server does it)
//! - The Zcut sky ([`zcut::SURVEYS`]): CANDELS and GOODS mosaics around GOODS-North and
//!   GOODS-South, each a box; pixels a Gaussian galaxy on a sky ([`zcut::pixels_of`]).
//! - Which sectors observed a position: two per position (sector n and, two years later, n + 26),
//!   chosen by right ascension and hemisphere; nothing within 6 degrees of the equator
//!   (an empty `results` list). Camera and CCD follow the declination and right ascension.
//! - Pixel values: a star at the cutout centre varying sinusoidally (period and amplitude from the
//!   position) on a flat background, one NaN cadence with quality 32 at the start of each sector.
//!   The cadence count per sector is [`Faults::cadences`] (the real 1282 in sector 1 is slow to test).
//! - Sizes: at most 100 px a side (larger is 400). Deflate compression, like the real zips.
//! - The faults (503 with or without `Retry-After`, slow answers, resets, `no_data_sectors`) and
//!   the extra time a big cutout takes ([`Faults::big_cutout_delay`]).

pub mod hapcut;
mod tpf;
pub mod zcut;

use crate::http::{self, Conn, ReadOutcome, Request, Response};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use tpf::{pixels_of, write as target_pixel_file, zip as zip_of, Pixels};

/// The API roots below the server.
pub const API: &str = "/tesscut/api/v0.1";
pub const ZCUT_API: &str = "/zcut/api/v0.1";
pub const HAPCUT_API: &str = "/hapcut/api/v0.1";
/// MAST's published limits.
pub const MAX_PER_SECOND: usize = 5;
pub const MAX_IN_FLIGHT: usize = 10;
/// Largest cutout side the emulator serves, in pixels.
pub const MAX_SIDE: u32 = 100;

/// Deterministic faults and settings. A fault with period `n` hits the request targets (path +
/// query, or path + form body) whose salted FNV-1a hash is divisible by `n` (`n = 1`: all), on
/// a target's first attempt only, so a retry succeeds.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Added before every answer.
    pub latency: Duration,
    /// `(n, retry_after_secs)`: answer 503, with `Retry-After` when given.
    pub every_nth_503: Option<(u64, Option<u64>)>,
    /// Close the socket without answering.
    pub every_nth_reset: Option<u64>,
    /// Sleep this long before answering.
    pub every_nth_slow: Option<(u64, Duration)>,
    /// Cutouts of these sectors answer `{"msg": ...}` although the look-up lists them.
    pub no_data_sectors: Vec<u32>,
    /// Extra time for a cutout above 30 px a side (the real service takes minutes).
    pub big_cutout_delay: Duration,
    /// Cadences per sector in the target-pixel files.
    pub cadences: usize,
    /// Every cutout zip arrives whole but damaged (a byte of the deflated member flipped, so its
    /// CRC-32 fails), on every attempt: a server that sends the wrong thing, not a network fault.
    pub damaged_zips: bool,
    /// Every cutout zip arrives cut to its first half (with a matching Content-Length), on every
    /// attempt.
    pub truncated_zips: bool,
    /// Zcut cutouts of these surveys answer `{"msg": ...}` although the look-up lists them.
    pub no_data_surveys: Vec<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            every_nth_503: None,
            every_nth_reset: None,
            every_nth_slow: None,
            no_data_sectors: Vec::new(),
            big_cutout_delay: Duration::ZERO,
            cadences: 40,
            damaged_zips: false,
            truncated_zips: false,
            no_data_surveys: Vec::new(),
        }
    }
}

/// Politeness as the server saw it.
#[derive(Clone, Debug, Serialize)]
pub struct Meter {
    pub requests: u64,
    pub peak_inflight: usize,
    /// Max arrivals inside any sliding 1-second window.
    pub max_starts_in_any_1s: usize,
    /// `"sector"`, `"astrocut"`, `"survey"`, `"zcut-astrocut"`, `"hapcut-astrocut"`, `"other"`.
    pub by_endpoint: BTreeMap<String, u64>,
    pub status_counts: BTreeMap<u16, u64>,
    /// Requests refused with 503 for passing 5 per second or 10 in flight.
    pub over_limit: u64,
    /// Requests arriving before the `Retry-After` of a 503 sent more than 100 ms earlier ended.
    pub requests_during_retry_after: u64,
    /// Cutout requests as sent (path and query), in arrival order.
    pub cutouts: Vec<String>,
}

#[derive(Default)]
struct MeterState {
    requests: u64,
    arrivals_ms: Vec<f64>,
    by_endpoint: BTreeMap<String, u64>,
    status_counts: BTreeMap<u16, u64>,
    over_limit: u64,
    throttles: Vec<(f64, f64)>,
    requests_during_retry_after: u64,
    cutouts: Vec<String>,
}

struct Shared {
    addr: SocketAddr,
    start: Instant,
    faults: RwLock<Faults>,
    inflight: http::InFlight,
    meter: Mutex<MeterState>,
    attempts: Mutex<HashMap<String, u64>>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn picks(n: u64, salt: &str, target: &str) -> bool {
    n > 0 && fnv1a(format!("{salt}\0{target}").as_bytes()).is_multiple_of(n)
}

fn endpoint(path: &str) -> &'static str {
    match (path.strip_prefix(API), path.strip_prefix(ZCUT_API)) {
        (Some("/sector"), _) => "sector",
        (Some("/astrocut"), _) => "astrocut",
        (_, Some("/survey")) => "survey",
        (_, Some("/astrocut")) => "zcut-astrocut",
        _ if path == format!("{HAPCUT_API}/astrocut") => "hapcut-astrocut",
        _ => "other",
    }
}

impl Shared {
    fn ms(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }

    /// Records an arrival; returns how many arrived in the second up to it (itself included).
    fn record_arrival(&self, req: &Request) -> usize {
        let t = self.ms(req.head_at);
        let mut m = self.meter.lock().unwrap();
        m.requests += 1;
        let pos = m.arrivals_ms.partition_point(|&a| a <= t);
        m.arrivals_ms.insert(pos, t);
        *m.by_endpoint.entry(endpoint(&req.path).to_string()).or_default() += 1;
        if endpoint(&req.path).ends_with("astrocut") {
            m.cutouts.push(req.target.clone());
        }
        if m.throttles.iter().any(|&(sent, ra)| t > sent + 100.0 && t < sent + ra) {
            m.requests_during_retry_after += 1;
        }
        m.arrivals_ms[..=pos].iter().rev().take_while(|&&a| a > t - 1000.0).count()
    }

    fn record_status(&self, status: u16) {
        *self.meter.lock().unwrap().status_counts.entry(status).or_default() += 1;
    }

    fn attempt(&self, target: &str) -> u64 {
        let mut a = self.attempts.lock().unwrap();
        let n = a.entry(target.to_string()).or_default();
        *n += 1;
        *n
    }
}

/// A running emulator; dropping it stops accepting and closes open connections.
pub struct AstrocutEmulator {
    shared: Arc<Shared>,
    _acceptor: http::Acceptor,
}

impl AstrocutEmulator {
    /// Binds `127.0.0.1:0` and serves on background threads.
    pub fn start(faults: Faults) -> io::Result<AstrocutEmulator> {
        AstrocutEmulator::start_on("127.0.0.1:0", faults)
    }

    pub fn start_on(addr: &str, faults: Faults) -> io::Result<AstrocutEmulator> {
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
        let _acceptor = http::Acceptor::start(listener, "astrocut", move |stream| {
            let _ = serve_connection(stream, &s);
        })?;
        Ok(AstrocutEmulator { shared, _acceptor })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", http::connect_addr(self.shared.addr))
    }

    /// The TESScut API root: `http://127.0.0.1:PORT/tesscut/api/v0.1`.
    pub fn tesscut_url(&self) -> String {
        format!("{}{API}", self.base_url())
    }

    /// The HAPcut API root: `http://127.0.0.1:PORT/hapcut/api/v0.1`.
    pub fn hapcut_url(&self) -> String {
        format!("{}{HAPCUT_API}", self.base_url())
    }

    /// The Zcut API root: `http://127.0.0.1:PORT/zcut/api/v0.1`.
    pub fn zcut_url(&self) -> String {
        format!("{}{ZCUT_API}", self.base_url())
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.write().unwrap() = faults;
    }

    /// Forgets which targets were requested, so faults fire again.
    pub fn forget_attempts(&self) {
        self.shared.attempts.lock().unwrap().clear();
    }

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
            max_starts_in_any_1s: max_1s,
            by_endpoint: m.by_endpoint.clone(),
            status_counts: m.status_counts.clone(),
            over_limit: m.over_limit,
            requests_during_retry_after: m.requests_during_retry_after,
            cutouts: m.cutouts.clone(),
        }
    }

    pub fn reset_meter(&self) {
        *self.shared.meter.lock().unwrap() = MeterState::default();
        self.shared.inflight.reset_peak();
    }
}

const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

fn write_response(stream: &mut TcpStream, resp: &Response, head_only: bool, keep_alive: bool) -> io::Result<()> {
    let mut out = resp.head_bytes(keep_alive);
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    stream.write_all(&out)?;
    stream.flush()
}

fn unavailable() -> Response {
    Response::text(503, "Service Temporarily Unavailable")
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
        let in_last_second = shared.record_arrival(&req);
        let (guard, now) = shared.inflight.enter();
        let faults = shared.faults.read().unwrap().clone();
        let head_only = req.method == "HEAD";
        let keep_alive = req.keep_alive;
        let resp = if now > MAX_IN_FLIGHT || in_last_second > MAX_PER_SECOND {
            shared.meter.lock().unwrap().over_limit += 1;
            unavailable()
        } else {
            if !faults.latency.is_zero() {
                std::thread::sleep(faults.latency);
            }
            let fault_key = format!("{}\0{}", req.target, String::from_utf8_lossy(&req.body));
            let first = shared.attempt(&fault_key) == 1;
            if first && faults.every_nth_reset.is_some_and(|n| picks(n, "reset", &fault_key)) {
                drop(guard);
                http::abort(conn.stream);
                return Ok(());
            }
            match faults.every_nth_503 {
                Some((n, retry_after)) if first && picks(n, "503", &fault_key) => {
                    let resp = unavailable();
                    match retry_after {
                        Some(secs) => {
                            let sent = shared.ms(Instant::now());
                            shared.meter.lock().unwrap().throttles.push((sent, secs as f64 * 1000.0));
                            resp.with_header("Retry-After", secs.to_string())
                        }
                        None => resp,
                    }
                }
                _ => {
                    if let Some((n, d)) = faults.every_nth_slow {
                        if first && picks(n, "slow", &fault_key) {
                            std::thread::sleep(d);
                        }
                    }
                    route(&req, &faults)
                }
            }
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

/// Parameters of a query or a form body; the first value of a name wins.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(bytes: &[u8]) -> Params {
        Params(url::form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The form of a POST, which must say it is one.
fn form(req: &Request) -> Result<Params, String> {
    let ctype = req.header("content-type").unwrap_or("").to_ascii_lowercase();
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return Err(format!("unsupported Content-Type for POST: {ctype:?}"));
    }
    Ok(Params::parse(&req.body))
}

fn route(req: &Request, faults: &Faults) -> Response {
    let answer = match (endpoint(&req.path), req.method.as_str()) {
        ("sector", "GET" | "HEAD") => sector(&Params::parse(req.query.as_bytes())),
        ("sector", "POST") => form(req).and_then(|p| sector(&p)),
        ("astrocut", "GET" | "HEAD") => astrocut(&Params::parse(req.query.as_bytes()), faults),
        ("survey", "POST") => form(req).and_then(|p| survey_lookup(&p)),
        ("zcut-astrocut", "GET" | "HEAD") => zcut_astrocut(&Params::parse(req.query.as_bytes()), faults),
        ("hapcut-astrocut", "GET" | "HEAD") => hapcut_astrocut(&Params::parse(req.query.as_bytes()), faults),
        ("hapcut-astrocut", _) => return Response::text(405, "method not allowed").with_header("Allow", "GET, HEAD"),
        ("survey", _) => return Response::text(405, "method not allowed").with_header("Allow", "POST"),
        ("zcut-astrocut", _) => return Response::text(405, "method not allowed").with_header("Allow", "GET, HEAD"),
        ("sector", _) => return Response::text(405, "method not allowed").with_header("Allow", "GET, HEAD, POST"),
        ("astrocut", _) => return Response::text(405, "method not allowed").with_header("Allow", "GET, HEAD"),
        _ => return Response::text(404, format!("Not Found: {}", req.path)),
    };
    answer.unwrap_or_else(|msg| {
        let body = serde_json::to_vec(&serde_json::json!({ "msg": msg })).unwrap_or_default();
        Response::new(400, "application/json", body)
    })
}

type Answer = Result<Response, String>;

fn number(p: &Params, name: &str) -> Result<f64, String> {
    let v = p.get(name).ok_or_else(|| format!("Missing required parameter: {name}"))?;
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("Invalid {name}: {v}")),
    }
}

fn position(p: &Params) -> Result<(f64, f64), String> {
    let (ra, dec) = (number(p, "ra")?, number(p, "dec")?);
    if !(0.0..360.0).contains(&ra) {
        return Err(format!("ra out of range [0, 360): {ra}"));
    }
    if !(-90.0..=90.0).contains(&dec) {
        return Err(format!("dec out of range [-90, 90]: {dec}"));
    }
    Ok((ra, dec))
}

fn product(p: &Params) -> Result<(), String> {
    match p.get("product") {
        None => Ok(()),
        Some(v) if v.eq_ignore_ascii_case("SPOC") => Ok(()),
        Some(v) if v.eq_ignore_ascii_case("TICA") => Err("TICA products are no longer supported".into()),
        Some(v) => Err(format!("Invalid product: {v}")),
    }
}

/// One sector that observed a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub sector: u32,
    pub camera: u32,
    pub ccd: u32,
}

/// The sectors that observed (`ra`, `dec`) in this emulator's invented sky (see the module docs).
pub fn observations(ra: f64, dec: f64) -> Vec<Observation> {
    if dec.abs() < 6.0 {
        return Vec::new();
    }
    let base = 1 + ((ra / 360.0 * 13.0).floor() as u32).min(12) + if dec < 0.0 { 0 } else { 13 };
    let camera = 1 + ((dec.abs() - 6.0) / 21.0).floor().clamp(0.0, 3.0) as u32;
    let ccd = 1 + ((ra / 7.0).floor() as u32 % 4);
    [base, base + 26].iter().map(|&sector| Observation { sector, camera, ccd }).collect()
}

fn sector(p: &Params) -> Answer {
    let (ra, dec) = position(p)?;
    product(p)?;
    radius(p)?;
    let results: Vec<serde_json::Value> = observations(ra, dec)
        .iter()
        .map(|o| {
            serde_json::json!({
                "sectorName": format!("tess-s{:04}-{}-{}", o.sector, o.camera, o.ccd),
                "sector": format!("{:04}", o.sector),
                "camera": o.camera.to_string(),
                "ccd": o.ccd.to_string(),
            })
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "results": results })).map_err(|e| e.to_string())?;
    Ok(Response::new(200, "application/json", body))
}

fn side(p: &Params, name: &str, units: &str) -> Result<u32, String> {
    let v = number(p, name)?;
    let px = match units {
        "px" => v.round(),
        _ => (v * 3600.0 / 21.0).ceil(),
    };
    if !(1.0..=MAX_SIDE as f64).contains(&px) {
        return Err(format!("Invalid {name}: {v} {units} (1 to {MAX_SIDE} pixels)"));
    }
    Ok(px as u32)
}

fn no_data(msg: &str) -> Answer {
    let body = serde_json::to_vec(&serde_json::json!({ "msg": msg })).map_err(|e| e.to_string())?;
    Ok(Response::new(200, "application/json", body))
}

fn astrocut(p: &Params, faults: &Faults) -> Answer {
    let (ra, dec) = position(p)?;
    product(p)?;
    let units = p.get("units").unwrap_or("px");
    if units != "px" && units != "d" {
        return Err(format!("Invalid units: {units} (px or d)"));
    }
    let ny = side(p, "y", units)?;
    let nx = side(p, "x", units)?;
    let wanted = match p.get("sector") {
        None => None,
        Some(s) => Some(s.trim().parse::<u32>().map_err(|_| format!("Invalid sector: {s}"))?),
    };
    let obs: Vec<Observation> =
        observations(ra, dec).into_iter().filter(|o| wanted.is_none_or(|s| s == o.sector)).collect();
    if obs.is_empty() || obs.iter().any(|o| faults.no_data_sectors.contains(&o.sector)) {
        return no_data("No data was found for the given position and sector.");
    }
    if (ny > 30 || nx > 30) && !faults.big_cutout_delay.is_zero() {
        std::thread::sleep(faults.big_cutout_delay);
    }
    let mut files = Vec::new();
    for o in &obs {
        let name = format!("tess-s{:04}-{}-{}_{}_{}_{ny}x{nx}_astrocut.fits", o.sector, o.camera, o.ccd, ra, dec);
        let bytes = tpf::write(ra, dec, *o, ny as usize, nx as usize, faults.cadences).map_err(|e| format!("{e}"))?;
        files.push((name, bytes));
    }
    zip_answer(&files, faults, &format!("astrocut_{ra}_{dec}_{ny}x{nx}.zip"))
}

/// The zip of `files` as the answer, with the zip faults applied.
fn zip_answer(files: &[(String, Vec<u8>)], faults: &Faults, name: &str) -> Answer {
    let mut zip = tpf::zip(files);
    if faults.damaged_zips {
        // The first member's data starts after its 30-byte local header and its name.
        let at = 30 + files[0].0.len() + 8;
        zip[at] ^= 0x55;
    }
    if faults.truncated_zips {
        zip.truncate(zip.len() / 2);
    }
    Ok(Response::new(200, "application/zip", zip)
        .with_header("Content-Disposition", format!("attachment; filename={name}")))
}

fn radius(p: &Params) -> Result<(), String> {
    if let Some(r) = p.get("radius") {
        let r = r.trim();
        let num = r.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &r[num.len()..];
        if !matches!(unit, "" | "d" | "s" | "m" | "px") || !num.parse::<f64>().is_ok_and(|x| x >= 0.0) {
            return Err(format!("Invalid radius: {r}"));
        }
    }
    Ok(())
}

fn survey_lookup(p: &Params) -> Answer {
    let (ra, dec) = position(p)?;
    radius(p)?;
    let names: Vec<&str> = zcut::surveys_at(ra, dec).iter().map(|s| s.name).collect();
    let body = serde_json::to_vec(&serde_json::json!({ "surveys": names })).map_err(|e| e.to_string())?;
    Ok(Response::new(200, "application/json", body))
}

/// A Zcut side in the survey's pixels.
fn zcut_side(p: &Params, name: &str, units: &str, pixel_arcsec: f64) -> Result<u32, String> {
    let v = number(p, name)?;
    let px = match units {
        "px" => v.round(),
        // Less a hair: 6 arcsec of 0.03 arcsec pixels is 200 pixels, not 200.00000000000003.
        _ => (v * 3600.0 / pixel_arcsec - 1e-9).ceil(),
    };
    if !(1.0..=zcut::MAX_SIDE as f64).contains(&px) {
        return Err(format!("Invalid {name}: {v} {units} (1 to {} pixels)", zcut::MAX_SIDE));
    }
    Ok(px as u32)
}

fn zcut_astrocut(p: &Params, faults: &Faults) -> Answer {
    let (ra, dec) = position(p)?;
    let units = p.get("units").unwrap_or("px");
    if units != "px" && units != "d" {
        return Err(format!("Invalid units: {units} (px or d)"));
    }
    let format = p.get("format").unwrap_or("fits");
    if !matches!(format, "fits" | "jpg" | "png") {
        return Err(format!("Invalid format: {format} (fits, jpg or png)"));
    }
    // Sizes are checked before the survey is known, in the finest pixels served.
    zcut_side(p, "y", units, 0.03)?;
    zcut_side(p, "x", units, 0.03)?;
    let surveys: Vec<&zcut::Survey> = match p.get("survey") {
        None => zcut::surveys_at(ra, dec),
        Some(name) => zcut::survey(name).filter(|s| s.covers(ra, dec)).into_iter().collect(),
    };
    if surveys.is_empty() || surveys.iter().any(|s| faults.no_data_surveys.iter().any(|n| n == s.name)) {
        return no_data("No cutouts were found for the given position and survey.");
    }
    let mut files = Vec::new();
    let (mut ny, mut nx) = (0, 0);
    for s in &surveys {
        ny = zcut_side(p, "y", units, s.pixel_arcsec)? as usize;
        nx = zcut_side(p, "x", units, s.pixel_arcsec)? as usize;
        if format == "fits" {
            let bytes = zcut::fits(s, ra, dec, ny, nx).map_err(|e| format!("{e}"))?;
            files.push((format!("{}_{ra:.6}_{dec:.6}_{nx}.0pix-x-{ny}.0pix_astrocut.fits", s.name), bytes));
        } else {
            for (m, (orig, _)) in s.mosaics.iter().enumerate() {
                let stem = orig.trim_end_matches(".fits");
                let bytes = zcut::image(s, m, ra, dec, ny, nx, format == "png")?;
                files.push((format!("{stem}_{ra:.6}_{dec:.6}_{nx}.0pix-x-{ny}.0pix_astrocut.{format}"), bytes));
            }
        }
    }
    let suffix = if format == "fits" { "_f" } else { "" };
    zip_answer(&files, faults, &format!("astrocut_{ra}_{dec}_{nx}x{ny}px{suffix}.zip"))
}

fn hapcut_astrocut(p: &Params, faults: &Faults) -> Answer {
    let (ra, dec) = position(p)?;
    let units = p.get("units").unwrap_or("px");
    if units != "px" && units != "d" {
        return Err(format!("Invalid units: {units} (px or d)"));
    }
    let nx = zcut_side(p, "x", units, hapcut::PIXEL_ARCSEC)? as usize;
    let ny = zcut_side(p, "y", units, hapcut::PIXEL_ARCSEC)? as usize;
    let cells = hapcut::skycells_at(ra, dec);
    if cells.is_empty() {
        return no_data("No HAP cutouts were found for the given position.");
    }
    let mut files = Vec::new();
    for cell in cells {
        for (i, &product) in cell.products.iter().enumerate() {
            let bytes = hapcut::fits(i, product, ra, dec, ny, nx).map_err(|e| format!("{e}"))?;
            files.push((hapcut::file_name(cell, product, ra, dec), bytes));
        }
    }
    zip_answer(&files, faults, &format!("hapcut_{ra}_{dec}_{nx}x{ny}px.zip"))
}
