//! Per-seed rate limiting: a token bucket of samples per seed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Token buckets keyed by seed. A rate of 0 disables limiting.
#[derive(Debug)]
pub struct SeedRateLimiter {
    rate_per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl SeedRateLimiter {
    /// `rate_per_second` samples sustained, `burst` samples at once.
    pub fn new(rate_per_second: u64, burst: u64) -> Self {
        Self {
            rate_per_second: rate_per_second as f64,
            burst: burst.max(rate_per_second) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `samples` tokens for `seed` at `now`; on refusal, how long until they would be there.
    /// A request larger than the burst is let through when the bucket is full, so it is never
    /// refused forever.
    pub fn check(&self, seed: &str, samples: usize, now: Instant) -> Result<(), Duration> {
        if self.rate_per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(seed.to_string()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate_per_second).min(self.burst);
        bucket.updated = now;
        let wanted = (samples as f64).min(self.burst);
        if bucket.tokens >= wanted {
            bucket.tokens -= samples as f64;
            Ok(())
        } else {
            let missing = wanted - bucket.tokens;
            Err(Duration::from_secs_f64(missing / self.rate_per_second).max(Duration::from_secs(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_and_isolates_seeds() {
        let limiter = SeedRateLimiter::new(100, 200);
        let t0 = Instant::now();
        assert!(limiter.check("a", 200, t0).is_ok());
        let wait = limiter.check("a", 100, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert!(
            limiter.check("b", 150, t0).is_ok(),
            "other seeds unaffected"
        );
        assert!(limiter.check("a", 100, t0 + Duration::from_secs(1)).is_ok());
        // Larger than the burst: passes once the bucket is full, then owes the difference.
        assert!(limiter.check("c", 500, t0).is_ok());
        assert!(limiter.check("c", 1, t0 + Duration::from_secs(2)).is_err());
    }

    #[test]
    fn zero_rate_disables() {
        let limiter = SeedRateLimiter::new(0, 0);
        assert!(limiter.check("a", usize::MAX, Instant::now()).is_ok());
    }
}
