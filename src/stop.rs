//! Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM (what batch systems send before SIGKILL): the
//! handlers only record the signal; the fetch engine and the shard and publish loops ask
//! [`requested`] between units of work, finish or abandon what is under way, keep their journals
//! and earlier output intact, and end with exit 130 (SIGINT) or 143 (SIGTERM). A second signal
//! ends the process at once.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::error::Exit;

/// A signal that asked etd to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal number, as shells report a process ended by it.
    pub fn exit(self) -> Exit {
        match self {
            StopSignal::Interrupt => Exit::Interrupted,
            StopSignal::Terminate => Exit::Terminated,
        }
    }
}

/// The error a command returns when it stopped on a signal before it finished.
#[derive(Debug)]
pub struct Stopped {
    pub signal: StopSignal,
    /// What did not finish and what was kept (`shard did not finish; the previous shards are intact`).
    pub what: String,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stopped by {}: {}", self.signal.name(), self.what)
    }
}

impl std::error::Error for Stopped {}

struct Flags {
    /// The last signal number received (0: none).
    signal: Arc<AtomicUsize>,
    /// Set by the first signal: a second one ends the process at once.
    armed: Arc<AtomicBool>,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();

#[cfg(unix)]
const SIGNALS: [(i32, StopSignal); 2] =
    [(signal_hook::consts::SIGINT, StopSignal::Interrupt), (signal_hook::consts::SIGTERM, StopSignal::Terminate)];
#[cfg(not(unix))]
const SIGNALS: [(i32, StopSignal); 1] = [(signal_hook::consts::SIGINT, StopSignal::Interrupt)];

/// Install the handlers (once per process; `main` does it before any command runs).
pub fn install() -> std::io::Result<()> {
    if FLAGS.get().is_some() {
        return Ok(());
    }
    let flags = Flags { signal: Arc::new(AtomicUsize::new(0)), armed: Arc::new(AtomicBool::new(false)) };
    for (number, sig) in SIGNALS {
        // The shutdown goes first: it acts only when an earlier signal armed it.
        signal_hook::flag::register_conditional_shutdown(number, 128 + number, Arc::clone(&flags.armed))?;
        signal_hook::flag::register(number, Arc::clone(&flags.armed))?;
        signal_hook::flag::register_usize(number, Arc::clone(&flags.signal), sig as usize + 1)?;
    }
    let _ = FLAGS.set(flags);
    Ok(())
}

/// The signal that asked to stop, if one has.
pub fn requested() -> Option<StopSignal> {
    let flags = FLAGS.get()?;
    match flags.signal.load(Ordering::SeqCst) {
        0 => None,
        n if n == StopSignal::Interrupt as usize + 1 => Some(StopSignal::Interrupt),
        _ => Some(StopSignal::Terminate),
    }
}

/// `Err(Stopped)` once a signal asked to stop, for loops that end with `?`.
pub fn check(what: impl FnOnce() -> String) -> Result<(), Stopped> {
    match requested() {
        Some(signal) => Err(Stopped { signal, what: what() }),
        None => Ok(()),
    }
}

/// How often async waiters look at the flag.
const POLL: Duration = Duration::from_millis(50);

/// Resolves when a signal asks to stop (for `tokio::select!`).
pub async fn wait() -> StopSignal {
    loop {
        if let Some(s) = requested() {
            return s;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Run `fut` unless a signal asks to stop first (then it is dropped, abandoning its work).
pub async fn unless_stopped<T>(fut: impl std::future::Future<Output = T>) -> Result<T, StopSignal> {
    tokio::select! {
        out = fut => Ok(out),
        signal = wait() => Err(signal),
    }
}

/// How long a stopping fetch lets units under way finish before it abandons them (batch systems
/// wait 30 s or more between SIGTERM and SIGKILL).
pub const GRACE: Duration = Duration::from_secs(5);
