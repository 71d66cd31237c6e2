//! Redis access shared by every service, on a single server or a Redis Cluster
//! (`REDIS_MODE`).
//!
//! Ordinary commands go through one shared multiplexed connection that reconnects by
//! itself (to the one server, or to every node of the cluster, routed by each command's
//! key slot): handing it out costs a clone, where a pool checkout would cost a
//! health-check round trip per request. WATCH/MULTI state belongs to a connection, so
//! code that needs it takes a connection of its own to the node that owns the key
//! ([`RedisClient::exclusive_for`]).
//!
//! On a cluster, redirects and failovers are handled in [`cluster_connection`].

mod cluster;
mod cluster_connection;
mod keyspace;
mod replication;
mod slot_pipeline;

pub use cluster::{Topology, slot_of};
pub use cluster_connection::ClusterHandle;
pub use keyspace::Keyspace;
pub use replication::ReplicationError;
pub use slot_pipeline::SlotPipeline;

use crate::config::{Environment, RedisMode, RedisSettings};
use cluster_connection::Reconnector;
use deadpool_redis::{Manager, Pool, Runtime};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::time::Duration;

const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// How a service talks to Redis: one shared multiplexed connection for ordinary
/// commands, and connections of their own for WATCH/MULTI/EXEC.
#[derive(Clone)]
pub struct RedisClient {
    settings: Arc<RedisSettings>,
    shared: Shared,
    exclusive: Exclusive,
    replication: replication::Replication,
}

/// The shared connection: to the one server, or to the cluster.
#[derive(Clone)]
pub enum SharedConnection {
    Single(ConnectionManager),
    Cluster(ClusterHandle),
}

#[derive(Clone)]
enum Shared {
    Single(ConnectionManager),
    Cluster(Arc<Reconnector>),
}

#[derive(Clone)]
enum Exclusive {
    Single(Pool),
    Cluster(Topology),
}

impl RedisClient {
    /// The shared connection (a cheap handle; commands from all callers are pipelined).
    pub async fn get(&self) -> Result<SharedConnection, redis::RedisError> {
        Ok(self.connection())
    }

    fn connection(&self) -> SharedConnection {
        match &self.shared {
            Shared::Single(conn) => SharedConnection::Single(conn.clone()),
            Shared::Cluster(reconnector) => SharedConnection::Cluster(reconnector.current()),
        }
    }

    /// A connection nobody else uses until it is dropped, to the node that owns `key`,
    /// for WATCH/MULTI/EXEC on keys of that key's slot.
    pub async fn exclusive_for(
        &self,
        key: &str,
    ) -> Result<deadpool_redis::Connection, deadpool_redis::PoolError> {
        match &self.exclusive {
            Exclusive::Single(pool) => pool.get().await,
            Exclusive::Cluster(topology) => topology.exclusive_for(&self.connection(), key).await,
        }
    }

    /// Waits until `REDIS_MIN_REPLICAS_ACKED` replicas have every write the master of
    /// `key` finished so far (at once when none are wanted). Until this succeeds, a
    /// write on `key` would not survive the loss of that master for certain.
    pub async fn replicated(&self, key: &str) -> Result<(), ReplicationError> {
        if self.replication.wanted() == 0 {
            return Ok(());
        }
        let master = match &self.exclusive {
            Exclusive::Single(_) => None,
            Exclusive::Cluster(topology) => Some(
                topology
                    .master_of(&self.connection(), slot_of(key), false)
                    .await?,
            ),
        };
        let acknowledged = self.replication.acknowledged(master.as_deref(), key).await;
        if let (Err(_), Exclusive::Cluster(topology)) = (&acknowledged, &self.exclusive) {
            // Perhaps a failover: look the master up again next time.
            topology.forget();
        }
        acknowledged
    }

    /// A connection of its own (never the shared one) to the server, or to the master
    /// that owns `key` as the cluster says now, for a command that blocks for up to
    /// `blocking` (`XREAD BLOCK`): its reply may take that long beyond
    /// `REDIS_RESPONSE_TIMEOUT_MS`. On a cluster, a caller whose key moves gets MOVED
    /// and asks again.
    pub async fn dedicated_for(
        &self,
        key: &str,
        blocking: Duration,
    ) -> Result<MultiplexedConnection, redis::RedisError> {
        let url = match &self.exclusive {
            Exclusive::Single(_) => self.settings.url(),
            Exclusive::Cluster(topology) => {
                let master = topology
                    .master_of(&self.connection(), slot_of(key), true)
                    .await?;
                self.settings.url_of(&master)
            }
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(
                Duration::from_millis(self.settings.response_timeout_ms) + blocking,
            ));
        redis::Client::open(url)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Whether this talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.shared, Shared::Cluster(_))
    }

    /// The topology of the cluster (`None` on a single server).
    pub fn topology(&self) -> Option<&Topology> {
        match &self.exclusive {
            Exclusive::Single(_) => None,
            Exclusive::Cluster(topology) => Some(topology),
        }
    }
}

