//! Emulator of the ATLAS-VAR DR1 data (Heinze et al. 2018): MAST's object-catalogue FITS
//! table and the UH IfA re-packaging of the light curves as declination-band CSV files.
//!
//! # Faithful to docs/archives.md section 3 (3.1, 3.2, 3.4)
//! - The object catalogue is a FITS binary table under MAST's file name
//!   `hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits`, with at least the verified
//!   `object` columns `objid`, `ATO_ID`, `ra`, `dec`, `CLASS`, `fp_LSperiod`.
//! - Light curves come as `atlas_lc_dr1_{dec_from}-{dec_upto}.csv` declination-band files
//!   (a **UH re-packaging, not a MAST product**), one header row and exactly the 36 columns
//!   `ATO_ID … mjd,dra,ddec,filter,m,dm` in the verified order: the object columns repeated on
//!   every row of the object×detection join.
//! - Class vocabulary `CBF CBH DBF DBH HARD IRR LPV MIRA MPULSE MSINE NSINE PULSE SINE
//!   dubious`; filters `c` and `o`.
//!
//! # Invented (no source says how the real data or servers look)
//! - Server layout: the catalogue at `/hlsp/atlas-var/{file}` (MAST-like), the CSV folder at
//!   `/atlas/dr1/` (the UH dataset path) on the same host. `GET /atlas/dr1/` answers an Apache
//!   `mod_autoindex`-style HTML page (relative links, sizes like `1.2M`, a parent link, query
//!   strings ignored), `/atlas/dr1` redirects there (301, as `mod_dir` does). Nothing else
//!   exists: the `observation` table, the `/hlsp/atlas-var/` folder page and CasJobs are not
//!   emulated (404). Methods other than GET/HEAD: 405. With [`Listing::WebDav`] the folder
//!   behaves as on a Pelican origin (`golang.org/x/net/webdav`, docs/design.md §10): `GET` on it is
//!   405 and `PROPFIND` (`Depth` 0 or 1) answers 207 Multi-Status; with [`Listing::Denied`] as
//!   an XRootD origin with `http.listingdeny true` (403 to both).
//! - Files behave like Apache static files: strong `ETag` (`"{len hex}-{content hash}"`),
//!   `Last-Modified` (catalogue: on 2018-03-28, the MAST release date; CSVs: in 2021; the time
//!   of day/year is derived from the content hash so different content never shares a date),
//!   `Accept-Ranges: bytes`, one byte range per request (`N-`, `N-M`, `-N`; 206 with
//!   `Content-Range`; 416 with `Content-Range: bytes */TOTAL`; several ranges or bad syntax are
//!   ignored and get the whole file), `If-Range` (strong ETag or exact date, otherwise 200 with
//!   the whole file), `If-None-Match`/`If-Modified-Since` (304). `Range` on HEAD is ignored
//!   (RFC 9110 14.2). Content types `application/fits` and `text/csv`.
//! - Partitions: bands of [`Config::band_deg`] degrees from Dec -30 (ATLAS's southern limit)
//!   to +90; the last band is cut at +90. Bounds are written as plain integers when whole
//!   (`atlas_lc_dr1_-30--20.csv`, `atlas_lc_dr1_0-10.csv`), otherwise as the shortest decimal
//!   (`atlas_lc_dr1_-22.5--15.csv`). Every band has a file, header-only when empty.
//! - Values: `ATO_ID` is `J{hhmmss.ss}{±ddmmss.s}` from the position (the real designation
//!   format is not verified; it may be decimal degrees), `starID` is the `objid`; objects are
//!   uniform on the sphere above Dec -30; `CLASS` skewed (`dubious` ~38 %, `MIRA` ~1 %);
//!   probabilities are multiples of 1e-4 summing to 1 with the object's class strictly the
//!   largest; periods, magnitudes, `vf_c_med`/`vf_o_med` (treated as median c/o magnitudes)
//!   and light curves (MJD 57000–58500, sinusoids plus noise, 65 % `o`) are plausible
//!   inventions. CSV numbers are printed like a database dump: `%.6f` for ra, dec, periods and
//!   mjd, `%.4f` for probabilities, `%.3f` for magnitudes, dra/ddec (arcsec), m, dm; no NULLs.
//!   Values are quantised so the CSV text round-trips exactly to the FITS/struct values.
//! - File order: with [`Config::split_runs`] an object's rows are shuffled and cut into 2–3
//!   runs that are interleaved with other objects' runs (never two runs of one object side by
//!   side; an object alone in its band has one run). Objects in catalogue (`objid`) order.
//! - FITS: primary HDU with a few HLSP-style keywords (`TELESCOP`, `HLSPID`, `DOI`, …), then
//!   the `OBJECT` table with columns `objid` (K), `ATO_ID` (20A), `ra`, `dec` (D), `CLASS` (8A),
//!   14 `prob_*` (E, in [`CLASSES`] order), `fp_LSperiod` (D), `gmag`…`ymag` (E), `fp_period`,
//!   `ls_Pday`, `fp_lngfitper` (D), `vf_c_med`, `vf_o_med` (E), strings padded with spaces.
//! - Faults, latency and the meter are test instruments.

