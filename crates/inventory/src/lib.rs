//! The Redis side of inventory, shared by catalog-service, purchase-service and
//! stock-writer: the key layout (every key of one item carries the hash tag `{<id>}`, so
//! an item's keys share a Redis Cluster slot and one script may touch them together),
//! the item state store, and the distributed lock that serializes work on one item.

pub mod keys;
pub mod lock;
pub mod outbox;
pub mod parked;
pub mod purchase;
pub mod settle;
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
}

/// An inventory failure is transient from a client's point of view (busy, retry),
/// except a reply nobody expected, which is a defect: 500, with the reply logged.
impl From<Error> for common::ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::LockBusy { key, attempts } => {
                tracing::warn!(%key, attempts, "lock retries exhausted");
                common::ApiError::SystemBusy {
                    retry_after_secs: 1,
                }
            }
            Error::Redis(e) => e.into(),
            Error::Pool(e) => e.into(),
            Error::UnexpectedReply(reply) => {
                common::ApiError::internal(Error::UnexpectedReply(reply))
            }
        }
    }
}
