//! The top of the error path: which exit code and hint an error chain asks for, and how it is
//! printed. Library modules return typed errors; only this module looks at all of them.

use crate::error::{Exit, UserError};
use crate::net::client::NetError;
use crate::recipe::RecipeError;
use crate::stop::Stopped;

/// The exit code and hint an error chain asks for: the first `UserError` in it decides; otherwise a
/// runtime failure.
pub fn classify(err: &anyhow::Error) -> (Exit, Option<String>) {
    for cause in err.chain() {
        if let Some(u) = cause.downcast_ref::<UserError>() {
            return (u.exit, u.hint.clone());
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
