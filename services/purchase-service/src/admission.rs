//! Admission: a token bucket per buyer (`PURCHASE_RATE_PER_USER` purchases a second,
//! `PURCHASE_BURST_PER_USER` at once), checked in memory before anything else, so a bot
//! hammering an item is refused with 429 at the cost of a map lookup and never reaches
//! Redis.
//!
//! The buckets are this instance's, and the gateway spreads a buyer's requests over the
//! N live instances ([`crate::membership`]), so each instance's bucket is the N-th part
//! of the configured one: it refills at rate/N and holds burst/N tokens (at least 1).
//! Over any time T a buyer is therefore admitted at most `max(burst, N) + rate × T`
//! purchases in total, however the requests are spread; when the gateway spreads them
//! evenly that is the configured rate and burst (exactly, for a burst that is a
//! multiple of N). A buyer whose requests all land on one instance gets only rate/N
//! there. A shared bucket in Redis would be exact but costs a round trip per request,
//! refused ones included, which is what admission exists to avoid (and the purchase
//! takes exactly one round trip); the buckets adapt as instances come and go, at the
//! next heartbeat.

use crate::membership::Membership;
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
    /// Tokens a second, over every instance; zero admits everyone.
    rate: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<u64, Bucket>>>,
    membership: Membership,
}

/// One instance's part of a bucket of `rate` and `burst` shared by `instances`:
/// (tokens a second, tokens held at most).
fn instance_part(rate: f64, burst: f64, instances: u32) -> (f64, f64) {
    let instances = f64::from(instances.max(1));
    (rate / instances, (burst / instances).max(1.0))
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
            membership: Membership::alone(),
        }
    }

    /// The same buckets, split among the live instances `membership` sees.
    pub fn shared_among(self, membership: Membership) -> Self {
        Admission { membership, ..self }
    }

    /// Takes one token of the buyer's bucket, or says when one will be there.
    pub fn admit(&self, user_id: u64) -> Result<(), RetryAfter> {
        self.admit_at(user_id, Instant::now(), self.membership.share().instances)
    }

    fn admit_at(&self, user_id: u64, now: Instant, instances: u32) -> Result<(), RetryAfter> {
        if self.rate == 0.0 {
            return Ok(());
        }
        let (rate, burst) = instance_part(self.rate, self.burst, instances);
        // A poisoned lock only means a worker panicked mid-update: the map is still a map.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&user_id) {
            buckets.retain(|_, b| b.tokens + elapsed_secs(b.at, now) * rate < burst);
        }
        let bucket = buckets.entry(user_id).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens + elapsed_secs(bucket.at, now) * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate;
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
            assert_eq!(admission.admit_at(7, start, 1), Ok(()));
        }
        let refused = admission.admit_at(7, start, 1).unwrap_err();
        assert_eq!(refused, RetryAfter(Duration::from_millis(500)));
        assert_eq!(
            admission.admit_at(8, start, 1),
            Ok(()),
            "another buyer has a bucket of their own"
        );
        let later = start + Duration::from_millis(500);
        assert_eq!(admission.admit_at(7, later, 1), Ok(()));
        assert!(admission.admit_at(7, later, 1).is_err());
        // Refilled to the burst, no further.
        let much_later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(admission.admit_at(7, much_later, 1), Ok(()));
        }
        assert!(admission.admit_at(7, much_later, 1).is_err());
    }

    #[test]
    fn a_zero_rate_admits_everyone() {
        let admission = Admission::new(0.0, 1);
        for _ in 0..1000 {
            assert_eq!(admission.admit(7), Ok(()));
        }
    }

    #[test]
    fn each_instance_holds_its_part_of_the_bucket() {
        assert_eq!(instance_part(6.0, 10.0, 1), (6.0, 10.0));
        assert_eq!(instance_part(6.0, 10.0, 2), (3.0, 5.0));
        assert_eq!(
            instance_part(6.0, 10.0, 0),
            (6.0, 10.0),
            "never less than one"
        );
        assert_eq!(
            instance_part(6.0, 2.0, 4),
            (1.5, 1.0),
            "at least one token each"
        );
    }

    #[test]
    fn a_buyer_spread_over_instances_gets_the_configured_rate_in_total() {
        let (rate, burst, instances) = (4.0, 6, 3u32);
        let parts: Vec<Admission> = (0..instances)
            .map(|_| Admission::new(rate, burst))
            .collect();
        let start = Instant::now();
        let elapsed = Duration::from_secs(5);
        // Every 10 ms one request, round-robin over the instances, for 5 s.
        let mut admitted = 0;
        for tick in 0..500u32 {
            let at = start + Duration::from_millis(u64::from(tick) * 10);
            let part = &parts[(tick % instances) as usize];
            if part.admit_at(7, at, instances).is_ok() {
                admitted += 1;
            }
        }
        let bound = f64::from(burst) + rate * elapsed.as_secs_f64();
        assert!(
            f64::from(admitted) <= bound,
            "{admitted} admitted, at most {bound}"
        );
        assert!(
            f64::from(admitted) >= bound - f64::from(instances),
            "{admitted} admitted: about {bound}"
        );

        let alone = Admission::new(rate, burst);
        let on_one: usize = (0..500u32)
            .filter(|tick| {
                let at = start + Duration::from_millis(u64::from(*tick) * 10);
                alone.admit_at(8, at, instances).is_ok()
            })
            .count();
        assert!(
            on_one as f64 <= f64::from(burst) / 3.0 + rate / 3.0 * 5.0,
            "a buyer on one instance only gets its part: {on_one}"
        );
    }
}