impl ConnectionLike for SharedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            SharedConnection::Single(conn) => conn.req_packed_command(cmd),
            SharedConnection::Cluster(conn) => Box::pin(conn.send(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            SharedConnection::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            SharedConnection::Cluster(conn) => Box::pin(conn.send_pipeline(cmd, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            SharedConnection::Single(conn) => conn.get_db(),
            SharedConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A pool of connections of their own to one server.
fn exclusive_pool(url: String, settings: &RedisSettings) -> anyhow::Result<Pool> {
    let manager = Manager::new_with_config(
        url,
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(Duration::from_millis(settings.response_timeout_ms))),
    )?;
    Ok(Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(2)))
        .create_timeout(Some(CONNECTION_TIMEOUT))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .build()?)
}

/// A pub/sub connection to the first configured node that answers (on a cluster, a
/// message published on any node reaches the subscribers of every node).
pub async fn subscriber(settings: &RedisSettings) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut last_error = None;
    for url in settings.node_urls() {
        let connected = async { redis::Client::open(url.as_str())?.get_async_pubsub().await };
        match tokio::time::timeout(CONNECTION_TIMEOUT, connected).await {
            Ok(Ok(pubsub)) => return Ok(pubsub),
            Ok(Err(error)) => last_error = Some(error),
            Err(_) => {
                last_error = Some(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "no pub/sub connection in time",
                )))
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Client, "no Redis node configured"))
    }))
}

/// Connects lazily, so this succeeds with Redis down; commands then fail fast (the
/// timeouts) with `SYSTEM_BUSY` until it is back. A command whose reply takes longer
/// than `REDIS_RESPONSE_TIMEOUT_MS` fails; for a write, that leaves its outcome unknown.
pub fn client(settings: &RedisSettings) -> anyhow::Result<RedisClient> {
    let response_timeout = Duration::from_millis(settings.response_timeout_ms);
    match settings.mode {
        RedisMode::Single => {
            let client = redis::Client::open(settings.url())?;
            let shared = ConnectionManager::new_lazy_with_config(
                client,
                ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECTION_TIMEOUT))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500)),
            )?;
            Ok(RedisClient {
                settings: Arc::new(settings.clone()),
                shared: Shared::Single(shared),
                exclusive: Exclusive::Single(exclusive_pool(settings.url(), settings)?),
                replication: replication::Replication::new(settings),
            })
        }
        RedisMode::Cluster => {
            let (reconnector, topology) = cluster::connect(settings, response_timeout)?;
            Ok(RedisClient {
                settings: Arc::new(settings.clone()),
                shared: Shared::Cluster(reconnector),
                exclusive: Exclusive::Cluster(topology),
                replication: replication::Replication::new(settings),
            })
        }
    }
}

/// Builds the client and checks that Redis will not evict keys: it holds confirmed sales
/// not yet in MySQL (the outboxes) and token revocations, so an evicting Redis loses
/// sales and brings revoked tokens back. In production anything but `noeviction` (on
/// any node) stops the service; elsewhere it is logged as an error. If Redis cannot be
/// asked (down, or CONFIG disabled by a managed service), that is logged and the service
/// starts.
pub async fn connect(settings: &RedisSettings, env: Environment) -> anyhow::Result<RedisClient> {
    let client = client(settings)?;
    match eviction_policies(settings).await {
        Ok(policies) => {
            for (node, policy) in policies.iter().filter(|(_, p)| p != "noeviction") {
                let problem = format!(
                    "Redis maxmemory-policy is {policy} on {node}: under memory pressure Redis would evict unpersisted sales and revocations; set maxmemory-policy noeviction"
                );
                if env.is_production() {
                    anyhow::bail!(problem);
                }
                tracing::error!("{problem}");
            }
        }
        Err(error) => {
            tracing::warn!(%error, "could not check Redis maxmemory-policy (it must be noeviction)")
        }
    }
    Ok(client)
}

/// Every configured node's `maxmemory-policy`.
pub async fn eviction_policies(
    settings: &RedisSettings,
) -> Result<Vec<(String, String)>, redis::RedisError> {
    let mut policies = Vec::new();
    for url in settings.node_urls() {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(
                &AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECTION_TIMEOUT))
                    .set_response_timeout(Some(CONNECTION_TIMEOUT)),
            )
            .await?;
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await?;
        let policy = reply.into_iter().nth(1).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "CONFIG GET maxmemory-policy answered nothing",
            ))
        })?;
        policies.push((client.get_connection_info().addr().to_string(), policy));
    }
    Ok(policies)
}