mod data;
mod files;
mod fits;

pub use data::{
    partition_name, Catalog, Dataset, Detection, ObjectRow, CATALOG_FILE, CLASSES, CSV_COLUMNS, DEC_MAX, DEC_MIN,
};
pub use fits::catalog_columns;

use crate::http::{self, Conn, ReadOutcome, Request, Response};
use crate::ps1::fnv1a;
use files::StaticFile;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Where the catalogue is served.
pub const CATALOG_FOLDER: &str = "/hlsp/atlas-var/";
/// Where the light-curve CSV files are served.
pub const LIGHTCURVE_FOLDER: &str = "/atlas/dr1/";

#[derive(Clone, Debug)]
pub struct Config {
    /// Number of catalogue objects.
    pub objects: usize,
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Width of a declination band (one CSV file), degrees; at least 0.01.
    pub band_deg: f64,
    /// Detections per object, drawn uniformly from `min..=max`.
    pub detections_per_object: (usize, usize),
    /// Split each object's rows into 2–3 shuffled, non-contiguous runs in its partition file.
    pub split_runs: bool,
    pub faults: Faults,
    /// Added before every answer.
    pub latency: Duration,
    /// How the light-curve folder can be listed.
    pub listing: Listing,
}

/// How the light-curve folder answers listings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Listing {
    /// Apache with `mod_autoindex` and no `mod_dav`: `GET` on the folder is an HTML index page;
    /// `PROPFIND` is 405.
    #[default]
    Html,
    /// A WebDAV origin as Pelican serves one (`golang.org/x/net/webdav`): `GET` on the folder is
    /// 405, `PROPFIND` with `Depth: 0` or `1` answers 207 Multi-Status.
    WebDav,
    /// An XRootD origin with `http.listingdeny true`: `GET` on the folder is 403, `PROPFIND` too.
    Denied,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            objects: 300,
            seed: 2018,
            band_deg: 10.0,
            detections_per_object: (20, 60),
            split_runs: true,
            faults: Faults::default(),
            latency: Duration::ZERO,
            listing: Listing::Html,
        }
    }
}

/// Deterministic faults. A fault with period `n` hits the request targets (path + query, as
/// sent) whose salted, mixed FNV-1a hash is divisible by `n` (`1`: all, `0`: none), and only the
/// first attempt of a method at a target (a HEAD does not use up the GET's fault), so a retry
/// succeeds. A reset wins over a 503.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Send the head of the normal answer (e.g. 200 or 206, with the full `Content-Length`)
    /// and half of its body, then reset the connection (SO_LINGER 0).
    pub reset_mid_body_every_nth: Option<u64>,
    /// Answer 503 Service Unavailable.
    pub every_nth_503: Option<u64>,
    /// A hostile answer (see [`crate::hostile`]) to the file GETs it picks (catalogue or
    /// partition; not HEAD), on every attempt.
    pub hostile: Option<crate::hostile::HostileFault>,
}

