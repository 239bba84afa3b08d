//! How fast digests go out: retries back off exponentially with jitter,
//! and sends are spaced to `mail.rate_limit`. The rate is the site's, not
//! each replica's: with PostgreSQL each batch reserves its slots from one
//! row that every replica shares ([`crate::store::Ledger::reserve_sends`]),
//! then spaces them evenly here.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::config::Config;

/// Exponential backoff with jitter between attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &Config) -> RetryPolicy {
        RetryPolicy {
            max_attempts: config.mail.max_attempts,
            base: config.mail.retry_base.0,
            max: config.mail.retry_max.0,
        }
    }

    /// The wait after attempt `attempt` (1-based) failed: `base * 2^(n-1)`
    /// capped at `max`, then a random point in its upper half, so that
    /// retries of one failed batch do not arrive together.
    pub fn delay(&self, attempt: u32) -> chrono::Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let jittered = exp.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::MAX)
    }
}

/// At most `rate` sends per second, spread evenly (no bursts).
pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Option<tokio::time::Instant>>,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> RateLimiter {
        let interval = (per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / per_second));
        RateLimiter {
            interval,
            next: Mutex::new(None),
        }
    }

    /// The spacing between sends, when there is a limit.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// No send before `start` (the first slot of a reserved batch).
    pub fn not_before(&self, start: DateTime<Utc>, now: DateTime<Utc>) {
        let wait = (start - now).to_std().unwrap_or_default();
        let at = tokio::time::Instant::now() + wait;
        let mut next = self.next.lock().expect("rate limiter lock");
        *next = Some(next.map_or(at, |n| n.max(at)));
    }

    pub async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().expect("rate limiter lock");
            let now = tokio::time::Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let d1 = p.delay(1).num_milliseconds();
            assert!((5_000..=10_000).contains(&d1), "{d1}");
            let d3 = p.delay(3).num_milliseconds();
            assert!((20_000..=40_000).contains(&d3), "{d3}");
            let d9 = p.delay(9).num_milliseconds();
            assert!((30_000..=60_000).contains(&d9), "{d9}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limiter_spaces_sends_evenly() {
        let limiter = RateLimiter::new(10.0);
        let start = tokio::time::Instant::now();
        for _ in 0..21 {
            limiter.wait().await;
        }
        // 21 sends at 10 per second: the last one 2 s after the first.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let unlimited = RateLimiter::new(0.0);
        let start = tokio::time::Instant::now();
        for _ in 0..1000 {
            unlimited.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
