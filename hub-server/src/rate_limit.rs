//! In-memory token buckets, one per key (an authenticated agent id, or the connection of an
//! unauthenticated caller). Idle buckets are pruned so the map cannot grow without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    refill_per_sec: f64,
    capacity: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A bucket untouched this long is full again, so forgetting it changes nothing.
const IDLE_PRUNE_AFTER: Duration = Duration::from_secs(120);

impl RateLimiter {
    /// `refill_per_sec <= 0` or `capacity <= 0` disables limiting.
    pub fn new(refill_per_sec: f64, capacity: f64) -> Self {
        Self {
            refill_per_sec,
            capacity,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.refill_per_sec > 0.0 && self.capacity > 0.0
    }

    /// Takes one token for `key`; false when the bucket is empty.
    pub fn allow(&self, key: &str) -> bool {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &str, now: Instant) -> bool {
        if !self.enabled() {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE_PRUNE_AFTER);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.refill_per_sec).min(self.capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets buckets idle long enough to have refilled.
    pub fn prune(&self) {
        let now = Instant::now();
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, b| now.duration_since(b.updated) < IDLE_PRUNE_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_drains_then_refills() {
        let limiter = RateLimiter::new(10.0, 2.0);
        let start = Instant::now();
        assert!(limiter.allow_at("a", start));
        assert!(limiter.allow_at("a", start));
        assert!(!limiter.allow_at("a", start));
        assert!(limiter.allow_at("b", start), "buckets are per key");
        assert!(limiter.allow_at("a", start + Duration::from_millis(150)));
    }

    #[test]
    fn zero_disables() {
        let limiter = RateLimiter::new(0.0, 60.0);
        assert!((0..1000).all(|_| limiter.allow("a")));
    }
}
