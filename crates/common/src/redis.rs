//! Redis access and key naming shared by every service.
//!
//! Ordinary commands go through one shared multiplexed connection that reconnects by
//! itself: handing it out costs a clone, where a pool checkout would cost a health-check
//! round trip per request. WATCH/MULTI state belongs to a connection, so code that needs
//! it takes a connection of its own from the pool ([`RedisClient::exclusive`]).

use crate::config::{Environment, RedisSettings};
use deadpool_redis::{Manager, Pool, Runtime};
use redis::AsyncConnectionConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// How a service talks to Redis: one shared multiplexed connection for ordinary
/// commands, and a small pool of connections of their own for WATCH/MULTI/EXEC.
#[derive(Clone)]
pub struct RedisClient {
    shared: ConnectionManager,
    exclusive: Pool,
}

impl RedisClient {
    /// The shared connection (a cheap handle; commands from all callers are pipelined).
    pub async fn get(&self) -> Result<ConnectionManager, redis::RedisError> {
        Ok(self.shared.clone())
    }

    /// A connection nobody else uses until it is dropped, for WATCH/MULTI/EXEC.
    pub async fn exclusive(&self) -> Result<deadpool_redis::Connection, deadpool_redis::PoolError> {
        self.exclusive.get().await
    }
}

const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects lazily, so this succeeds with Redis down; commands then fail fast (the
/// timeouts) with `SYSTEM_BUSY` until it is back. A command whose reply takes longer
/// than `REDIS_RESPONSE_TIMEOUT_MS` fails; for a write, that leaves its outcome unknown.
pub fn pool(settings: &RedisSettings) -> anyhow::Result<RedisClient> {
    let response_timeout = Duration::from_millis(settings.response_timeout_ms);
    let client = redis::Client::open(settings.url())?;
    let shared = ConnectionManager::new_lazy_with_config(
        client,
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500)),
    )?;
    let manager = Manager::new_with_config(
        settings.url(),
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(response_timeout)),
    )?;
    let exclusive = Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(2)))
        .create_timeout(Some(CONNECTION_TIMEOUT))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .build()?;
    Ok(RedisClient { shared, exclusive })
}

/// Builds the pool and checks that Redis will not evict keys: it holds confirmed sales
/// not yet in MySQL (the outboxes) and token revocations, so an evicting Redis loses
/// sales and brings revoked tokens back. In production anything but `noeviction` stops
/// the service; elsewhere it is logged as an error. If Redis cannot be asked (down, or
/// CONFIG disabled by a managed service), that is logged and the service starts.
pub async fn connect(settings: &RedisSettings, env: Environment) -> anyhow::Result<RedisClient> {
    let pool = pool(settings)?;
    match eviction_policy(&pool).await {
        Ok(policy) if policy == "noeviction" => {}
        Ok(policy) => {
            let problem = format!(
                "Redis maxmemory-policy is {policy}: under memory pressure Redis would evict unpersisted sales and revocations; set maxmemory-policy noeviction"
            );
            if env.is_production() {
                anyhow::bail!(problem);
            }
            tracing::error!("{problem}");
        }
        Err(error) => {
            tracing::warn!(%error, "could not check Redis maxmemory-policy (it must be noeviction)")
        }
    }
    Ok(pool)
}

/// Redis's `maxmemory-policy`.
pub async fn eviction_policy(pool: &RedisClient) -> Result<String, redis::RedisError> {
    let mut conn = pool.get().await?;
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut conn)
        .await?;
    reply.into_iter().nth(1).ok_or_else(|| {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "CONFIG GET maxmemory-policy answered nothing",
        ))
    })
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
