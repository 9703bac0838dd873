//! `HostLimiter`: how hard etd presses one host. A request first takes an in-flight permit
//! (concurrency), then waits out any host-wide pause (`Retry-After`, throttle messages), then takes
//! a start from the governor rate limiter (burst 1, so starts never bunch up above the rate).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::Politeness;

/// The limits of one host, shared by every request to it.
pub struct HostLimiter {
    rate: DefaultDirectRateLimiter,
    /// Held while waiting for the rate limiter (fair: first come, first served).
    turn: tokio::sync::Mutex<()>,
    inflight: Semaphore,
    paused_until: Mutex<Option<Instant>>,
    /// Wall-clock time this host has been paused in all (overlapping pauses counted once).
    paused_total: Mutex<Duration>,
    concurrency: u32,
}

/// Held while a request is in flight.
pub struct InFlight<'a> {
    _permit: SemaphorePermit<'a>,
}

impl HostLimiter {
    /// Limits for one of `share` tasks that split the politeness budget between them (batch
    /// systems): each gets 1/share of the rate and of the in-flight requests, at least 1 in flight.
    pub fn new(p: &Politeness, share: u32) -> Self {
        Self::with_rate(p, p.rate, share)
    }

    /// Like `new`, with `rate` instead of the politeness rate (reads limited apart from writes).
    pub fn with_rate(p: &Politeness, rate: crate::units::Rate, share: u32) -> Self {
        let share = share.max(1);
        let per_second = rate.per_second() / share as f64;
        let period = Duration::from_secs_f64(1.0 / per_second.max(1e-9)).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        let concurrency = (p.concurrency / share).max(1);
        HostLimiter {
            rate: RateLimiter::direct(quota),
            turn: tokio::sync::Mutex::new(()),
            inflight: Semaphore::new(concurrency as usize),
            paused_until: Mutex::new(None),
            paused_total: Mutex::new(Duration::ZERO),
            concurrency,
        }
    }

    /// Requests allowed in flight at once.
    pub fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Wait until a request may start.
    pub async fn acquire(&self) -> InFlight<'_> {
        // The semaphore is never closed, so acquire cannot fail.
        let permit = self.inflight.acquire().await.expect("host semaphore is never closed");
        loop {
            self.wait_out_pause().await;
            {
                // One request at a time waits for the rate limiter; the others queue here in
                // order. Without this every waiter sleeps until the same instant, all wake, one
                // wins and the rest sleep again: a timer and a wake-up per waiter per start.
                let _turn = self.turn.lock().await;
                self.rate.until_ready().await;
            }
            // A pause may have begun while we waited for the rate limiter. Then the start just
            // taken is spent: waiting out the pause and going would send every request that
            // queued meanwhile at once when it ends, so take a fresh start after it.
            if !self.is_paused() {
                break;
            }
        }
        InFlight { _permit: permit }
    }

    fn is_paused(&self) -> bool {
        self.paused_until.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|t| t > Instant::now())
    }

    /// Sleep while the host is paused (a pause may be extended meanwhile).
    async fn wait_out_pause(&self) {
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    /// Stop every request to this host for `wait` (extends, never shortens, a pause).
    pub fn pause_for(&self, wait: Duration) {
        let now = Instant::now();
        let until = now + wait;
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|t| t < until) {
            let from = p.filter(|t| *t > now).unwrap_or(now);
            *self.paused_total.lock().unwrap_or_else(|e| e.into_inner()) += until - from;
            *p = Some(until);
        }
    }

    /// Wall-clock time this host has been told to pause, in all.
    pub fn paused_total(&self) -> Duration {
        *self.paused_total.lock().unwrap_or_else(|e| e.into_inner())
    }
}
