//! `net`: the one request path of etd. Every HTTP request passes a per-host limiter (request starts
//! per second and requests in flight), a timeout and one retry policy (`client::NetClient`). Also the
//! politeness settings and the planning arithmetic `etd check` uses.

pub mod client;
pub mod download;
pub mod limiter;
pub mod retry;
pub mod upload;

use std::time::Duration;

use serde::Serialize;

use crate::units::Rate;

/// How hard etd may press one archive host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Politeness {
    /// Requests in flight at once, per host.
    pub concurrency: u32,
    /// Request starts per host.
    #[serde(serialize_with = "rate_text")]
    pub rate: Rate,
    /// Retries per item before it counts as failed.
    pub retries: u32,
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,
    #[serde(serialize_with = "secs")]
    pub backoff_initial: Duration,
    #[serde(serialize_with = "secs")]
    pub backoff_max: Duration,
    /// Request starts per host for reads (GET, HEAD) when the archive limits them separately
    /// from writes (ATLAS: 60 writes/min, 600 reads/min); `None`: `rate` covers every request.
    #[serde(serialize_with = "opt_rate_text")]
    pub read_rate: Option<Rate>,
}

fn opt_rate_text<S: serde::Serializer>(r: &Option<Rate>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.collect_str(r),
        None => s.serialize_none(),
    }
}

fn rate_text<S: serde::Serializer>(r: &Rate, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(r)
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Politeness {
    /// The least time `requests` request starts take at this rate (the limiter's lower bound; the
    /// concurrency limit and archive latency only make it longer).
    pub fn min_duration(&self, requests: u64) -> Duration {
        if requests == 0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(requests as f64 / self.rate.per_second()).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_time_is_requests_over_rate() {
        let p = Politeness {
            concurrency: 6,
            rate: Rate::parse("4/s").unwrap(),
            retries: 6,
            timeout: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(120),
            read_rate: None,
        };
        assert_eq!(p.min_duration(0), Duration::ZERO);
        assert_eq!(p.min_duration(400), Duration::from_secs(100));
    }
}
