//! Per-host request pacing: a token bucket at the configured rate, slowed down when the host
//! answers `429` and brought back up gradually as requests succeed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The slowest a host is ever paced at, as a fraction of its configured rate.
const MIN_RATE_FRACTION: f64 = 1.0 / 64.0;
/// How much of the configured rate each success gives back after a slow-down.
const RECOVERY_FRACTION: f64 = 1.0 / 16.0;

/// The token buckets of every host seen so far.
#[derive(Debug)]
pub(crate) struct RateLimits {
    rps: f64,
    burst: f64,
    hosts: Mutex<HashMap<String, Arc<Mutex<Bucket>>>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
}

impl RateLimits {
    /// `rps` requests per second on average with bursts of `burst`; `rps <= 0` means unlimited.
    pub(crate) fn new(rps: f64, burst: u32) -> Self {
        RateLimits { rps, burst: f64::from(burst.max(1)), hosts: Mutex::default() }
    }

    fn bucket(&self, host: &str) -> Arc<Mutex<Bucket>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(host.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Bucket {
                    tokens: self.burst,
                    rate: self.rps,
                    refilled: Instant::now(),
                    paused_until: None,
                }))
            })
            .clone()
    }

    /// Waits until `host` may be sent one more request.
    pub(crate) async fn acquire(&self, host: &str) {
        if self.rps <= 0.0 {
            return;
        }
        let wait = {
            let bucket = self.bucket(host);
            let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
            b.tokens = (b.tokens + elapsed * b.rate).min(self.burst);
            b.refilled = now;
            // Reserve a token now (possibly going negative) so waiters queue fairly.
            b.tokens -= 1.0;
            let for_token = if b.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-b.tokens / b.rate) };
            let for_pause = b.paused_until.map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
            for_token.max(for_pause)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// `host` said `429`: halve its rate and pause it for `retry_after` (or one request's worth).
    pub(crate) fn slow_down(&self, host: &str, retry_after: Option<Duration>) {
        if self.rps <= 0.0 {
            return;
        }
        let bucket = self.bucket(host);
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.rate = (b.rate / 2.0).max(self.rps * MIN_RATE_FRACTION);
        b.tokens = b.tokens.min(0.0);
        let pause = retry_after.unwrap_or_else(|| Duration::from_secs_f64(1.0 / b.rate));
        b.paused_until = Some(Instant::now() + pause);
    }

    /// A request to `host` succeeded: give back part of any slow-down.
    pub(crate) fn succeeded(&self, host: &str) {
        if self.rps <= 0.0 {
            return;
        }
        let bucket = self.bucket(host);
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        if b.rate < self.rps {
            b.rate = (b.rate + self.rps * RECOVERY_FRACTION).min(self.rps);
        }
    }

    /// The current rate for `host` (requests per second).
    #[cfg(test)]
    pub(crate) fn current_rate(&self, host: &str) -> f64 {
        self.bucket(host).lock().unwrap_or_else(|p| p.into_inner()).rate
    }
}

/// How failed requests (5xx, timeouts, `429`) are retried: a bounded number of times, with
/// exponential backoff and jitter so that many clients do not retry in step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) max_retries: u32,
    pub(crate) base: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based): half of it fixed, half random.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let full = self.base.saturating_mul(2u32.saturating_pow(attempt)).min(self.max);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_paces() {
        let limits = RateLimits::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            limits.acquire("h").await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "a burst goes through at once");
        for _ in 0..10 {
            limits.acquire("h").await;
        }
        let paced = start.elapsed();
        assert!(paced >= Duration::from_millis(990) && paced <= Duration::from_millis(1010), "{paced:?}");
        let other = Instant::now();
        limits.acquire("other-host").await;
        assert_eq!(other.elapsed(), Duration::ZERO, "hosts are paced independently");
    }

    #[tokio::test(start_paused = true)]
    async fn too_many_requests_slows_down_and_recovers_gradually() {
        let limits = RateLimits::new(8.0, 1);
        limits.slow_down("h", Some(Duration::from_secs(3)));
        assert_eq!(limits.current_rate("h"), 4.0);
        let start = Instant::now();
        limits.acquire("h").await;
        assert!(start.elapsed() >= Duration::from_secs(3), "Retry-After is honoured");
        limits.slow_down("h", None);
        assert_eq!(limits.current_rate("h"), 2.0);
        limits.succeeded("h");
        assert_eq!(limits.current_rate("h"), 2.5, "one success gives back a sixteenth");
        for _ in 0..100 {
            limits.succeeded("h");
        }
        assert_eq!(limits.current_rate("h"), 8.0, "never above the configured rate");
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let b = Backoff { max_retries: 3, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for attempt in 0..6 {
            let full = (Duration::from_millis(100) * 2u32.pow(attempt)).min(Duration::from_secs(1));
            let d = b.delay(attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}
