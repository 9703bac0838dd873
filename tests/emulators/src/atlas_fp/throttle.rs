//! DRF `SimpleRateThrottle` (sliding window over a history of request times) and the 2026
//! failed-login budget (a fixed window per address).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Per-(identity, scope) request histories, newest first, as DRF keeps them in its cache.
#[derive(Default)]
pub(crate) struct RateThrottle {
    history: HashMap<(String, &'static str), VecDeque<Instant>>,
}

impl RateThrottle {
    /// `allow_request`: `Ok` records the request; `Err(wait)` is `wait()` in seconds (the time
    /// until the oldest request leaves the window, spread over the free slots). A refused
    /// request is not recorded.
    pub fn allow(
        &mut self,
        ident: &str,
        scope: &'static str,
        num: u32,
        duration: Duration,
        now: Instant,
    ) -> Result<(), f64> {
        let h = self.history.entry((ident.to_string(), scope)).or_default();
        while h.back().is_some_and(|&t| now.saturating_duration_since(t) >= duration) {
            h.pop_back();
        }
        if h.len() >= num as usize {
            let remaining = match h.back() {
                Some(&oldest) => duration.as_secs_f64() - now.saturating_duration_since(oldest).as_secs_f64(),
                None => duration.as_secs_f64(),
            };
            let available = f64::from(num) - h.len() as f64 + 1.0;
            return Err(if available > 0.0 { remaining / available } else { remaining });
        }
        h.push_front(now);
        Ok(())
    }
}

/// DRF's `Throttled` detail for a wait: rounded up, singular for one second.
pub(crate) fn throttled_detail(wait_secs: f64) -> (u64, String) {
    let n = wait_secs.ceil().max(0.0) as u64;
    let unit = if n == 1 { "second" } else { "seconds" };
    (n, format!("Request was throttled. Expected available in {n} {unit}."))
}

/// `count_in_window` for failed password checks, per client address.
#[derive(Default)]
pub(crate) struct LoginFailures {
    windows: HashMap<String, (u32, Instant)>,
}

impl LoginFailures {
    pub fn count(&mut self, addr: &str, window: Duration, now: Instant, increment: bool) -> u32 {
        let entry = self.windows.entry(addr.to_string()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= window {
            *entry = (0, now);
        }
        if increment {
            entry.0 += 1;
        }
        entry.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_like_drf() {
        let mut t = RateThrottle::default();
        let t0 = Instant::now();
        let d = Duration::from_secs(60);
        for i in 0..3 {
            assert!(t.allow("u1", "w", 3, d, t0 + Duration::from_secs(i)).is_ok());
        }
        let wait = t.allow("u1", "w", 3, d, t0 + Duration::from_secs(10)).unwrap_err();
        assert!((wait - 50.0).abs() < 1e-6, "{wait}");
        // Refused requests are not recorded; other identities and scopes are separate.
        assert!(t.allow("u1", "w", 3, d, t0 + Duration::from_secs(20)).is_err());
        assert!(t.allow("u2", "w", 3, d, t0 + Duration::from_secs(20)).is_ok());
        assert!(t.allow("u1", "r", 3, d, t0 + Duration::from_secs(20)).is_ok());
        assert!(t.allow("u1", "w", 3, d, t0 + Duration::from_secs(60)).is_ok());
        assert_eq!(throttled_detail(0.2), (1, "Request was throttled. Expected available in 1 second.".into()));
        assert_eq!(throttled_detail(49.5), (50, "Request was throttled. Expected available in 50 seconds.".into()));
    }
}