/// What the server saw.
#[derive(Clone, Debug, Serialize)]
pub struct Meter {
    pub requests: u64,
    /// Body bytes written to the socket per file name (catalogue or CSV), partial sends
    /// included (HEAD, 304 and error pages count nothing).
    pub bytes_sent_per_file: BTreeMap<String, u64>,
    /// File answers with status 206.
    pub range_requests: u64,
    /// File answers with status 200 (the whole file; HEAD included).
    pub full_requests: u64,
    pub status_counts: BTreeMap<u16, u64>,
    /// Most requests being handled at once.
    pub peak_inflight: usize,
    /// Distinct `User-Agent` values (`""` for a request without one).
    pub user_agents: BTreeSet<String>,
}

#[derive(Default)]
struct MeterState {
    requests: u64,
    bytes_sent_per_file: BTreeMap<String, u64>,
    range_requests: u64,
    full_requests: u64,
    status_counts: BTreeMap<u16, u64>,
    user_agents: BTreeSet<String>,
}

struct Shared {
    addr: SocketAddr,
    dataset: Dataset,
    /// Path → file.
    files: HashMap<String, StaticFile>,
    latency: Duration,
    listing: Listing,
    faults: RwLock<Faults>,
    inflight: http::InFlight,
    meter: Mutex<MeterState>,
    attempts: Mutex<HashMap<String, u64>>,
}

impl Shared {
    fn record_status(&self, status: u16) {
        *self.meter.lock().unwrap().status_counts.entry(status).or_default() += 1;
    }

    fn add_bytes(&self, file: &str, n: i64) {
        let mut m = self.meter.lock().unwrap();
        let v = m.bytes_sent_per_file.entry(file.to_string()).or_default();
        *v = v.saturating_add_signed(n);
    }

    /// Counts an attempt; returns its number (1 = first).
    fn attempt(&self, method: &str, target: &str) -> u64 {
        let mut a = self.attempts.lock().unwrap();
        let n = a.entry(format!("{method} {target}")).or_default();
        *n += 1;
        *n
    }
}

/// A running emulator; dropping it stops accepting and closes open connections.
pub struct AtlasVarEmulator {
    shared: Arc<Shared>,
    _acceptor: http::Acceptor,
}

/// 2018-03-28 00:00:00 UTC.
const CATALOG_DAY: u64 = 1_522_195_200;
/// 2021-01-01 00:00:00 UTC.
const CSV_YEAR: u64 = 1_609_459_200;

impl AtlasVarEmulator {
    /// Generates the data set and serves it on `127.0.0.1:0`.
    pub fn start(cfg: Config) -> io::Result<AtlasVarEmulator> {
        AtlasVarEmulator::start_on("127.0.0.1:0", cfg)
    }

