//! Redis connection pool and key naming shared by every service.

use crate::config::RedisSettings;
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use std::time::Duration;

pub use deadpool_redis::Pool as RedisPool;

/// Builds the pool; connections are made lazily, so this succeeds with Redis down and
/// requests then fail fast (the timeouts) with `SYSTEM_BUSY` until it is back.
pub fn pool(settings: &RedisSettings) -> anyhow::Result<Pool> {
    let mut config = Config::from_url(settings.url());
    let mut pool_config = PoolConfig::new(settings.pool_size);
    pool_config.timeouts = Timeouts {
        wait: Some(Duration::from_secs(2)),
        create: Some(Duration::from_secs(2)),
        recycle: Some(Duration::from_secs(1)),
    };
    config.pool = Some(pool_config);
    Ok(config.create_pool(Some(Runtime::Tokio1))?)
}

/// The names of keys, all under one configurable prefix so that several deployments or
/// test runs can share a server without seeing each other's keys.
#[derive(Debug, Clone, Default)]
pub struct Keyspace {
    prefix: String,
}

impl Keyspace {
    pub fn new(prefix: impl Into<String>) -> Self {
        Keyspace {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn key(&self, name: impl std::fmt::Display) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Marks a token id as revoked; checked on every authenticated request.
    pub fn revoked_token(&self, jti: &str) -> String {
        self.key(format_args!("revoked:{jti}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix() {
        let keys = Keyspace::new("t1:");
        assert_eq!(keys.revoked_token("abc"), "t1:revoked:abc");
    }
}
