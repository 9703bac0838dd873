//! The real archive files the emulators serve and the tests compare against (a PS1 cutout, ATLAS
//! forced-photometry results, alerts). They come from other people's repositories, so they are
//! never copied into this one: they are read at run time from the project's shared fixtures
//! folder, `$ETD_FIXTURES` if set, else `../shared/fixtures` beside the checkout (where CI has it).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Environment variable naming the fixtures folder.
pub const ENV: &str = "ETD_FIXTURES";

/// The fixtures folder: `$ETD_FIXTURES`, else `<checkout>/../shared/fixtures`.
pub fn dir() -> PathBuf {
    match std::env::var_os(ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures")),
    }
}

/// A fixture that is not there.
#[derive(Debug, Clone)]
pub struct Missing {
    pub path: PathBuf,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "real archive fixture {} not found (the fixtures folder is ${ENV}, else ../shared/fixtures beside the checkout)",
            self.path.display()
        )
    }
}

impl std::error::Error for Missing {}

/// The path of fixture `rel` (such as `atlas-fp/job01088.txt`), if it is there.
pub fn path(rel: &str) -> Result<PathBuf, Missing> {
    let path = dir().join(rel);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Missing { path })
    }
}

static SYNTHETIC: AtomicBool = AtomicBool::new(false);

/// Let the emulators serve stand-ins with the real layout and invented values
/// ([`crate::synthetic`]) where a real file is missing. For `etd-emulator` run by hand on a
/// machine without the fixtures folder; tests never call it.
pub fn allow_synthetic() {
    SYNTHETIC.store(true, Ordering::Relaxed);
}

/// The stand-in for fixture `rel`, if there is one.
fn synthetic(rel: &str) -> Option<Vec<u8>> {
    if rel == PS1_CUTOUT {
        return Some(crate::synthetic::ps1_cutout());
    }
    let name = rel.strip_prefix("atlas-fp/")?.strip_suffix(".txt")?;
    ATLAS_RESULTS.contains(&name).then(|| crate::synthetic::atlas_result(name).into_bytes())
}

/// The bytes of fixture `rel`, read once per process and kept (the emulators serve them often).
pub fn bytes(rel: &str) -> Result<&'static [u8], Missing> {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static [u8]>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(b) = cache.lock().unwrap().get(rel) {
        return Ok(b);
    }
    let data = match path(rel) {
        Ok(path) => fs_err::read(&path).map_err(|_| Missing { path })?,
        Err(missing) => match SYNTHETIC.load(Ordering::Relaxed).then(|| synthetic(rel)).flatten() {
            Some(data) => data,
            None => return Err(missing),
        },
    };
    let leaked: &'static [u8] = Box::leak(data.into_boxed_slice());
    cache.lock().unwrap().insert(rel.to_string(), leaked);
    Ok(leaked)
}

/// The text of fixture `rel` (a fixture that is not UTF-8 counts as missing).
pub fn text(rel: &str) -> Result<&'static str, Missing> {
    let b = bytes(rel)?;
    std::str::from_utf8(b).map_err(|_| Missing { path: dir().join(rel) })
}

/// Whether runs must not skip: `CI` is set to something other than `false`/`0`/empty.
pub fn under_ci() -> bool {
    std::env::var("CI").map(|v| !v.is_empty() && v != "false" && v != "0").unwrap_or(false)
}

/// For tests: true when every fixture in `rels` is there. Otherwise prints `skipped: ...` and
/// returns false, or panics under CI, where the fixtures are always present and a missing one
/// is a broken set-up, not a reason to pass.
pub fn available(test: &str, rels: &[&str]) -> bool {
    for rel in rels {
        if let Err(e) = path(rel) {
            if under_ci() {
                panic!("{test}: {e}");
            }
            eprintln!("skipped: {test}: {e}");
            return false;
        }
    }
    true
}

/// The PS1 `fitscut.cgi` cutout the PS1 emulator builds its cutouts from.
pub const PS1_CUTOUT: &str = "ps1/cutout_rings.v3.skycell.1268.000.stk.r.unconv.fits";

/// The real ATLAS forced-photometry result files, by job name (`atlas-fp/<name>.txt`).
pub const ATLAS_RESULTS: [&str; 6] = ["job00128", "job01064", "job01088", "job01144", "job01381", "job-south-2024"];

/// The path of ATLAS result fixture `name` (from [`ATLAS_RESULTS`]).
pub fn atlas_result(name: &str) -> String {
    format!("atlas-fp/{name}.txt")
}

/// Every fixture the emulators need (PS1 cutout and ATLAS results).
pub fn emulator_fixtures() -> Vec<String> {
    let mut all = vec![PS1_CUTOUT.to_string()];
    all.extend(ATLAS_RESULTS.iter().map(|n| atlas_result(n)));
    all
}

/// [`available`] for every fixture the emulators need: call first in a test that starts an
/// emulator or reads a fixture, and return when it says false.
pub fn emulators_available(test: &str) -> bool {
    let all = emulator_fixtures();
    let rels: Vec<&str> = all.iter().map(String::as_str).collect();
    available(test, &rels)
}

/// `if !etd_emulators::require_fixtures!() { return; }` in short: returns from the calling test
/// (printing `skipped: ...`) when the fixtures are missing, panics under CI.
#[macro_export]
macro_rules! require_fixtures {
    () => {
        if !$crate::fixtures::emulators_available(std::thread::current().name().unwrap_or(module_path!())) {
            return;
        }
    };
}
