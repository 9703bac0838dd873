//! `etd-emulator ps1 [--addr 127.0.0.1:0] [--latency-ms N] [--max-inflight N] [--fault KIND[@TEXT]] [--meter-file PATH]`
//! `etd-emulator atlas-fp [--addr 127.0.0.1:0] [--time-scale X] [--queue-ms N] [--run-ms N]
//!                        [--latency-ms N] [--fault KIND[@TEXT]] [--meter-file PATH]`
//! `etd-emulator atlas-var [--addr 127.0.0.1:0] [--objects N] [--seed N] [--band-deg X]
//!                         [--listing html|webdav|denied] [--latency-ms N] [--fault KIND[@TEXT]]
//!                         [--meter-file PATH]`
//! `etd-emulator astrocut [--addr 127.0.0.1:0] [--latency-ms N] [--cadences N] [--meter-file PATH]`
//! Every emulator also takes `--exit-on-stdin-eof`.
//!
//! Starts an emulator, prints its base URL (one line; for `atlas-fp` a second line holds the API
//! token of the default user; `atlas-var` prints the catalogue URL and the light-curve folder
//! URL on two lines instead) on stdout, serves until SIGINT (Ctrl-C), SIGTERM or SIGHUP arrives
//! (with `--exit-on-stdin-eof`: or until stdin reaches end of file, which scripts use by holding
//! a pipe open), then writes the meter as JSON to `--meter-file` (if given) and exits 0. It keeps
//! serving when started in the background (`etd-emulator ps1 &`), where stdin is closed at once.

use etd_emulators::astrocut::{self, AstrocutEmulator};
use etd_emulators::atlas_fp::{self, AtlasEmulator};
use etd_emulators::atlas_var::{self, AtlasVarEmulator};
use etd_emulators::ps1::{Faults, Ps1Emulator};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: etd-emulator ps1 [--addr 127.0.0.1:0] [--latency-ms N] [--max-inflight N] [--fault KIND[@TEXT]] [--meter-file PATH]
       etd-emulator atlas-fp [--addr 127.0.0.1:0] [--time-scale X] [--queue-ms N] [--run-ms N] [--latency-ms N] [--fault KIND[@TEXT]] [--meter-file PATH]
       etd-emulator atlas-var [--addr 127.0.0.1:0] [--objects N] [--seed N] [--band-deg X] [--listing html|webdav|denied] [--latency-ms N] [--fault KIND[@TEXT]] [--meter-file PATH]
       etd-emulator astrocut [--addr 127.0.0.1:0] [--latency-ms N] [--cadences N] [--meter-file PATH]
--fault KIND[@TEXT]: a hostile answer to the cutouts (ps1), result files (atlas-fp) or file GETs (atlas-var)
  whose URL contains TEXT:
  endless-body, slow-drip, huge-headers, redirect-loop, redirect-other-host=URL, html-200,
  length-short, length-long, bad-utf8-json (ps1: the table; atlas-fp: task JSON), truncated-fits
Each serves until SIGINT (Ctrl-C), SIGTERM or SIGHUP, then writes the meter file and exits 0.
  --exit-on-stdin-eof   also stop when stdin reaches end of file (for scripts that hold a pipe open)";

/// The flag that adds "stdin reached EOF" to the ways of stopping.
const STDIN_EOF_FLAG: &str = "--exit-on-stdin-eof";

