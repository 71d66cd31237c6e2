//! purchase-service input parsed into types that only hold valid values: a quantity, a
//! client's idempotency key and an order id from a path. Handlers pass these on.

use common::ValidationErrors;
use common::input::JsonObject;

pub const MAX_QUANTITY: u32 = 1000;

/// Units to buy: 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(body: &JsonObject) -> Result<Self, ValidationErrors> {
        body.quantity_only(MAX_QUANTITY).map(Quantity)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// `raw` if it is 1 to `max` characters, each a letter, a digit or one of `extra`.
fn token(raw: &str, max: usize, extra: &[u8]) -> Option<String> {
    let valid = (1..=max).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b));
    valid.then(|| raw.to_owned())
}

/// A payment provider's payment id: 1-255 letters, digits or `_-.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentId(String);

impl PaymentId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        token(raw, 255, b"_-.")
            .map(PaymentId)
            .ok_or_else(|| "The payment_id must be 1-255 letters, digits or _-. characters.".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client's `Idempotency-Key`: 1..=128 characters of letters, digits and `-_.:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        token(raw, 128, b"-_.:").map(IdempotencyKey).ok_or_else(|| {
            "The Idempotency-Key header must be 1-128 letters, digits or -_.: characters.".into()
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An order id as the path carries it: what the service mints (1-64 letters, digits
/// and dashes). Anything else names no order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(raw: &str) -> Option<Self> {
        events::is_order_id(raw).then(|| OrderId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
    fn order_ids_are_what_the_service_mints() {
        assert!(OrderId::parse("0192f1c2-7a4b-7cde-8f00-123456789abc").is_some());
        for bad in ["é", "%C3%A9", "", &"a".repeat(65), "a b", "a'b"] {
            assert!(OrderId::parse(bad).is_none(), "{bad:?}");
        }
    }
}
