//! Redis access and key naming shared by every service.
//!
//! Ordinary commands go through one shared multiplexed connection that reconnects by
//! itself: handing it out costs a clone, where a pool checkout would cost a health-check
//! round trip per request. WATCH/MULTI state belongs to a connection, so code that needs
//! it takes a connection of its own from the pool ([`RedisPool::exclusive`]).

use crate::config::RedisSettings;
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

#[derive(Clone)]
pub struct RedisPool {
    shared: ConnectionManager,
    exclusive: Pool,
}

impl RedisPool {
    /// The shared connection (a cheap handle; commands from all callers are pipelined).
    pub async fn get(&self) -> Result<ConnectionManager, redis::RedisError> {
        Ok(self.shared.clone())
    }

    /// A connection nobody else uses until it is dropped, for WATCH/MULTI/EXEC.
    pub async fn exclusive(&self) -> Result<deadpool_redis::Connection, deadpool_redis::PoolError> {
        self.exclusive.get().await
    }
}

/// Connects lazily, so this succeeds with Redis down; commands then fail fast (the
/// timeouts) with `SYSTEM_BUSY` until it is back.
pub fn pool(settings: &RedisSettings) -> anyhow::Result<RedisPool> {
    let client = redis::Client::open(settings.url())?;
    let shared = ConnectionManager::new_lazy_with_config(
        client,
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500)),
    )?;
    let mut config = Config::from_url(settings.url());
    let mut pool_config = PoolConfig::new(settings.pool_size);
    pool_config.timeouts = Timeouts {
        wait: Some(Duration::from_secs(2)),
        create: Some(Duration::from_secs(2)),
        recycle: Some(Duration::from_secs(1)),
    };
    config.pool = Some(pool_config);
    let exclusive = config.create_pool(Some(Runtime::Tokio1))?;
    Ok(RedisPool { shared, exclusive })
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