    /// Generates the data set and serves it on `addr` (e.g. `127.0.0.1:8080`).
    pub fn start_on(addr: &str, cfg: Config) -> io::Result<AtlasVarEmulator> {
        data::validate(&cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let dataset = Dataset::generate(&cfg);
        let mut files = HashMap::new();
        let cat =
            StaticFile::new(CATALOG_FILE.to_string(), dataset.catalog_fits(), "application/fits", CATALOG_DAY, 86_400);
        files.insert(format!("{CATALOG_FOLDER}{CATALOG_FILE}"), cat);
        for (name, _, _) in &dataset.partitions {
            let body = dataset.partition_csv(name).expect("a listed partition");
            let f = StaticFile::new(name.clone(), body, "text/csv", CSV_YEAR, 365 * 86_400);
            files.insert(format!("{LIGHTCURVE_FOLDER}{name}"), f);
        }
        let listener = TcpListener::bind(addr)?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            dataset,
            files,
            latency: cfg.latency,
            listing: cfg.listing,
            faults: RwLock::new(cfg.faults),
            inflight: http::InFlight::default(),
            meter: Mutex::new(MeterState::default()),
            attempts: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let _acceptor = http::Acceptor::start(listener, "atlas-var", move |stream| {
            let _ = serve_connection(stream, &s);
        })?;
        Ok(AtlasVarEmulator { shared, _acceptor })
    }

    /// The data the emulator serves.
    pub fn dataset(&self) -> &Dataset {
        &self.shared.dataset
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", http::connect_addr(self.shared.addr))
    }

    /// `http://127.0.0.1:PORT/hlsp/atlas-var/hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits`
    pub fn catalog_url(&self) -> String {
        format!("{}{CATALOG_FOLDER}{CATALOG_FILE}", self.base_url())
    }

    /// `http://127.0.0.1:PORT/atlas/dr1/` (a folder; file URLs are this plus the file name).
    pub fn lightcurves_url(&self) -> String {
        format!("{}{LIGHTCURVE_FOLDER}", self.base_url())
    }

    /// A snapshot of the meter.
    pub fn meter(&self) -> Meter {
        let m = self.shared.meter.lock().unwrap();
        Meter {
            requests: m.requests,
            bytes_sent_per_file: m.bytes_sent_per_file.clone(),
            range_requests: m.range_requests,
            full_requests: m.full_requests,
            status_counts: m.status_counts.clone(),
            peak_inflight: self.shared.inflight.peak(),
            user_agents: m.user_agents.clone(),
        }
    }

    /// Clears the meter (the peak restarts from the requests in flight now).
    pub fn reset_meter(&self) {
        *self.shared.meter.lock().unwrap() = MeterState::default();
        self.shared.inflight.reset_peak();
    }

    /// Replaces the faults (attempt counts are kept; see [`AtlasVarEmulator::forget_attempts`]).
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.write().unwrap() = faults;
    }

    /// Forgets which requests were already made, so faults fire again on the next attempt.
    pub fn forget_attempts(&self) {
        self.shared.attempts.lock().unwrap().clear();
    }
}

enum FaultKind {
    ResetMidBody,
    Unavailable,
}

/// Whether period `n` picks `target`: FNV-1a of salt and target, with a final avalanche step
/// (FNV's low bits alone are poorly spread for similar targets).
fn picks(n: u64, salt: &str, target: &str) -> bool {
    let mut h = fnv1a(format!("atlas-var\0{salt}\0{target}").as_bytes());
    h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    n > 0 && h.is_multiple_of(n)
}

fn choose_fault(f: &Faults, target: &str) -> Option<FaultKind> {
    if f.reset_mid_body_every_nth.is_some_and(|n| picks(n, "reset", target)) {
        return Some(FaultKind::ResetMidBody);
    }
    if f.every_nth_503.is_some_and(|n| picks(n, "503", target)) {
        return Some(FaultKind::Unavailable);
    }
    None
}

const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_CHUNK: usize = 64 * 1024;

