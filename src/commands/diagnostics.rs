//! The top of the error path: which exit code and hint an error chain asks for, and how it is
//! printed. Library modules return typed errors; only this module looks at all of them.

use crate::error::{Exit, UserError};
use crate::net::client::NetError;
use crate::recipe::RecipeError;
use crate::stop::Stopped;

/// A stage stopped because the disk it writes to is full. Exit 75 (EX_TEMPFAIL): nothing is
/// wrong with the data or the recipe, everything completed is kept and no unit is recorded as
/// failed, so the same command succeeds once space is freed; a batch system that retries 75
/// does exactly what is needed (after an operator or a cleanup job frees space).
#[derive(Debug)]
pub struct DiskFull {
    /// `fetch`, `shard`, `publish`.
    pub stage: &'static str,
    /// The folder the stage writes to.
    pub path: std::path::PathBuf,
    /// Bytes free there now.
    pub free: Option<u64>,
    /// About how many more bytes the stage needs, when it can tell.
    pub needed: Option<u64>,
    /// The error the disk gave.
    pub cause: anyhow::Error,
}

impl DiskFull {
    /// If `err` is a full disk, the `DiskFull` error (with `err` as its cause) for `stage` writing
    /// to `path`; `needed` estimates the bytes the stage still needs. Else `err` unchanged.
    pub fn wrap(
        err: anyhow::Error,
        stage: &'static str,
        path: &std::path::Path,
        needed: impl FnOnce() -> Option<u64>,
    ) -> anyhow::Error {
        if !crate::error::is_disk_full(&err) || err.chain().any(|c| c.is::<DiskFull>()) {
            return err;
        }
        let free = crate::fsx::free_bytes(path);
        anyhow::Error::new(DiskFull { stage, path: path.to_path_buf(), free, needed: needed(), cause: err })
    }
}

impl std::fmt::Display for DiskFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = |b: u64| crate::report::plural(b, "byte");
        write!(f, "{}: the disk holding {} is full", self.stage, self.path.display())?;
        if let Some(free) = self.free {
            write!(f, " ({} free)", size(free))?;
        }
        match self.needed {
            Some(n) => write!(f, "; {} needs about {} more", self.stage, size(n)),
            None => Ok(()),
        }
    }
}

impl std::error::Error for DiskFull {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

/// The exit code and hint an error chain asks for: the first `UserError` in it decides; otherwise a
/// runtime failure.
pub fn classify(err: &anyhow::Error) -> (Exit, Option<String>) {
    for cause in err.chain() {
        if let Some(u) = cause.downcast_ref::<UserError>() {
            return (u.exit, u.hint.clone());
        }
        if let Some(d) = cause.downcast_ref::<DiskFull>() {
            return (
                Exit::TempFail,
                Some(format!(
                    "free space on the filesystem holding {} (or quota), then run the same command again: \
                     everything completed is kept and it continues from there",
                    d.path.display()
                )),
            );
        }
        if let Some(s) = cause.downcast_ref::<Stopped>() {
            return (s.signal.exit(), Some("run the same command again to continue".into()));
        }
        if let Some(r) = cause.downcast_ref::<RecipeError>() {
            return (Exit::Usage, r.hint.clone());
        }
        if let Some(NetError::NothingListening { origin, .. }) = cause.downcast_ref() {
            return (
                Exit::TempFail,
                Some(format!(
                    "{origin} refused every connection and has not answered once in this run; start the server \
                     or correct base_url in the recipe, then run the same command again"
                )),
            );
        }
        if let Some(NetError::Exhausted { .. }) = cause.downcast_ref() {
            return (
                Exit::TempFail,
                Some("the archive is down or throttling; run the same command again later".into()),
            );
        }
    }
    (Exit::Failure, None)
}

/// Print `error: …`, one `caused by: …` per source, then `hint: …`.
pub fn render(err: &anyhow::Error) -> String {
    let (_, hint) = classify(err);
    let mut out = format!("error: {err}\n");
    for cause in err.chain().skip(1) {
        out.push_str(&format!("  caused by: {cause}\n"));
    }
    if let Some(h) = hint {
        out.push_str(&format!("  hint: {h}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_names_the_folder_the_free_space_and_what_is_needed_and_exits_75() {
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let err = anyhow::Error::new(io).context("cannot write /x/y");
        let wrapped = DiskFull::wrap(err, "fetch", std::path::Path::new("/"), || Some(2048));
        let text = wrapped.to_string();
        assert!(text.starts_with("fetch: the disk holding / is full ("), "{text}");
        assert!(text.ends_with("; fetch needs about 2048 bytes more"), "{text}");
        assert_eq!(wrapped.chain().nth(1).map(|c| c.to_string()).as_deref(), Some("cannot write /x/y"));
        assert_eq!(classify(&wrapped).0, Exit::TempFail);
        let other = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EACCES));
        assert!(!DiskFull::wrap(other, "shard", std::path::Path::new("/"), || None).is::<DiskFull>());
    }
}
