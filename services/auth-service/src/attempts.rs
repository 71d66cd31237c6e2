//! Attempt counters in Redis, for limits that must hold under races (login attempts,
//! token refreshes): an attempt is counted BEFORE it is decided, by one script that
//! checks every counter of the attempt and, only when none is at its limit, counts it
//! on all of them, so racing requests cannot all slip past a check before any of them
//! is counted. Every counter expires one window after its first count. Which counters
//! an attempt has, and their limits, is the caller's policy ([`crate::throttle`]).
//! The scripts are `src/scripts/count_attempt.lua` and `give_back_attempt.lua`.

use common::redis::RedisClient;
use redis::{RedisError, Script};
use std::sync::LazyLock;

static COUNT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/count_attempt.lua")));
static GIVE_BACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/give_back_attempt.lua")));

/// A counter and the count at which it refuses.
#[derive(Debug, Clone)]
pub struct Counter {
    pub key: String,
    pub limit: u64,
}

#[derive(Clone)]
pub struct AttemptCounters {
    redis: RedisClient,
}

impl AttemptCounters {
    pub fn new(redis: RedisClient) -> Self {
        AttemptCounters { redis }
    }

    /// Counts one attempt on every counter (keys of one Redis Cluster slot), or on none
    /// when any is at its limit: then `Some(seconds)` until the last of those expires.
    pub async fn count(
        &self,
        counters: &[Counter],
        window_secs: u64,
    ) -> Result<Option<u64>, RedisError> {
        let mut invocation = COUNT.prepare_invoke();
        invocation.arg(window_secs);
        for counter in counters {
            invocation.key(&counter.key).arg(counter.limit);
        }
        let mut conn = self.redis.get().await?;
        let wait: u64 = invocation.invoke_async(&mut conn).await?;
        Ok((wait > 0).then_some(wait))
    }

    /// Gives a counted attempt back: `cleared` counters are deleted, `returned` ones
    /// decremented (keys of one slot).
    pub async fn give_back(&self, cleared: &[&str], returned: &[&str]) -> Result<(), RedisError> {
        let mut invocation = GIVE_BACK.prepare_invoke();
        invocation.arg(cleared.len());
        for key in cleared.iter().chain(returned) {
            invocation.key(*key);
        }
        let mut conn = self.redis.get().await?;
        invocation.invoke_async::<()>(&mut conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::TestRedis;

    #[tokio::test]
    async fn an_attempt_counts_on_every_counter_or_on_none() {
        let redis = TestRedis::new();
        let counters = AttemptCounters::new(common::redis::client(&redis.settings()).unwrap());
        let (low, high) = (
            format!("{}a:{{t}}:low", redis.prefix),
            format!("{}a:{{t}}:high", redis.prefix),
        );
        let both = [
            Counter {
                key: low.clone(),
                limit: 2,
            },
            Counter {
                key: high.clone(),
                limit: 5,
            },
        ];
        assert_eq!(counters.count(&both, 60).await.unwrap(), None);
        assert_eq!(counters.count(&both, 60).await.unwrap(), None);
        let wait = counters.count(&both, 60).await.unwrap();
        assert!(matches!(wait, Some(1..=60)), "{wait:?}");
        let mut conn = redis.connection().await;
        let count = |key: &str| redis::cmd("GET").arg(key).to_owned();
        let high_count: u64 = count(&high).query_async(&mut conn).await.unwrap();
        assert_eq!(high_count, 2, "a refused attempt counts on no counter");

        counters.give_back(&[&low], &[&high]).await.unwrap();
        let low_count: Option<u64> = count(&low).query_async(&mut conn).await.unwrap();
        let high_count: u64 = count(&high).query_async(&mut conn).await.unwrap();
        assert_eq!((low_count, high_count), (None, 1));
        counters.give_back(&[], &[&high, &high]).await.unwrap();
        let high_count: u64 = count(&high).query_async(&mut conn).await.unwrap();
        assert_eq!(high_count, 0, "never below zero");
    }
}
