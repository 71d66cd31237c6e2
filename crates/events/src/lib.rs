//! The stock event that carries a confirmed purchase from purchase-service to
//! stock-writer, and the RabbitMQ topology and publisher both sides use. Its JSON schema
//! is written down in `proto-docs/stock-event.schema.json`.

pub mod publisher;
pub mod topology;

pub use publisher::{PublishError, Publisher};
pub use topology::Topology;

use serde::{Deserialize, Serialize};

pub const EVENT_VERSION: u8 = 1;

/// Whether `raw` has the form of an order id: 1-64 letters, digits or dashes (what
/// purchase-service mints, a UUID).
pub fn is_order_id(raw: &str) -> bool {
    (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// One confirmed purchase. `order_id` is unique: it is what makes persistence
/// idempotent, and it is the AMQP `message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockEvent {
    pub version: u8,
    pub order_id: String,
    pub user_id: u64,
    pub item_id: u64,
    pub quantity: u32,
    /// Milliseconds since the Unix epoch, when the purchase was taken in Redis.
    pub purchased_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl StockEvent {
    /// Parses and checks a message body; the error says why it can never be applied.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let event: StockEvent =
            serde_json::from_slice(body).map_err(|e| format!("malformed event: {e}"))?;
        if event.version != EVENT_VERSION {
            return Err(format!("unsupported event version {}", event.version));
        }
        if !is_order_id(&event.order_id) {
            return Err("order_id must be 1-64 letters, digits or dashes".into());
        }
        if event.quantity == 0 {
            return Err("quantity must be at least 1".into());
        }
        if event.item_id == 0 || event.user_id == 0 {
            return Err("item_id and user_id must be positive".into());
        }
        Ok(event)
    }

    pub fn to_json(&self) -> String {
        // A struct of plain fields always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> StockEvent {
        StockEvent {
            version: 1,
            order_id: "0192f1c2-7a4b-7cde-8f00-123456789abc".into(),
            user_id: 7,
            item_id: 42,
            quantity: 2,
            purchased_at_ms: 1_700_000_000_000,
            request_id: None,
        }
    }

    #[test]
    fn events_round_trip() {
        let json = event().to_json();
        assert_eq!(StockEvent::parse(json.as_bytes()).unwrap(), event());
    }

    #[test]
    fn unusable_events_say_why() {
        assert!(
            StockEvent::parse(b"not json")
                .unwrap_err()
                .contains("malformed")
        );
        let mut bad = event();
        bad.quantity = 0;
        assert!(StockEvent::parse(bad.to_json().as_bytes()).is_err());
        let mut bad = event();
        bad.order_id = "x'; DROP TABLE orders".into();
        assert!(StockEvent::parse(bad.to_json().as_bytes()).is_err());
        let mut bad = event();
        bad.version = 9;
        assert!(
            StockEvent::parse(bad.to_json().as_bytes())
                .unwrap_err()
                .contains("version")
        );
        assert!(StockEvent::parse(br#"{"version":1,"order_id":"a","user_id":-1}"#).is_err());
    }
}
