//! Login throttling: failed attempts are counted in Redis per email and per client
//! address over a decay window; once either count reaches its limit, logins for it are
//! refused with 429 until the window passes.

use common::ApiError;
use common::redis::{Keyspace, RedisPool};
use redis::AsyncCommands;

#[derive(Clone)]
pub struct LoginThrottle {
    pub redis: RedisPool,
    pub keys: Keyspace,
    pub max_per_email: u64,
    pub max_per_address: u64,
    pub decay_secs: u64,
}

impl LoginThrottle {
    fn counters(&self, email: &str, address: &str) -> [(String, u64); 2] {
        [
            (
                self.keys.key(format_args!("login:email:{email}")),
                self.max_per_email,
            ),
            (
                self.keys.key(format_args!("login:addr:{address}")),
                self.max_per_address,
            ),
        ]
    }

    /// Refuses the attempt when either counter is at its limit.
    pub async fn check(&self, email: &str, address: &str) -> Result<(), ApiError> {
        let counters = self.counters(email, address);
        let mut conn = self.redis.get().await?;
        let counts: Vec<Option<u64>> = conn.mget(&[&counters[0].0, &counters[1].0]).await?;
        for ((key, max), count) in counters.iter().zip(counts) {
            if count.unwrap_or(0) >= *max {
                let ttl: i64 = conn.ttl(key).await?;
                return Err(ApiError::TooManyRequests {
                    retry_after_secs: u64::try_from(ttl).unwrap_or(self.decay_secs),
                });
            }
        }
        Ok(())
    }

    pub async fn record_failure(&self, email: &str, address: &str) -> Result<(), ApiError> {
        let mut conn = self.redis.get().await?;
        let mut pipe = redis::pipe();
        for (key, _) in self.counters(email, address) {
            pipe.incr(&key, 1)
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(self.decay_secs)
                .arg("NX")
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// A successful login clears the email's count (not the address's: one user logging
    /// in must not reset a guesser's count from the same address).
    pub async fn record_success(&self, email: &str, address: &str) -> Result<(), ApiError> {
        let mut conn = self.redis.get().await?;
        let [(email_key, _), _] = self.counters(email, address);
        conn.del::<_, ()>(email_key).await?;
        Ok(())
    }
}
