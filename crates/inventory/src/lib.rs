//! What the system keeps in Redis of a sale, and every Redis script it runs on it
//! (`src/scripts/*.lua`), shared by the services. Three owners, one per concern:
//! [`Stock`] (an item's sale state and the purchases that change it), [`Outbox`] (orders
//! taken but not yet in MySQL: confirm marks, back-off, parked orders, ruling out an
//! unknown purchase) and [`Reservations`] (held units ending paid, cancelled or expired).
//! [`Inventory`] bundles the three and runs the operator's repairs (sync-stock,
//! rebuild-redis), which touch all of them. Every key of one item carries the hash tag
//! `{<id>}`, so an item's keys share a Redis Cluster slot and one script may touch them
//! together; the distributed lock serializes work on one item.

mod core;
pub mod keys;
pub mod lifecycle;
pub mod lock;
pub mod outbox;
pub mod parked;
pub mod purchase;
pub mod rebuild;
pub mod room;
pub mod selling;
pub mod settle;
pub mod stock;
pub mod stock_back;
pub mod sync;

pub use keys::ItemKeys;
pub use lifecycle::Reservations;
pub use lock::DistributedLock;
pub use outbox::Outbox;
pub use room::WaitingRoom;
pub use selling::Selling;
pub use stock::Stock;

use common::redis::{Keyspace, RedisClient};
use std::time::Duration;

/// The three owners of an item's Redis state, built on one client and keyspace. Hand
/// out the one a piece of code needs (`inventory.stock.clone()`).
#[derive(Clone)]
pub struct Inventory {
    pub stock: Stock,
    pub outbox: Outbox,
    pub reservations: Reservations,
    pub room: WaitingRoom,
    pub selling: Selling,
    core: core::Core,
}

impl Inventory {
    pub fn new(redis: RedisClient, keys: Keyspace) -> Self {
        Self::of(core::Core::new(redis, keys))
    }

    fn of(core: core::Core) -> Self {
        Inventory {
            stock: Stock { core: core.clone() },
            outbox: Outbox { core: core.clone() },
            reservations: Reservations { core: core.clone() },
            room: WaitingRoom { core: core.clone() },
            selling: Selling { core: core.clone() },
            core,
        }
    }

    /// The same inventory, looking into a write whose outcome is unknown for at most
    /// `bound`.
    pub fn settling_within(self, bound: Duration) -> Self {
        Self::of(core::Core {
            settle_within: bound,
            ..self.core
        })
    }

    pub fn keys(&self, item_id: u64) -> ItemKeys {
        self.core.keys(item_id)
    }

    pub fn keyspace(&self) -> &Keyspace {
        self.core.keyspace()
    }

    pub fn redis(&self) -> &RedisClient {
        self.core.redis()
    }

    /// An inventory on a test's own Redis and key prefix, for the unit tests.
    #[cfg(test)]
    pub(crate) fn on(redis: &testkit::TestRedis) -> Self {
        Self::new(
            common::redis::client(&redis.settings()).expect("a pool on the test's Redis"),
            Keyspace::new(redis.prefix.clone()),
        )
    }
}

/// What can go wrong talking to the inventory in Redis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lock {key} still held after {attempts} attempts")]
    LockBusy { key: String, attempts: u32 },
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("unexpected reply from Redis: {0}")]
    UnexpectedReply(String),
    /// An admin's change was written but is not known to be on enough replicas
    /// (`REDIS_MIN_REPLICAS_ACKED`) to outlive its master.
    #[error(transparent)]
    NotReplicated(#[from] common::redis::ReplicationError),
    /// A reservation step (pay, cancel, expire) that may have happened and could not be
    /// settled in time: applied on a master whose replicas did not acknowledge it, or
    /// sent without a reply.
    #[error("the outcome of a step on order {order_id} is unknown")]
    StepUnsettled { order_id: String },
}

/// The Redis server's clock (TIME) in Unix ms: the one the scripts check sale windows and
/// deadlines against, so every instance agrees.
pub(crate) async fn server_time_ms(
    conn: &mut impl redis::aio::ConnectionLike,
) -> redis::RedisResult<i64> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(secs * 1000 + micros / 1000)
}
