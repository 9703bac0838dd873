//! The one retry policy: which failures are worth another try, how long to wait (capped
//! exponential backoff with jitter), and what the server asked for (`Retry-After` in seconds or
//! as an HTTP-date, and ATLAS's "Expected available in N seconds." throttle message).

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again; the server may have said how long to wait.
    Retry { server_wait: Option<Duration> },
    /// Retrying cannot help (e.g. 404, 400).
    Fail,
}

/// Classify an HTTP status: 5xx, 408 and 429 are transient; other 4xx are not.
pub fn classify_status(status: u16, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    match status {
        408 | 429 | 500..=599 => Verdict::Retry { server_wait: retry_after.and_then(|v| parse_retry_after(v, now)) },
        _ => Verdict::Fail,
    }
}

/// Classify a transport error by walking its `source()` chain: timeouts, connection resets and
/// refusals, and bodies cut short are transient; anything else (a bad URL, TLS misconfiguration)
/// is not.
pub fn classify_error(err: &(dyn StdError + 'static)) -> Verdict {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() || r.is_connect() || r.is_body() || r.is_decode() {
                return Verdict::Retry { server_wait: None };
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset
                    | ConnectionRefused
                    | ConnectionAborted
                    | UnexpectedEof
                    | TimedOut
                    | BrokenPipe
                    | Interrupted
            ) {
                return Verdict::Retry { server_wait: None };
            }
        }
        let text = e.to_string();
        // hyper reports a body cut short or a connection closed mid-message in words only.
        if text.contains("IncompleteMessage") || text.contains("connection closed before message completed") {
            return Verdict::Retry { server_wait: None };
        }
        cause = e.source();
    }
    Verdict::Fail
}

/// `Retry-After`: delta-seconds or an HTTP-date (RFC 9110 10.2.3). A date in the past is zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// ATLAS (Django REST framework) throttle text: `Expected available in 12 seconds.`,
/// `... in 1 second.` or `... in 2 minutes`.
pub fn parse_throttle_message(body: &str) -> Option<Duration> {
    let rest = &body[body.find("available in ")? + "available in ".len()..];
    let mut words = rest.split_whitespace();
    let n: f64 = words.next()?.parse().ok()?;
    let unit = words.next()?.trim_end_matches(['.', '"', '}']);
    let secs = match unit {
        "second" | "seconds" => n,
        "minute" | "minutes" => n * 60.0,
        "hour" | "hours" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Zero every delay (etd's own tests: `ETD_TEST_NO_RETRY_DELAY`).
    pub disabled: bool,
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based): uniform in [cap/2, cap], where
    /// cap = min(max, initial * 2^(attempt-1)).
    pub fn delay(&self, attempt: u32) -> Duration {
        if self.disabled {
            return Duration::ZERO;
        }
        let factor = 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let cap = (self.initial.as_secs_f64() * factor).min(self.max.as_secs_f64());
        let jitter: f64 = rand::random::<f64>();
        Duration::from_secs_f64(cap * (0.5 + 0.5 * jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let now = SystemTime::now();
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(classify_status(s, None, now), Verdict::Retry { .. }), "{s}");
        }
        for s in [400, 401, 403, 404, 410] {
            assert_eq!(classify_status(s, None, now), Verdict::Fail, "{s}");
        }
        assert_eq!(classify_status(429, Some("7"), now), Verdict::Retry { server_wait: Some(Duration::from_secs(7)) });
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn atlas_throttle_messages() {
        let m = |s: &str| parse_throttle_message(s);
        assert_eq!(
            m(r#"{"detail":"Request was throttled. Expected available in 12 seconds."}"#),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            m(r#"{"detail":"Request was throttled. Expected available in 1 second."}"#),
            Some(Duration::from_secs(1))
        );
        assert_eq!(m("Expected available in 2 minutes"), Some(Duration::from_secs(120)));
        assert_eq!(m("nothing here"), None);
    }

    #[test]
    fn io_errors_in_the_chain() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(classify_error(&reset), Verdict::Retry { .. }));
        let wrapped =
            anyhow::Error::new(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof")).context("reading body");
        assert!(matches!(classify_error(wrapped.as_ref()), Verdict::Retry { .. }));
        let other = std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad");
        assert_eq!(classify_error(&other), Verdict::Fail);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let b = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(10), disabled: false };
        for attempt in 1..20 {
            let d = b.delay(attempt);
            let cap = (1u64 << (attempt - 1).min(30)).min(10) as f64;
            assert!(d.as_secs_f64() >= cap / 2.0 && d.as_secs_f64() <= cap, "{attempt}: {d:?}");
        }
        assert_eq!(Backoff { disabled: true, ..b }.delay(5), Duration::ZERO);
    }
}
