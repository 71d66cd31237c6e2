//! What the sale keeps in Redis, and every Redis script it runs (`src/scripts/*.lua`),
//! shared by the services: the key layout (every key of one item carries the hash tag
//! `{<id>}`, so an item's keys share a Redis Cluster slot and one script may touch them
//! together), an item's sale state and the purchases that change it, the outbox and
//! parked orders, and the distributed lock that serializes work on one item.

pub mod keys;
pub mod lifecycle;
pub mod lock;
pub mod outbox;
pub mod parked;
pub mod purchase;
pub mod rebuild;
pub mod settle;
pub mod stock_back;
pub mod store;
pub mod sync;

pub use keys::{ItemKeys, UserKeys};
pub use lock::DistributedLock;
pub use store::ItemStore;

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
