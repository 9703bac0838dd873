//! The ATLAS token (docs/archives.md 2.2): from an environment variable, a file, or a username and
//! password exchanged at `POST /api-token-auth/`. The token lives in a `Secret` from the moment it
//! is read; only the request path ever writes it, into the `Authorization` header.

use std::path::Path;

use super::{AtlasFpConfig, Credentials};
use crate::error::UserError;
use crate::net::client::{NetClient, NetError, Request, Secret};

/// Where to get a token, for hints.
const HOW_TO_GET_ONE: &str = "log in at https://fallingstar-data.com/forcedphot/ and open the API token page \
     (/forcedphot/apitoken/), then `export ATLAS_TOKEN=...`; or give `username_env` and `password_env`";

/// Read the token the recipe points at (no request).
pub fn read_token(creds: &Credentials) -> Result<Option<Secret>, UserError> {
    match creds {
        Credentials::TokenEnv(name) => match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
            _ => Err(UserError::usage(format!("the ATLAS token: ${name} is not set")).with_hint(HOW_TO_GET_ONE)),
        },
        Credentials::TokenFile(path) => read_token_file(path).map(Some),
        Credentials::Login { .. } => Ok(None),
    }
}

fn read_token_file(path: &Path) -> Result<Secret, UserError> {
    let text = fs_err::read_to_string(path).map_err(|e| {
        let e = crate::fsx::os_reason(&e, path);
        UserError::usage(format!("cannot read the ATLAS token file {}: {e}", path.display())).with_hint(HOW_TO_GET_ONE)
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs_err::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "the token file {} is readable by group or others; `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
        }
    }
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(UserError::usage(format!("the ATLAS token file {} does not hold one token", path.display()))
            .with_hint("the file should contain the 40-character token and nothing else"));
    }
    Ok(Secret::new(token))
}

/// The token: read, or obtained with the username and password (one request).
pub async fn token(client: &NetClient, cfg: &AtlasFpConfig) -> anyhow::Result<Secret> {
    if let Some(t) = read_token(&cfg.credentials)? {
        return Ok(t);
    }
    let Credentials::Login { username_env, password_env } = &cfg.credentials else {
        unreachable!("read_token returns a token for the other credentials")
    };
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| UserError::usage(format!("the ATLAS login: ${name} is not set")).with_hint(HOW_TO_GET_ONE))
    };
    let (user, password) = (var(username_env)?, var(password_env)?);
    let url = super::fetch::endpoint(&cfg.base_url, "api-token-auth/");
    let req = Request::new(reqwest::Method::POST, url.clone())
        .header("Accept", "application/json")
        .form(vec![("username".into(), Secret::new(user)), ("password".into(), Secret::new(password))]);
    let answer = match client.send(&req).await {
        Ok(a) => a,
        Err(NetError::Refused { status: 400, .. }) => {
            return Err(UserError::usage(format!(
                "ATLAS refused the username and password from ${username_env} and ${password_env} ({url})"
            ))
            .with_hint(HOW_TO_GET_ONE)
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        token: String,
    }
    let parsed: TokenAnswer = serde_json::from_slice(&answer.body)
        .map_err(|_| UserError::failure(format!("{url} did not answer with a token")))?;
    Ok(Secret::new(parsed.token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_read_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        fs_err::write(&path, "0123456789abcdef0123456789abcdef01234567\n").unwrap();
        let t = read_token(&Credentials::TokenFile(path.clone())).unwrap().unwrap();
        assert_eq!(t.expose(), "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(format!("{t} {t:?}"), "[redacted] [redacted]");
        fs_err::write(&path, "two words\n").unwrap();
        let e = read_token(&Credentials::TokenFile(path)).unwrap_err();
        assert!(!e.message.contains("two"), "{}", e.message);
        let e = read_token(&Credentials::TokenEnv("ETD_TEST_SURELY_UNSET_TOKEN".into())).unwrap_err();
        assert!(e.message.contains("$ETD_TEST_SURELY_UNSET_TOKEN is not set"));
    }
}
