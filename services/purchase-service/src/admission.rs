//! Admission: a token bucket per buyer (`PURCHASE_RATE_PER_USER` purchases a second,
//! `PURCHASE_BURST_PER_USER` at once), checked in memory before anything else, so a bot
//! hammering an item is refused with 429 at the cost of a map lookup and never reaches
//! Redis. The buckets are this instance's: behind N instances a buyer may get up to N
//! times the rate (the gateway spreads a buyer's requests over them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a refused buyer may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of one instance, shared by its workers.
#[derive(Clone, Debug)]
pub struct Admission {
    /// Tokens a second; zero admits everyone.
    rate: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<u64, Bucket>>>,
}

/// Buckets kept at most; beyond it the full ones (buyers idle long enough to have
/// refilled) are dropped, as a full bucket is what a new one starts as.
const MAX_BUCKETS: usize = 100_000;

impl Admission {
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        Admission {
            rate: rate_per_sec.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Arc::default(),
        }
    }

    /// Takes one token of the buyer's bucket, or says when one will be there.
    pub fn admit(&self, user_id: u64) -> Result<(), RetryAfter> {
        self.admit_at(user_id, Instant::now())
    }

    fn admit_at(&self, user_id: u64, now: Instant) -> Result<(), RetryAfter> {
        if self.rate == 0.0 {
            return Ok(());
        }
        // A poisoned lock only means a worker panicked mid-update: the map is still a map.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&user_id) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + elapsed_secs(b.at, now) * rate < burst);
        }
        let bucket = buckets.entry(user_id).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens + elapsed_secs(bucket.at, now) * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            Err(RetryAfter(Duration::from_secs_f64(wait)))
        }
    }
}

fn elapsed_secs(since: Instant, now: Instant) -> f64 {
    now.saturating_duration_since(since).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buyer_gets_the_burst_then_the_rate() {
        let admission = Admission::new(2.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(admission.admit_at(7, start), Ok(()));
        }
        let refused = admission.admit_at(7, start).unwrap_err();
        assert_eq!(refused, RetryAfter(Duration::from_millis(500)));
        assert_eq!(
            admission.admit_at(8, start),
            Ok(()),
            "another buyer has a bucket of their own"
        );
        let later = start + Duration::from_millis(500);
        assert_eq!(admission.admit_at(7, later), Ok(()));
        assert!(admission.admit_at(7, later).is_err());
        // Refilled to the burst, no further.
        let much_later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(admission.admit_at(7, much_later), Ok(()));
        }
        assert!(admission.admit_at(7, much_later).is_err());
    }

    #[test]
    fn a_zero_rate_admits_everyone() {
        let admission = Admission::new(0.0, 1);
        for _ in 0..1000 {
            assert_eq!(admission.admit(7), Ok(()));
        }
    }
}