/// Writes the head and `body` (or its first `limit` bytes), counting body bytes per file. The
/// count is raised before writing (so a client that has read everything never sees a lagging
/// meter) and lowered by whatever could not be written.
fn send(
    stream: &mut TcpStream,
    shared: &Shared,
    resp: &Response,
    file: Option<&str>,
    head_only: bool,
    keep_alive: bool,
    limit: Option<usize>,
) -> io::Result<()> {
    let body: &[u8] = if head_only || matches!(resp.status, 204 | 304) {
        &[]
    } else {
        &resp.body[..limit.unwrap_or(resp.body.len()).min(resp.body.len())]
    };
    if let Some(f) = file {
        shared.add_bytes(f, body.len() as i64);
    }
    let mut written = 0;
    let result = (|| {
        stream.write_all(&resp.head_bytes(keep_alive))?;
        while written < body.len() {
            let end = (written + WRITE_CHUNK).min(body.len());
            match stream.write(&body[written..end]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "peer stopped reading")),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        stream.flush()
    })();
    if let (Err(_), Some(f)) = (&result, file) {
        shared.add_bytes(f, written as i64 - body.len() as i64);
    }
    result
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
                let _ = send(&mut conn.stream, shared, &Response::text(status, msg), None, false, false, None);
                return Ok(());
            }
            ReadOutcome::Request(r) => r,
        };
        {
            let mut m = shared.meter.lock().unwrap();
            m.requests += 1;
            m.user_agents.insert(req.header("user-agent").unwrap_or("").to_string());
        }
        let (guard, _) = shared.inflight.enter();
        if !shared.latency.is_zero() {
            std::thread::sleep(shared.latency);
        }
        let head_only = req.method == "HEAD";
        let keep_alive = req.keep_alive;
        let faults = shared.faults.read().unwrap().clone();
        let fault = if matches!(req.method.as_str(), "GET" | "HEAD") && shared.attempt(&req.method, &req.target) == 1 {
            choose_fault(&faults, &req.target)
        } else {
            None
        };
        let (resp, file) = match fault {
            Some(FaultKind::Unavailable) => (Response::text(503, "Service Unavailable: please try again later"), None),
            _ => route(shared, &req),
        };
        if let Some(h) =
            faults.hostile.as_ref().filter(|h| req.method == "GET" && file.is_some() && h.hits(&req.target))
        {
            shared.record_status(resp.status);
            drop(guard);
            return crate::hostile::answer(&mut conn.stream, &h.kind, &req.target, &resp);
        }
        shared.record_status(resp.status);
        // Only file contents count as file bytes (not 304s, 416 pages or 503s).
        let file = file.filter(|_| matches!(resp.status, 200 | 206));
        if file.is_some() {
            let mut m = shared.meter.lock().unwrap();
            if resp.status == 200 {
                m.full_requests += 1;
            } else {
                m.range_requests += 1;
            }
        }
        if let Some(FaultKind::ResetMidBody) = fault {
            let half = resp.body.len() / 2;
            let _ = send(&mut conn.stream, shared, &resp, file.as_deref(), head_only, keep_alive, Some(half));
            // Let the peer take every byte sent before the reset, so none is lost in flight and
            // the meter's count is what the client received (whatever the machine's load).
            http::wait_acknowledged(&conn.stream, Duration::from_secs(5));
            drop(guard);
            http::abort(conn.stream);
            return Ok(());
        }
        let result = send(&mut conn.stream, shared, &resp, file.as_deref(), head_only, keep_alive, None);
        drop(guard);
        result?;
        if !keep_alive {
            let _ = conn.stream.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
}

/// Decodes `%XX` escapes (invalid ones stay as they are).
fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn not_found(path: &str) -> Response {
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n<p>The requested URL {} was not found on this server.</p>\n</body></html>\n",
        path.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    );
    Response::new(404, "text/html; charset=iso-8859-1", body.into_bytes())
}

/// The answer, and the file name it serves (for the meter).
fn route(shared: &Shared, req: &Request) -> (Response, Option<String>) {
    let path = percent_decode(&req.path);
    let known = shared.files.contains_key(&path)
        || path == LIGHTCURVE_FOLDER
        || path == LIGHTCURVE_FOLDER.trim_end_matches('/');
    let folder = path == LIGHTCURVE_FOLDER || path == LIGHTCURVE_FOLDER.trim_end_matches('/');
    if req.method == "PROPFIND" && shared.listing == Listing::WebDav && known {
        return (propfind(shared, req, &path), None);
    }
    if folder && shared.listing != Listing::Html && matches!(req.method.as_str(), "GET" | "HEAD") {
        return match shared.listing {
            // golang.org/x/net/webdav answers GET on a collection with 405.
            Listing::WebDav => (
                Response::text(405, "Method Not Allowed").with_header("Allow", "OPTIONS, PROPFIND, DELETE, MKCOL, PUT"),
                None,
            ),
            _ => (Response::text(403, "Unable to open directory: listing is disabled"), None),
        };
    }
    if folder && shared.listing == Listing::Denied && req.method == "PROPFIND" {
        return (Response::text(403, "Unable to list directory: listing is disabled"), None);
    }
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        if known {
            let allow = if shared.listing == Listing::WebDav { "GET, HEAD, PROPFIND" } else { "GET, HEAD" };
            return (Response::text(405, "Method Not Allowed").with_header("Allow", allow), None);
        }
        return (not_found(&path), None);
    }
    if let Some(f) = shared.files.get(&path) {
        return (files::answer(req, f), Some(f.name.clone()));
    }
    if path == LIGHTCURVE_FOLDER {
        let mut csvs: Vec<&StaticFile> =
            shared.files.iter().filter(|(p, _)| p.starts_with(LIGHTCURVE_FOLDER)).map(|(_, f)| f).collect();
        csvs.sort_by(|a, b| a.name.cmp(&b.name));
        let host =
            req.header("host").map(str::to_string).unwrap_or_else(|| http::connect_addr(shared.addr).to_string());
        let page = files::index_page(LIGHTCURVE_FOLDER, &csvs, &host);
        return (Response::new(200, "text/html;charset=UTF-8", page), None);
    }
    if path == LIGHTCURVE_FOLDER.trim_end_matches('/') {
        let host =
            req.header("host").map(str::to_string).unwrap_or_else(|| http::connect_addr(shared.addr).to_string());
        let location = format!("http://{host}{LIGHTCURVE_FOLDER}");
        let body = format!("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>301 Moved Permanently</title>\n</head><body>\n<h1>Moved Permanently</h1>\n<p>The document has moved <a href=\"{location}\">here</a>.</p>\n</body></html>\n");
        return (
            Response::new(301, "text/html; charset=iso-8859-1", body.into_bytes()).with_header("Location", location),
            None,
        );
    }
    (not_found(&path), None)
}

