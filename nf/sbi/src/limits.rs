//! Request limits every NF applies ([`crate::config::LimitsConfig`]): a rate per consumer
//! (token buckets keyed by the access token's subject, a UE's SUPI, ...) and a bound on
//! the requests served at once. Each refusal is a ProblemDetails with `Retry-After`:
//! 429 `NF_CONGESTION_RISK` for a consumer over its rate, 503 `NF_CONGESTION` when the
//! NF is full (TS 29.500 §5.2.7.2 causes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitsConfig;
use crate::problem::ProblemDetails;

/// Buckets kept before idle (full) ones are dropped.
const MAX_KEYS: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per key: `rate` requests per second sustained, `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter of `rate` per second with bursts of `burst`; `rate` 0 admits everything.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the limiter admits everything.
    pub fn is_off(&self) -> bool {
        self.rate <= 0.0
    }

    /// Takes one token for `key`: `Ok(())`, or `Err(seconds)` until one is available.
    pub fn acquire(&self, key: &str) -> Result<(), u64> {
        self.acquire_at(key, Instant::now())
    }

    fn acquire_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.is_off() {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    /// [`RateLimiter::acquire`] as a 429 ProblemDetails naming `what` (`consumer`, `supi`).
    #[allow(clippy::result_large_err)] // ProblemDetails is the one SBI error type
    pub fn admit(&self, key: &str, what: &str) -> Result<(), ProblemDetails> {
        self.acquire(key).map_err(|secs| {
            ProblemDetails::new(
                StatusCode::TOO_MANY_REQUESTS,
                "NF_CONGESTION_RISK",
                format!(
                    "{what} {key} is over its rate of {} requests/s (burst {})",
                    self.rate, self.burst
                ),
            )
            .with_retry_after(secs)
        })
    }
}

/// What one NF's server admits: at most `max_in_flight` requests at once, and each
/// consumer within its rate.
#[derive(Debug, Clone)]
pub struct Admission {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// Per-consumer rate.
    pub per_consumer: Arc<RateLimiter>,
}

impl Admission {
    /// From `[limits]`.
    pub fn from_config(limits: &LimitsConfig) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            max_in_flight: limits.max_in_flight,
            per_consumer: Arc::new(RateLimiter::new(limits.nf_rate_per_s, limits.nf_burst)),
        }
    }

    /// A slot for one request, held until the permit drops; 503 when all are taken.
    #[allow(clippy::result_large_err)] // ProblemDetails is the one SBI error type
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, ProblemDetails> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            ProblemDetails::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NF_CONGESTION",
                format!(
                    "the NF is serving its maximum of {} requests",
                    self.max_in_flight
                ),
            )
            .with_retry_after(1)
        })
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_admits_its_burst_then_refills_at_its_rate() {
        let l = RateLimiter::new(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.acquire_at("a", t0).is_ok());
        }
        assert_eq!(l.acquire_at("a", t0), Err(1));
        // Another key has its own bucket.
        assert!(l.acquire_at("b", t0).is_ok());
        // 100 ms at 10/s is one more token, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.acquire_at("a", t1).is_ok());
        assert!(l.acquire_at("a", t1).is_err());
    }

    #[test]
    fn rate_zero_is_off_and_refusals_are_429_with_retry_after() {
        let off = RateLimiter::new(0.0, 1);
        for _ in 0..100 {
            assert!(off.acquire("x").is_ok());
        }
        let l = RateLimiter::new(0.5, 1);
        assert!(l.admit("imsi-1", "supi").is_ok());
        let p = l.admit("imsi-1", "supi").unwrap_err();
        assert_eq!(p.status, 429);
        assert_eq!(p.cause.as_deref(), Some("NF_CONGESTION_RISK"));
        assert_eq!(p.retry_after, Some(2));
    }

    #[test]
    fn admission_bounds_requests_in_flight() {
        let a = Admission::from_config(&LimitsConfig {
            max_in_flight: 2,
            ..LimitsConfig::default()
        });
        let p1 = a.enter().unwrap();
        let _p2 = a.enter().unwrap();
        assert_eq!(a.in_flight(), 2);
        let refused = a.enter().unwrap_err();
        assert_eq!((refused.status, refused.retry_after), (503, Some(1)));
        drop(p1);
        assert!(a.enter().is_ok());
    }

    #[test]
    fn idle_buckets_are_dropped_when_the_map_is_full() {
        let l = RateLimiter::new(1000.0, 1);
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            l.acquire_at(&i.to_string(), t0).unwrap();
        }
        // A second later every bucket is full again: the next new key clears them.
        l.acquire_at("new", t0 + Duration::from_secs(1)).unwrap();
        assert!(l.buckets.lock().unwrap().len() < 10);
    }
}
