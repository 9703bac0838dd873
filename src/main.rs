//! The `etd` binary: parse the command line, run, print the error (if any), pick the exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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

/// A closed stdout (`etd inspect x | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
