//! `etd-emulator ps1 [--addr 127.0.0.1:0] [--latency-ms N] [--max-inflight N] [--meter-file PATH]`
//!
//! Starts an emulator, prints its base URL (one line) on stdout, serves until stdin reaches EOF,
//! then writes the meter as JSON to `--meter-file` (if given) and exits 0.

use etd_emulators::ps1::{Faults, Ps1Emulator};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: etd-emulator ps1 [--addr 127.0.0.1:0] [--latency-ms N] [--max-inflight N] [--meter-file PATH]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etd-emulator: {e}");
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("ps1") => {}
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return Ok(());
        }
        Some(other) => return Err(format!("unknown emulator {other:?}")),
        None => return Err("missing emulator name".into()),
    }
    let mut addr = "127.0.0.1:0".to_string();
    let mut faults = Faults::default();
    let mut meter_file: Option<String> = None;
    while let Some(flag) = args.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (flag.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"));
        match name.as_str() {
            "--addr" => addr = value()?,
            "--latency-ms" => {
                let v = value()?;
                let ms: u64 = v.parse().map_err(|_| format!("invalid --latency-ms {v:?}"))?;
                faults.latency = Duration::from_millis(ms);
            }
            "--max-inflight" => {
                let v = value()?;
                faults.max_inflight = Some(v.parse().map_err(|_| format!("invalid --max-inflight {v:?}"))?);
            }
            "--meter-file" => meter_file = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    let emu = Ps1Emulator::start_on(&addr, faults).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", emu.base_url()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    // Serve until stdin closes.
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
    if let Some(path) = meter_file {
        let json = serde_json::to_string_pretty(&emu.meter()).map_err(|e| e.to_string())?;
        std::fs::write(&path, json + "\n").map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    drop(emu);
    Ok(())
}
