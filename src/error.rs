//! Exit codes and the user-facing error type that carries one, plus a hint.

use std::fmt;
use std::process::ExitCode;

/// Exit codes, as documented in the README and the man page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything done.
    Success,
    /// 1: runtime failure.
    Failure,
    /// 2: usage or recipe error.
    Usage,
    /// 3: finished, but some items failed permanently (listed in `failures.jsonl`).
    SomeFailed,
    /// 75: temporary failure worth retrying later (EX_TEMPFAIL).
    TempFail,
    /// 130: stopped by SIGINT (Ctrl-C) after recording what was done.
    Interrupted,
    /// 143: stopped by SIGTERM after recording what was done.
    Terminated,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::SomeFailed => 3,
            Exit::TempFail => 75,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// Whether `err` happened because a disk (or the user's quota) is full: ENOSPC or EDQUOT anywhere
/// in its chain.
pub fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).any(|io| {
        use std::io::ErrorKind::{QuotaExceeded, StorageFull};
        matches!(io.kind(), StorageFull | QuotaExceeded)
            || io.raw_os_error().is_some_and(|n| n == libc::ENOSPC || n == libc::EDQUOT)
    })
}

/// An error meant for the user: what went wrong, which exit code it warrants, and how to fix it.
/// Wrap it in `anyhow` like any other error; `main` finds it in the chain.
#[derive(Debug)]
pub struct UserError {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
}

impl UserError {
    /// A usage or recipe error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        UserError { exit: Exit::Usage, message: message.into(), hint: None }
    }

    /// A runtime failure (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        UserError { exit: Exit::Failure, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_quota_is_recognised_through_contexts() {
        for code in [libc::ENOSPC, libc::EDQUOT] {
            let err = anyhow::Error::new(std::io::Error::from_raw_os_error(code)).context("cannot write /x/y");
            assert!(is_disk_full(&err), "{code}");
        }
        assert!(!is_disk_full(&anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EACCES))));
    }
}
