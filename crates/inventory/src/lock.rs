//! A Redis distributed lock, the reference design done right: `SET key token NX PX ttl`
//! with a random token, released by compare-and-delete (so a holder whose lock expired
//! never deletes someone else's), retried `LOCK_MAX_RETRIES` times with a random
//! `LOCK_RETRY_DELAY_MIN..=MAX` microsecond backoff. Work done under
//! [`DistributedLock::with_lock`] keeps the lock for as long as it runs: its TTL is
//! extended every third of `LOCK_TTL_MS`, so only a holder that died loses it by expiry.

use crate::Error;
use common::config::LockSettings;
use common::redis::RedisClient;
use rand::RngExt;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
    )
});

static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
    )
});

#[derive(Clone)]
pub struct DistributedLock {
    redis: RedisClient,
    settings: LockSettings,
}

/// Proof of holding a lock; give it back to [`DistributedLock::release`].
#[derive(Debug)]
pub struct LockGuard {
    key: String,
    token: String,
}

impl DistributedLock {
    pub fn new(redis: RedisClient, settings: LockSettings) -> Self {
        DistributedLock { redis, settings }
    }

    /// Tries once, then up to `max_retries` more times with random backoff.
    pub async fn acquire(&self, key: &str) -> Result<LockGuard, Error> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let attempts = self.settings.max_retries + 1;
        for attempt in 1..=attempts {
            let mut conn = self.redis.get().await?;
            let acquired: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(self.settings.ttl_ms)
                .query_async(&mut conn)
                .await?;
            drop(conn);
            if acquired.is_some() {
                return Ok(LockGuard {
                    key: key.to_owned(),
                    token,
                });
            }
            if attempt < attempts {
                tokio::time::sleep(self.backoff()).await;
            }
        }
        Err(Error::LockBusy {
            key: key.to_owned(),
            attempts,
        })
    }

    fn backoff(&self) -> Duration {
        let min = self.settings.retry_delay_min_us;
        let max = self.settings.retry_delay_max_us.max(min);
        Duration::from_micros(rand::rng().random_range(min..=max))
    }

    /// Releases the lock if it is still ours; returns whether it was.
    pub async fn release(&self, guard: LockGuard) -> Result<bool, Error> {
        let mut conn = self.redis.get().await?;
        let deleted: i64 = RELEASE
            .key(&guard.key)
            .arg(&guard.token)
            .invoke_async(&mut conn)
            .await?;
        if deleted == 0 {
            tracing::warn!(key = %guard.key, "lock expired before release; the work outlived LOCK_TTL_MS");
        }
        Ok(deleted == 1)
    }

    /// Extends the lock's TTL to a full `LOCK_TTL_MS` if it is still ours; returns
    /// whether it was.
    pub async fn extend(&self, guard: &LockGuard) -> Result<bool, Error> {
        let mut conn = self.redis.get().await?;
        let extended: i64 = EXTEND
            .key(&guard.key)
            .arg(&guard.token)
            .arg(self.settings.ttl_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(extended == 1)
    }

    /// Runs `work` holding the lock, extending it while the work runs, and releases it
    /// afterwards, whatever `work` returned.
    pub async fn with_lock<T, E>(
        &self,
        key: &str,
        work: impl AsyncFnOnce() -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let guard = self.acquire(key).await?;
        let outcome = self.kept_while(&guard, work()).await;
        if let Err(error) = self.release(guard).await {
            // The TTL frees the lock anyway; the work itself is done.
            tracing::warn!(%error, key, "could not release lock");
        }
        outcome
    }

    /// Awaits `work`, extending the lock every third of its TTL meanwhile.
    async fn kept_while<T>(&self, guard: &LockGuard, work: impl Future<Output = T>) -> T {
        let every = Duration::from_millis((self.settings.ttl_ms / 3).max(1));
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                outcome = &mut work => return outcome,
                () = tokio::time::sleep(every) => match self.extend(guard).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(key = %guard.key, "lost the lock while working: it expired or was taken"),
                    Err(error) => tracing::warn!(%error, key = %guard.key, "could not extend the lock; retrying"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::AsyncCommands;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use testkit::TestRedis;

    fn settings(max_retries: u32) -> LockSettings {
        LockSettings {
            max_retries,
            retry_delay_min_us: 1_000,
            retry_delay_max_us: 5_000,
            ttl_ms: 5_000,
        }
    }

    fn client() -> RedisClient {
        common::redis::client(&TestRedis::new().settings()).unwrap()
    }

    /// A lock retrying `max_retries` times and a key under a test prefix of its own (its
    /// keys are deleted when the returned `TestRedis` is dropped).
    fn lock_and_key(max_retries: u32) -> (DistributedLock, String, TestRedis) {
        let redis = TestRedis::new();
        let key = format!("{}lock", redis.prefix);
        (
            DistributedLock::new(client(), settings(max_retries)),
            key,
            redis,
        )
    }

    #[tokio::test]
    async fn a_held_lock_is_busy_after_one_plus_max_retries_attempts() {
        let (lock, key, _redis) = lock_and_key(5);
        let held = lock.acquire(&key).await.unwrap();
        match lock.acquire(&key).await {
            Err(Error::LockBusy { attempts, .. }) => assert_eq!(attempts, 6),
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(lock.release(held).await.unwrap());
        assert!(lock.acquire(&key).await.is_ok());
    }

    #[tokio::test]
    async fn release_never_deletes_another_holders_lock() {
        let (lock, key, redis) = lock_and_key(0);
        let stale = lock.acquire(&key).await.unwrap();
        // Simulate expiry and another holder taking over.
        let mut conn = redis.connection().await;
        conn.set::<_, _, ()>(&key, "someone-else").await.unwrap();
        assert!(!lock.release(stale).await.unwrap());
        let holder: String = conn.get(&key).await.unwrap();
        assert_eq!(holder, "someone-else");
    }

    #[tokio::test]
    async fn with_lock_serializes_concurrent_work() {
        let (lock, key, _redis) = lock_and_key(200);
        let inside = Arc::new(AtomicU32::new(0));
        let overlaps = Arc::new(AtomicU32::new(0));
        let tasks = (0..8).map(|_| {
            let (lock, key, inside, overlaps) =
                (lock.clone(), key.clone(), inside.clone(), overlaps.clone());
            tokio::spawn(async move {
                lock.with_lock(&key, async || {
                    if inside.fetch_add(1, Ordering::SeqCst) > 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Error>(())
                })
                .await
            })
        });
        for task in tasks.collect::<Vec<_>>() {
            task.await.unwrap().unwrap();
        }
        assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn work_outliving_the_ttl_keeps_the_lock_until_it_ends() {
        let redis = TestRedis::new();
        let key = format!("{}lock", redis.prefix);
        let lock = DistributedLock::new(
            client(),
            LockSettings {
                ttl_ms: 300,
                ..settings(0)
            },
        );
        let rival = lock.clone();
        let taken_meanwhile = lock
            .with_lock(&key, async || {
                let mut taken = 0;
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Ok(guard) = rival.acquire(&key).await {
                        taken += 1;
                        rival.release(guard).await.unwrap();
                    }
                }
                Ok::<_, Error>(taken)
            })
            .await
            .unwrap();
        assert_eq!(
            taken_meanwhile, 0,
            "a second holder got in during 1 s of work"
        );
        let mut conn = redis.connection().await;
        let left: Option<String> = conn.get(&key).await.unwrap();
        assert_eq!(left, None, "released at the end");
    }
}