/// A WebDAV `PROPFIND` on the light-curve folder or one of its files (RFC 4918 9.1), as
/// `golang.org/x/net/webdav` answers it: `Depth` 0 or 1 (a missing `Depth` means infinity, which
/// is refused with 403 `propfind-finite-depth`, as RFC 4918 allows); the body must be empty
/// (allprop) or a well-formed `DAV:propfind` document (else 400); 207 with one `response` per
/// resource, hrefs as absolute percent-encoded paths.
fn propfind(shared: &Shared, req: &Request, path: &str) -> Response {
    let depth = match req.header("depth").map(str::trim) {
        Some("0") => 0,
        Some("1") => 1,
        None | Some("infinity") => {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>";
            return Response::new(403, "text/xml; charset=utf-8", body.as_bytes().to_vec());
        }
        Some(_) => return Response::text(400, "invalid depth"),
    };
    if !req.body.is_empty() && !files::is_propfind_document(&req.body) {
        return Response::text(400, "invalid propfind request body");
    }
    let mut members: Vec<(String, Option<&StaticFile>)> = Vec::new();
    if let Some(f) = shared.files.get(path) {
        members.push((path.to_string(), Some(f)));
    } else {
        members.push((LIGHTCURVE_FOLDER.to_string(), None));
        if depth == 1 {
            let mut csvs: Vec<(&String, &StaticFile)> =
                shared.files.iter().filter(|(p, _)| p.starts_with(LIGHTCURVE_FOLDER)).collect();
            csvs.sort_by(|a, b| a.0.cmp(b.0));
            members.extend(csvs.into_iter().map(|(p, f)| (p.clone(), Some(f))));
        }
    }
    Response::new(207, "text/xml; charset=utf-8", files::multistatus(&members))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("/atlas/dr1/atlas_lc_dr1_%2D30--20.csv"), "/atlas/dr1/atlas_lc_dr1_-30--20.csv");
        assert_eq!(percent_decode("/a%2"), "/a%2");
        assert_eq!(percent_decode("/a%zz%41"), "/a%zzA");
    }

    #[test]
    fn fault_selection_is_spread() {
        let targets: Vec<String> = (0..400).map(|i| format!("/atlas/dr1/atlas_lc_dr1_{i}-{}.csv", i + 1)).collect();
        let hits = targets.iter().filter(|t| picks(4, "503", t)).count();
        assert!(hits > 60 && hits < 140, "{hits}");
        assert!(targets.iter().all(|t| picks(1, "reset", t)));
        assert!(!targets.iter().any(|t| picks(0, "reset", t)));
    }
}
