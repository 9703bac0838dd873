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
    clock: governor::clock::DefaultClock,
    /// Held while waiting for the rate limiter (fair: first come, first served), with the
    /// timer that waiter sleeps on.
    turn: tokio::sync::Mutex<PaceTimer>,
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
            clock: governor::clock::DefaultClock::default(),
            turn: tokio::sync::Mutex::new(PaceTimer::default()),
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
                let mut timer = self.turn.lock().await;
                while let Err(not_until) = self.rate.check() {
                    let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
                    if !timer.sleep(wait).await {
                        // No precise timer here: governor's own wait (it takes the start).
                        self.rate.until_ready().await;
                        break;
                    }
                }
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

/// The timer a request waiting for the rate limiter sleeps on. On Linux a `timerfd` watched by
/// the runtime's own reactor: nanosecond deadlines (the runtime's timer rounds to milliseconds,
/// which would slow every start) without a timer thread (governor's `until_ready` wakes its
/// timer thread and then the runtime for every start held back; with every waiter on a timer of
/// its own, waiting was about a third of etd's CPU per request at 1000 requests/s, see
/// bench/README.md). Made on first use, inside the runtime, and reused; where it cannot be had,
/// governor's own wait.
#[derive(Default)]
struct PaceTimer {
    #[cfg(target_os = "linux")]
    delay: Option<tokio_timerfd::Delay>,
}

impl PaceTimer {
    /// Sleep for `wait`; false (at once) if no precise timer can be had.
    async fn sleep(&mut self, wait: Duration) -> bool {
        #[cfg(target_os = "linux")]
        {
            let deadline = std::time::Instant::now() + wait;
            let delay = match self.delay.take() {
                Some(mut d) => {
                    d.reset(deadline);
                    Ok(d)
                }
                None => tokio_timerfd::Delay::new(deadline),
            };
            if let Ok(mut delay) = delay {
                if (&mut delay).await.is_ok() {
                    self.delay = Some(delay);
                    return true;
                }
            }
        }
        let _ = wait;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Concurrent waiters start one period apart, and (on Linux) wait on the precise timer, not
    /// governor's timer thread.
    #[test]
    fn starts_are_paced_exactly_on_one_runtime_thread() {
        let mut p = crate::sources::ps1::default_politeness();
        p.concurrency = 10;
        p.rate = crate::units::rate(500.0, 1);
        let limiter = Arc::new(HostLimiter::new(&p, 1));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut starts = runtime.block_on(async {
            let t0 = std::time::Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..101 {
                let limiter = Arc::clone(&limiter);
                tasks.spawn(async move {
                    let _in_flight = limiter.acquire().await;
                    tokio::task::yield_now().await;
                    t0.elapsed()
                });
            }
            tasks.join_all().await
        });
        starts.sort();
        let span = starts[100] - starts[0];
        // 100 periods of 2 ms: never less (burst 1). How little more (the wake-up lateness) is
        // the fetch benchmark's rate accuracy, not a timed assertion here.
        assert!(span >= Duration::from_millis(199), "{span:?}");
        #[cfg(target_os = "linux")]
        assert!(limiter.turn.try_lock().unwrap().delay.is_some(), "the timerfd was used");
    }
}
