//! The topology of a Redis Cluster (which master owns which slots), read from the
//! cluster and cached for a moment, with a pool of connections of their own to each
//! master for WATCH/MULTI/EXEC; and how a key maps to its slot.

use super::cluster_connection::Reconnector;
use super::{SharedConnection, exclusive_pool};
use crate::config::RedisSettings;
use deadpool_redis::Pool;
use redis::Value;
use redis::cluster::ClusterClientBuilder;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The slot Redis Cluster hashes a key to: CRC16 of its hash tag (the first non-empty
/// `{...}`), or of the whole key, modulo 16384.
pub fn slot_of(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|b| *b == b'{').and_then(|open| {
        let close = bytes[open + 1..].iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &bytes[open + 1..open + 1 + close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % 16384
}

/// How long a read topology is trusted before it is read again.
const TOPOLOGY_TTL: Duration = Duration::from_secs(1);

/// Which master owns which slots, and a pool of connections to each master.
#[derive(Clone)]
pub struct Topology {
    settings: Arc<RedisSettings>,
    state: Arc<Mutex<TopologyState>>,
}

#[derive(Default)]
struct TopologyState {
    /// (first slot, last slot, master address `host:port`), as CLUSTER SLOTS lists them.
    slots: Vec<(u16, u16, String)>,
    read_at: Option<Instant>,
    pools: HashMap<String, Pool>,
}

pub(super) fn connect(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> anyhow::Result<(Arc<Reconnector>, Topology)> {
    let mut builder = ClusterClientBuilder::new(settings.node_urls())
        .retries(0)
        .connection_timeout(super::CONNECTION_TIMEOUT)
        .response_timeout(response_timeout);
    if !settings.password.is_empty() {
        builder = builder.password(settings.password.clone());
    }
    let config = redis::cluster::ClusterConfig::new()
        .set_connection_timeout(super::CONNECTION_TIMEOUT)
        .set_response_timeout(response_timeout);
    Ok((
        Reconnector::new(builder.build()?, config),
        Topology {
            settings: Arc::new(settings.clone()),
            state: Arc::default(),
        },
    ))
}

impl Topology {
    /// The master that owns `slot`, as far as the cluster told us within the last
    /// second (read again when older, or when `refresh`).
    pub async fn master_of(
        &self,
        shared: &SharedConnection,
        slot: u16,
        refresh: bool,
    ) -> Result<String, redis::RedisError> {
        let fresh = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.read_at.is_some_and(|at| at.elapsed() < TOPOLOGY_TTL) && !refresh
        };
        if !fresh {
            let slots = read_slots(shared).await?;
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.slots = slots;
            state.read_at = Some(Instant::now());
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .slots
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, master)| master.clone())
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::ClusterConnectionNotFound,
                    "no master serves the slot",
                ))
            })
    }

    /// Drops what was read, so the next lookup asks the cluster.
    pub fn forget(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).read_at = None;
    }

    /// Every master the cluster has now.
    pub async fn masters(
        &self,
        shared: &SharedConnection,
    ) -> Result<Vec<String>, redis::RedisError> {
        self.master_of(shared, 0, false).await?;
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut masters: Vec<String> = state.slots.iter().map(|(_, _, m)| m.clone()).collect();
        masters.sort();
        masters.dedup();
        Ok(masters)
    }

    /// A connection of its own to a master (by address).
    pub async fn connection_to(
        &self,
        master: &str,
    ) -> Result<deadpool_redis::Connection, deadpool_redis::PoolError> {
        let pool = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match state.pools.get(master) {
                Some(pool) => pool.clone(),
                None => {
                    let url = self.settings.url_of(master);
                    let pool = exclusive_pool(url, &self.settings).map_err(|error| {
                        deadpool_redis::PoolError::Backend(redis::RedisError::from((
                            redis::ErrorKind::InvalidClientConfig,
                            "cannot build a pool for a cluster node",
                            error.to_string(),
                        )))
                    })?;
                    state.pools.insert(master.to_owned(), pool.clone());
                    pool
                }
            }
        };
        pool.get().await
    }

    /// A connection of its own to the master that owns `key`.
    pub(super) async fn exclusive_for(
        &self,
        shared: &SharedConnection,
        key: &str,
    ) -> Result<deadpool_redis::Connection, deadpool_redis::PoolError> {
        let master = self
            .master_of(shared, slot_of(key), false)
            .await
            .map_err(deadpool_redis::PoolError::Backend)?;
        self.connection_to(&master).await
    }
}

/// CLUSTER SLOTS: `[[first, last, [host, port, id], replicas...], ...]`.
async fn read_slots(
    shared: &SharedConnection,
) -> Result<Vec<(u16, u16, String)>, redis::RedisError> {
    let mut conn = shared.clone();
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    let odd = || {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "CLUSTER SLOTS answered an unexpected shape",
        ))
    };
    let Value::Array(ranges) = reply else {
        return Err(odd());
    };
    let mut slots = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(odd());
        };
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            return Err(odd());
        };
        let host = match master.first() {
            Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
            Some(Value::SimpleString(host)) => host.clone(),
            _ => return Err(odd()),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            return Err(odd());
        };
        slots.push((*first as u16, *last as u16, format!("{host}:{port}")));
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_to_the_slots_redis_computes() {
        // Values from `redis-cli CLUSTER KEYSLOT`.
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(
            slot_of("{user1000}.following"),
            slot_of("{user1000}.followers")
        );
        assert_eq!(slot_of("item:{42}:stock"), slot_of("42"));
        assert_eq!(
            slot_of("a{}b"),
            slot_of("a{}b"),
            "an empty tag hashes the whole key"
        );
        assert_ne!(slot_of("a{}b"), slot_of(""));
    }
}
