//! Taking a purchase in Redis: the request, the possible outcomes, and the two
//! strategies that produce them ([`lua`], the default, and [`lock`], the reference
//! design kept for comparison). Both write the same state: stock decremented, the user's
//! count raised, the order in the item's outbox and the idempotency key recorded.

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
        let mut errors = body.unknown_fields(&["quantity"]);
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
        match quantity {
            Some(quantity) if errors.is_empty() => Ok(quantity),
            _ => Err(errors),
        }
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
    Placed {
        remaining: u64,
    },
    /// The idempotency key was used before: that order, not a new one.
    Duplicate {
        order_id: String,
        quantity: u32,
    },
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

/// Reads the `order_id:quantity` an idempotency key holds.
pub fn parse_idempotency_record(record: &str) -> Option<(String, u32)> {
    let (order_id, quantity) = record.rsplit_once(':')?;
    Some((order_id.to_owned(), quantity.parse().ok()?))
}

pub fn idempotency_record(event: &StockEvent) -> String {
    format!("{}:{}", event.order_id, event.quantity)
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

    #[test]
    fn an_integral_quantity_is_an_integer_and_unknown_fields_are_refused() {
        assert_eq!(quantity(r#"{"quantity": 208.0}"#).unwrap().get(), 208);
        let errors =
            quantity(r#"{"quantity": 1, "x-schemathesis-unknown-property": 42}"#).unwrap_err();
        assert_eq!(
            errors.fields().collect::<Vec<_>>(),
            ["x-schemathesis-unknown-property"]
        );
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
            parse_idempotency_record("0192-ab:7"),
            Some(("0192-ab".into(), 7))
        );
        assert_eq!(parse_idempotency_record("garbage"), None);
    }
}
