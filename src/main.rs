//! The `etd` binary: parse the command line, run, print the error (if any), pick the exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    return_freed_memory();
    let cli = match etd::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(etd::error::Exit::Usage.code()) } else { ExitCode::SUCCESS };
        }
    };
    let reporter = match etd::commands::term::init(&cli.global) {
        Ok(r) => r,
        Err(e) => {
            let err = anyhow::Error::new(e);
            eprint!("{}", etd::commands::diagnostics::render(&err));
            return etd::commands::diagnostics::classify(&err).0.into();
        }
    };
    if let Err(e) = etd::stop::install() {
        tracing::warn!("cannot install the SIGINT/SIGTERM handlers ({e}); a signal ends etd without a summary");
    }
    match etd::commands::dispatch(&cli, reporter) {
        Ok(exit) => exit.into(),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprint!("{}", etd::commands::diagnostics::render(&err));
            etd::commands::diagnostics::classify(&err).0.into()
        }
    }
}

/// Have glibc give freed memory back to the system. By default it raises its trim and mmap
/// thresholds to the largest buffer freed so far (zstd's job buffers are megabytes), after which
/// every thread's arena keeps up to 64 MiB of freed memory: peak RSS of a zstd shard run at 80,000
/// files fell from 182-189 MB to 143-147 MB with the fixed thresholds, at the same CPU
/// (bench/README.md, "Peak memory").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory() {
    // Setting the trim threshold also turns the dynamic thresholds off, which keeps allocations
    // of 128 KiB and more in their own mappings, unmapped when freed.
    // SAFETY: mallopt only changes malloc's parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}

/// A closed stdout (`etd inspect x | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
