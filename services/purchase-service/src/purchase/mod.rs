//! Taking a purchase in Redis: the request, the possible outcomes, and the two
//! strategies that produce them ([`lua`], the default, and [`lock`], the reference
//! design kept for comparison). Both write the same state: stock decremented, the user's
//! count raised, the order in the item's outbox and the idempotency key recorded. Both
//! honour an order id voided by [`inventory::settle`], and both say whether a failure
//! left the outcome unknown ([`AttemptError`]).

pub mod lock;
pub mod lua;

use common::ValidationErrors;
use common::input::JsonObject;
use events::StockEvent;
use inventory::ItemKeys;

pub const MAX_QUANTITY: i64 = 1000;

/// Units to buy: 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(body: &JsonObject) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let quantity = errors.check(
            "quantity",
            body.integer("quantity").and_then(|q| {
                if (1..=MAX_QUANTITY).contains(&q) {
                    Ok(Quantity(q as u32))
                } else {
                    Err(format!(
                        "The quantity must be between 1 and {MAX_QUANTITY}."
                    ))
                }
            }),
        );
        quantity.ok_or(errors)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A client's `Idempotency-Key`: 1..=128 characters of letters, digits and `-_.:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if valid {
            Ok(IdempotencyKey(raw.to_owned()))
        } else {
            Err(
                "The Idempotency-Key header must be 1-128 letters, digits or -_.: characters."
                    .into(),
            )
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A purchase about to be attempted; the event is minted before Redis is asked, so
/// the script can store it in the outbox in the same atomic step.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub event: StockEvent,
    pub idempotency_key: Option<IdempotencyKey>,
    pub idempotency_ttl_secs: u64,
}

impl Attempt {
    pub fn keys(&self, keys: &common::redis::Keyspace) -> ItemKeys {
        ItemKeys::new(keys, self.event.item_id)
    }

    /// The idempotency key's Redis key (a placeholder of the same item when there is
    /// none, so the script's key list is always complete and in one slot).
    pub fn idempotency_redis_key(&self, keys: &ItemKeys) -> String {
        let key = self.idempotency_key.as_ref().map_or("-", |k| k.as_str());
        keys.idempotency(self.event.user_id, key)
    }

    pub fn void_key(&self, keys: &ItemKeys) -> String {
        keys.void(&self.event.order_id)
    }

    /// 0 tells the script there is no idempotency key.
    pub fn idempotency_ttl(&self) -> u64 {
        if self.idempotency_key.is_some() {
            self.idempotency_ttl_secs.max(1)
        } else {
            0
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken: the order is in the outbox.
    Placed,
    /// The idempotency key was used before, for the same quantity: that order, not a new
    /// one.
    Duplicate(IdempotencyRecord),
    /// The idempotency key was used before for another quantity: nothing changed.
    KeyReused(IdempotencyRecord),
    /// The order id had been voided (its purchase was settled as not taken).
    Void,
    NotOnSale,
    InsufficientStock {
        current_stock: u64,
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
    NotTaken(#[source] inventory::Error),
    /// The write was sent and its reply never came: the purchase may have happened.
    #[error("purchase outcome unknown: {0}")]
    Unknown(#[source] inventory::Error),
    /// Redis answered the script with something it never returns: a defect.
    #[error("unexpected reply from the purchase script: {0:?}")]
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
impl From<inventory::Error> for AttemptError {
    fn from(error: inventory::Error) -> Self {
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

    pub fn of(event: &StockEvent) -> String {
        format!(
            "{}:{}:{}",
            event.order_id, event.quantity, event.purchased_at_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    fn quantity(json: &str) -> Result<Quantity, ValidationErrors> {
        Quantity::parse(&JsonObject::parse(json.as_bytes()).unwrap())
    }

    #[test]
    fn quantity_must_be_an_integer_from_1_to_1000() {
        assert_eq!(quantity(r#"{"quantity": 1}"#).unwrap().get(), 1);
        assert_eq!(quantity(r#"{"quantity": 1000}"#).unwrap().get(), 1000);
        for bad in [
            r#"{"quantity": 0}"#,
            r#"{"quantity": 2000}"#,
            r#"{"quantity": "abc"}"#,
            r#"{"quantity": 1.5}"#,
            "{}",
            r#"{"quantity": null}"#,
        ] {
            let errors = quantity(bad).unwrap_err();
            assert_eq!(errors.fields().collect::<Vec<_>>(), ["quantity"], "{bad}");
        }
    }

    #[quickcheck]
    fn any_integer_quantity_is_accepted_exactly_in_range(q: i64) -> bool {
        quantity(&format!(r#"{{"quantity": {q}}}"#)).is_ok() == (1..=1000).contains(&q)
    }

    #[test]
    fn idempotency_keys_are_bounded_and_plain() {
        assert!(IdempotencyKey::parse("order-2024-11-24:abc_1.2").is_ok());
        for bad in ["", "has space", "quote\"", &"k".repeat(129), "ünï"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

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
