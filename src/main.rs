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

/// Have glibc give freed memory back to the system. By default it raises its mmap and trim
/// thresholds to the largest buffer freed so far (zstd's job buffers are megabytes), after which
/// every thread's arena may keep tens of MiB of freed memory: peak RSS of a zstd shard run at
/// 80,000 files was 182-189 MB, 142-148 MB with these fixed thresholds, at the same CPU. 1 MiB,
/// not glibc's initial 128 KiB: the shard writer's 128 KiB sample batches would each be mapped and
/// unmapped (+0.15 s of kernel time for ATLAS-VAR's 476 MB). See bench/README.md.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory() {
    // SAFETY: mallopt only changes malloc's parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}

/// A closed stdout (`etd inspect x | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
