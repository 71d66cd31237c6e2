//! Waiting until writes have reached replicas (`REDIS_MIN_REPLICAS_ACKED`), as a group
//! commit. WAIT blocks the connection it is sent on and counts only that connection's
//! own writes, so each master gets a committer with a connection of its own: a round
//! writes a marker key there (its replication offset is past every write the master
//! finished before it) and then WAITs, covering every caller that asked before the round
//! began. A caller waits for the round in flight to end and its own round at most; no
//! write waits behind another write's WAIT. The marker lies in the slot of the latest
//! caller's key, which the client has just found on this master, so the rounds follow
//! the slots a master owns as resharding moves them.

use super::slot_of;
use crate::config::RedisSettings;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Why a write is not known to be on enough replicas; its fate must be looked up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplicationError {
    #[error("{acked} of {wanted} replicas acknowledged the write in time")]
    TooFewReplicas { acked: u32, wanted: u32 },
    #[error("could not wait for replicas: {0}")]
    Unavailable(String),
}

impl From<redis::RedisError> for ReplicationError {
    fn from(error: redis::RedisError) -> Self {
        ReplicationError::Unavailable(error.to_string())
    }
}

/// The committers of one client, one per master, made on first use.
#[derive(Clone)]
pub(super) struct Replication {
    settings: Arc<RedisSettings>,
    wanted: u32,
    committers: Arc<Mutex<HashMap<String, Arc<Committer>>>>,
}

impl Replication {
    pub(super) fn new(settings: &RedisSettings) -> Self {
        Replication {
            settings: Arc::new(settings.clone()),
            wanted: settings.replicas_to_ack(),
            committers: Arc::default(),
        }
    }

    pub(super) fn wanted(&self) -> u32 {
        self.wanted
    }

    /// Waits until `wanted` replicas of `master` (the cluster node serving `key`'s
    /// slot, or the single server) have every write it finished before now.
    pub(super) async fn acknowledged(
        &self,
        master: Option<&str>,
        key: &str,
    ) -> Result<(), ReplicationError> {
        let url = match master {
            Some(address) => self.settings.url_of(address),
            None => self.settings.url(),
        };
        let committer = {
            let mut committers = self.committers.lock().unwrap_or_else(|e| e.into_inner());
            committers
                .entry(url.clone())
                .or_insert_with(|| Committer::start(&self.settings, url, self.wanted))
                .clone()
        };
        committer.wait(slot_of(key)).await
    }
}

/// One master's committer: callers take a ticket, rounds cover tickets.
struct Committer {
    requested: watch::Sender<Request>,
    rounds: watch::Receiver<Round>,
}

/// The latest ticket taken, and the slot of its caller's key.
#[derive(Clone, Copy, Default)]
struct Request {
    ticket: u64,
    slot: u16,
}

#[derive(Clone)]
struct Round {
    /// Every ticket up to this one is covered by `result`.
    covered: u64,
    result: Result<(), ReplicationError>,
}

impl Committer {
    fn start(settings: &RedisSettings, url: String, wanted: u32) -> Arc<Self> {
        let (requested, tickets) = watch::channel(Request::default());
        let (finished, rounds) = watch::channel(Round {
            covered: 0,
            result: Ok(()),
        });
        let rounder = Rounder {
            url,
            key_prefix: settings.key_prefix.clone(),
            markers: HashMap::new(),
            wanted,
            wait_timeout: Duration::from_millis(settings.replica_ack_timeout_ms),
            response_timeout: Duration::from_millis(settings.response_timeout_ms),
            connection: None,
        };
        tokio::spawn(rounder.run(tickets, finished));
        Arc::new(Committer { requested, rounds })
    }

    async fn wait(&self, slot: u16) -> Result<(), ReplicationError> {
        let mut rounds = self.rounds.clone();
        let mut ticket = 0;
        self.requested.send_modify(|requested| {
            requested.ticket += 1;
            requested.slot = slot;
            ticket = requested.ticket;
        });
        let round = rounds
            .wait_for(|round| round.covered >= ticket)
            .await
            .map_err(|_| ReplicationError::Unavailable("the committer stopped".into()))?;
        round.result.clone()
    }
}

/// The committer's task: runs rounds while tickets are waiting, ends with its committer.
struct Rounder {
    url: String,
    key_prefix: String,
    /// Marker keys by slot, found once each.
    markers: HashMap<u16, String>,
    wanted: u32,
    wait_timeout: Duration,
    response_timeout: Duration,
    connection: Option<MultiplexedConnection>,
}

impl Rounder {
    async fn run(mut self, mut tickets: watch::Receiver<Request>, finished: watch::Sender<Round>) {
        let mut covered = 0;
        loop {
            let Request {
                ticket: target,
                slot,
            } = *tickets.borrow_and_update();
            if target > covered {
                let result = self.round(slot).await;
                if result.is_err() {
                    self.connection = None;
                }
                covered = target;
                finished.send_replace(Round { covered, result });
            } else if tickets.changed().await.is_err() {
                return;
            }
        }
    }

    async fn round(&mut self, slot: u16) -> Result<(), ReplicationError> {
        let marker = self
            .markers
            .entry(slot)
            .or_insert_with(|| marker_key(&self.key_prefix, slot))
            .clone();
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self.connection.insert(self.connect().await?),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&marker)
            .arg(1)
            .arg("PX")
            .arg(60_000)
            .ignore()
            .cmd("WAIT")
            .arg(self.wanted)
            .arg(self.wait_timeout.as_millis() as u64);
        let (acked,): (u32,) = pipe.query_async(connection).await?;
        if acked >= self.wanted {
            Ok(())
        } else {
            Err(ReplicationError::TooFewReplicas {
                acked,
                wanted: self.wanted,
            })
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, ReplicationError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(super::CONNECTION_TIMEOUT))
            .set_response_timeout(Some(self.wait_timeout + self.response_timeout));
        Ok(redis::Client::open(self.url.as_str())?
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}

/// A key of `slot` for the marker writes: `{tag}` with a tag that hashes to the slot.
fn marker_key(prefix: &str, slot: u16) -> String {
    let tag = (0u64..)
        .map(|n| n.to_string())
        .find(|tag| slot_of(tag) == slot)
        .unwrap_or_default();
    format!("{prefix}replication-marker:{{{tag}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_key_lies_in_the_slot_asked_for() {
        for slot in [0, 1, 9842, 16383] {
            assert_eq!(slot_of(&marker_key("p:", slot)), slot);
        }
    }
}