/// The signals that stop the emulator (after it writes the meter).
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn main() -> ExitCode {
    // Before any thread exists, so that every thread inherits the mask: the stop signals are then
    // only ever taken by `sigwait` in `wait_for_stop`, never delivered asynchronously.
    if let Err(e) = block_stop_signals() {
        eprintln!("etd-emulator: {e}");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etd-emulator: {e}");
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Options after the emulator name.
struct Options {
    /// `--name value` / `--name=value` pairs.
    pairs: Vec<(String, String)>,
    /// `--exit-on-stdin-eof` was given.
    stdin_eof: bool,
}

/// `--name value` / `--name=value` pairs and flags after the emulator name; `None` for `--help`.
fn options(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut args = args.peekable();
    let mut out = Vec::new();
    let mut stdin_eof = false;
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        if flag == STDIN_EOF_FLAG {
            stdin_eof = true;
            continue;
        }
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), v.to_string()),
            _ if flag.starts_with("--") => {
                let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                (flag.clone(), v)
            }
            _ => return Err(format!("unknown option {flag:?}")),
        };
        out.push((name, value));
    }
    Ok(Some(Options { pairs: out, stdin_eof }))
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("invalid {name} {v:?}"))
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let which = match args.next().as_deref() {
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return Ok(());
        }
        Some(w @ ("ps1" | "atlas-fp" | "atlas-var" | "astrocut")) => w.to_string(),
        Some(other) => return Err(format!("unknown emulator {other:?}")),
        None => return Err("missing emulator name".into()),
    };
    let Some(Options { pairs: opts, stdin_eof }) = options(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    if which != "atlas-var" && which != "astrocut" {
        synthetic_where_missing(&which);
    }
    let mut addr = "127.0.0.1:0".to_string();
    let mut meter_file: Option<String> = None;
    if which == "ps1" {
        let mut faults = Faults::default();
        for (name, v) in &opts {
            match name.as_str() {
                "--addr" => addr = v.clone(),
                "--latency-ms" => faults.latency = Duration::from_millis(number(name, v)?),
                "--max-inflight" => faults.max_inflight = Some(number(name, v)?),
                "--fault" => faults.hostile = Some(v.parse()?),
                "--meter-file" => meter_file = Some(v.clone()),
                _ => return Err(format!("unknown option {name:?}")),
            }
        }
        let emu = Ps1Emulator::start_on(&addr, faults).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        return serve(&[emu.base_url()], stdin_eof, meter_file, || serde_json::to_string_pretty(&emu.meter()));
    }
    if which == "astrocut" {
        let mut faults = astrocut::Faults::default();
        for (name, v) in &opts {
            match name.as_str() {
                "--addr" => addr = v.clone(),
                "--latency-ms" => faults.latency = Duration::from_millis(number(name, v)?),
                "--cadences" => faults.cadences = number(name, v)?,
                "--meter-file" => meter_file = Some(v.clone()),
                _ => return Err(format!("unknown option {name:?}")),
            }
        }
        let emu = AstrocutEmulator::start_on(&addr, faults).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let roots = [emu.tesscut_url(), emu.zcut_url(), emu.hapcut_url()];
        return serve(&roots, stdin_eof, meter_file, || serde_json::to_string_pretty(&emu.meter()));
    }
    if which == "atlas-var" {
        let mut cfg = atlas_var::Config::default();
        for (name, v) in &opts {
            match name.as_str() {
                "--addr" => addr = v.clone(),
                "--objects" => cfg.objects = number(name, v)?,
                "--seed" => cfg.seed = number(name, v)?,
                "--band-deg" => cfg.band_deg = number(name, v)?,
                "--listing" => {
                    cfg.listing = match v.as_str() {
                        "html" => atlas_var::Listing::Html,
                        "webdav" => atlas_var::Listing::WebDav,
                        "denied" => atlas_var::Listing::Denied,
                        _ => return Err(format!("--listing must be html, webdav or denied, not {v:?}")),
                    }
                }
                "--latency-ms" => cfg.latency = Duration::from_millis(number(name, v)?),
                "--fault" => cfg.faults.hostile = Some(v.parse()?),
                "--meter-file" => meter_file = Some(v.clone()),
                _ => return Err(format!("unknown option {name:?}")),
            }
        }
        let emu = AtlasVarEmulator::start_on(&addr, cfg).map_err(|e| format!("cannot start on {addr}: {e}"))?;
        return serve(&[emu.catalog_url(), emu.lightcurves_url()], stdin_eof, meter_file, || {
            serde_json::to_string_pretty(&emu.meter())
        });
    }
    let mut cfg = atlas_fp::Config::default();
    for (name, v) in &opts {
        match name.as_str() {
            "--addr" => addr = v.clone(),
            "--time-scale" => cfg.time_scale = number(name, v)?,
            "--queue-ms" => cfg.queue_time = Duration::from_millis(number(name, v)?),
            "--run-ms" => cfg.run_time = Duration::from_millis(number(name, v)?),
            "--latency-ms" => cfg.latency = Duration::from_millis(number(name, v)?),
            "--fault" => cfg.faults.hostile = Some(v.parse()?),
            "--meter-file" => meter_file = Some(v.clone()),
            _ => return Err(format!("unknown option {name:?}")),
        }
    }
    let token = cfg.users.first().map(|u| u.2.clone()).unwrap_or_default();
    let emu = AtlasEmulator::start_on(&addr, cfg).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    serve(&[emu.base_url(), token], stdin_eof, meter_file, || serde_json::to_string_pretty(&emu.meter()))
}

/// Prints `lines`, serves until a stop signal (or, with `stdin_eof`, the end of stdin), then
/// writes the meter JSON.
fn serve(
    lines: &[String],
    stdin_eof: bool,
    meter_file: Option<String>,
    meter: impl Fn() -> serde_json::Result<String>,
) -> Result<(), String> {
    {
        let mut out = std::io::stdout().lock();
        for l in lines {
            writeln!(out, "{l}").map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    wait_for_stop(stdin_eof)?;
    if let Some(path) = meter_file {
        let json = meter().map_err(|e| e.to_string())?;
        fs_err::write(&path, json + "\n").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The PS1 and ATLAS emulators serve real archive files from the fixtures folder; on a machine
/// without it (a user with only the repository) they serve stand-ins with the same layout, and
/// say so.
fn synthetic_where_missing(which: &str) {
    use etd_emulators::fixtures;
    let rels = match which {
        "ps1" => vec![fixtures::PS1_CUTOUT.to_string()],
        _ => fixtures::ATLAS_RESULTS.iter().map(|n| fixtures::atlas_result(n)).collect(),
    };
    if let Some(missing) = rels.iter().find_map(|r| fixtures::path(r).err()) {
        fixtures::allow_synthetic();
        eprintln!("etd-emulator: {missing}");
        eprintln!("etd-emulator: serving synthetic stand-ins with the real layout and invented values instead");
    }
}

/// The set of stop signals.
fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it; both only touch `set`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in STOP_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Block the stop signals in the calling thread (and so in every thread it starts later).
fn block_stop_signals() -> Result<(), String> {
    let set = stop_set();
    // SAFETY: `set` is a valid, initialised signal set; the old mask is not asked for.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(format!("cannot block the stop signals: {}", std::io::Error::from_raw_os_error(rc)));
    }
    Ok(())
}

/// Block until a stop signal arrives or, with `stdin_eof`, stdin reaches end of file.
fn wait_for_stop(stdin_eof: bool) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let signals = tx.clone();
    std::thread::spawn(move || {
        let set = stop_set();
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and `sig` is a valid place for the signal number. The
        // signals are blocked in every thread (see `main`), so sigwait takes them.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        let _ = signals.send(if rc == 0 {
            Ok(())
        } else {
            Err(format!("waiting for a stop signal failed: {}", std::io::Error::from_raw_os_error(rc)))
        });
    });
    if stdin_eof {
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = tx.send(Ok(()));
        });
    } else {
        drop(tx);
    }
    rx.recv().map_err(|_| "the stop signal watcher ended unexpectedly".to_string())?
}
