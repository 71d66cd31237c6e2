//! Taking a purchase in an item's Redis state, two ways that run the same purchase script
//! (`scripts/purchase.lua`, the one statement of the rules) and so write the same state
//! (stock decremented, the buyer's count raised, the order in the outbox, the idempotency
//! key recorded): [`crate::Stock::purchase_by_script`], the script alone (the default), and
//! [`crate::Stock::purchase_under_lock`], the script inside the reference design's lock and
//! WATCH/MULTI/EXEC, kept for comparison. Both honour an order id voided by
//! [`crate::settle`], and both say whether a failure left the outcome unknown
//! ([`AttemptError`]).

mod locked;
mod script;

pub use locked::WatchHook;
pub use script::{PURCHASE_LUA, purchase_keys};

use crate::keys::ItemKeys;

/// A purchase about to be attempted. The order id and the event are minted before Redis
/// is asked, so the order can enter the outbox in the same atomic step.
#[derive(Debug, Clone)]
pub struct Purchase<'a> {
    pub item_id: u64,
    pub user_id: u64,
    pub quantity: u32,
    pub order_id: &'a str,
    /// The stock event as it goes into the outbox (and later to RabbitMQ).
    pub event_json: &'a str,
    /// When it is taken, in Unix milliseconds (also the idempotency record's time).
    pub now_ms: i64,
    pub idempotency: Option<Idempotency<'a>>,
}

/// A client's idempotency key and how long it is remembered.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub ttl_secs: u64,
}

impl Purchase<'_> {
    /// The idempotency key's Redis key (a placeholder of the same item when there is
    /// none, so the script's key list is always complete and in one slot).
    fn idempotency_key(&self, keys: &ItemKeys) -> String {
        let key = self.idempotency.map_or("-", |i| i.key);
        keys.idempotency(self.user_id, key)
    }

    /// 0 tells the script there is no idempotency key.
    fn idempotency_ttl(&self) -> u64 {
        self.idempotency.map_or(0, |i| i.ttl_secs.max(1))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken: the order is in the outbox.
    Placed,
    /// Taken as a reservation (the item has a payment window): the order is in the
    /// outbox and in the expiry schedule; unpaid by `pay_by_ms`, it expires.
    Reserved {
        pay_by_ms: i64,
        amount: u64,
    },
    /// The idempotency key was used before, for the same quantity: that order, not a new
    /// one.
    Duplicate(IdempotencyRecord),
    /// The idempotency key was used before for another quantity: nothing changed.
    KeyReused(IdempotencyRecord),
    /// The order id had been voided (its purchase was settled as not taken).
    Void,
    NotOnSale,
    /// The item's sale opens at this time (Unix ms).
    SaleNotStarted {
        starts_at_ms: i64,
    },
    /// The item's sale closed at this time (Unix ms).
    SaleEnded {
        ended_at_ms: i64,
    },
    InsufficientStock {
        current_stock: u64,
    },
    /// The item has a waiting room and the buyer holds no open pass: their ticket's state
    /// (`None`: they have not joined).
    NotAdmitted {
        state: Option<crate::room::TicketState>,
    },
    LimitExceeded {
        limit: u64,
        already_bought: u64,
    },
    /// (lock strategy) the lock was never acquired or EXEC was aborted; nothing changed.
    Busy,
}

/// Why an attempt failed: whether the purchase certainly did not happen, or may have.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// Nothing was written (Redis refused the connection, answered an error, or the
    /// failure came before the write was sent).
    #[error("purchase not taken: {0}")]
    NotTaken(#[source] crate::Error),
    /// The write was sent and its reply never came: the purchase may have happened.
    #[error("purchase outcome unknown: {0}")]
    Unknown(#[source] crate::Error),
    /// Redis answered with something the purchase never returns: a defect.
    #[error("unexpected reply to a purchase: {0:?}")]
    UnexpectedReply(Vec<String>),
}

impl AttemptError {
    /// Classifies the failure of a command that writes: an answer from Redis (an error
    /// reply) or a refused connection means it did not run; a lost or late reply means
    /// it may have.
    pub fn of_write(error: redis::RedisError) -> Self {
        use redis::ErrorKind;
        let unknown = !error.is_connection_refusal()
            && matches!(
                error.kind(),
                ErrorKind::Io | ErrorKind::Parse | ErrorKind::UnexpectedReturnType
            );
        if unknown {
            AttemptError::Unknown(error.into())
        } else {
            AttemptError::NotTaken(error.into())
        }
    }
}

/// The failures of commands that write nothing: they leave the purchase not taken.
impl From<crate::Error> for AttemptError {
    fn from(error: crate::Error) -> Self {
        AttemptError::NotTaken(error)
    }
}

impl From<redis::RedisError> for AttemptError {
    fn from(error: redis::RedisError) -> Self {
        AttemptError::NotTaken(error.into())
    }
}

impl From<deadpool_redis::PoolError> for AttemptError {
    fn from(error: deadpool_redis::PoolError) -> Self {
        AttemptError::NotTaken(error.into())
    }
}

/// What an idempotency key holds: the order it produced, for which quantity, and when
/// (`order_id:quantity:purchased_at_ms`; records written before the time was kept have
/// only the first two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub order_id: String,
    pub quantity: u32,
    pub purchased_at_ms: Option<i64>,
}

impl IdempotencyRecord {
    pub fn parse(record: &str) -> Option<Self> {
        let mut parts = record.split(':');
        let order_id = parts.next().filter(|id| !id.is_empty())?.to_owned();
        let quantity = parts.next()?.parse().ok()?;
        let purchased_at_ms = match parts.next() {
            Some(at) => Some(at.parse().ok()?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(IdempotencyRecord {
            order_id,
            quantity,
            purchased_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_records_round_trip() {
        assert_eq!(
            IdempotencyRecord::parse("0192-ab:7:1700000000000"),
            Some(IdempotencyRecord {
                order_id: "0192-ab".into(),
                quantity: 7,
                purchased_at_ms: Some(1_700_000_000_000),
            })
        );
        assert_eq!(
            IdempotencyRecord::parse("0192-ab:7"),
            Some(IdempotencyRecord {
                order_id: "0192-ab".into(),
                quantity: 7,
                purchased_at_ms: None,
            })
        );
        for garbage in ["garbage", ":7", "a:b", "a:7:x", "a:7:1:2", ""] {
            assert_eq!(IdempotencyRecord::parse(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn a_lost_reply_is_unknown_and_a_refusal_or_error_reply_is_not() {
        use std::io;
        let lost = redis::RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        assert!(matches!(
            AttemptError::of_write(lost),
            AttemptError::Unknown(_)
        ));
        let dropped = redis::RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(matches!(
            AttemptError::of_write(dropped),
            AttemptError::Unknown(_)
        ));
        let refused = redis::RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            AttemptError::of_write(refused),
            AttemptError::NotTaken(_)
        ));
        let answered =
            redis::RedisError::from((redis::ErrorKind::Client, "OOM command not allowed"));
        assert!(matches!(
            AttemptError::of_write(answered),
            AttemptError::NotTaken(_)
        ));
    }
}
