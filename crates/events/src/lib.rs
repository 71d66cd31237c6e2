//! The stock event that carries a confirmed purchase from purchase-service to
//! stock-writer, and the RabbitMQ topology and publisher both sides use. Its JSON schema
//! is written down in `proto-docs/stock-event.schema.json`.

pub mod message;
pub mod publisher;
pub mod topology;

pub use message::{Received, encode_message, parse_message};
pub use publisher::{PublishError, Publisher};
pub use topology::Topology;

use serde::{Deserialize, Serialize};

/// The Lua function `ended_event(placed, status, at_ms, payment_id)` that builds a
/// reservation's end event inside a Redis script (see the file for why there); prepend
/// it to a script that calls it.
pub const ENDED_EVENT_LUA: &str = include_str!("ended_event.lua");

/// Version 2 added the event type and the reservation fields; version-1 events (all
/// placements of final orders) are still accepted.
pub const EVENT_VERSION: u8 = 2;

/// Whether `raw` has the form of an order id: 1-64 letters, digits or dashes (what
/// purchase-service mints, a UUID).
pub fn is_order_id(raw: &str) -> bool {
    (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What happened to an order. `placed` takes the units (a final order, or a reservation
/// when `pay_by_ms` is set); `paid` settles a reservation; `cancelled` and `expired`
/// give a reservation's units back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    #[default]
    Placed,
    Paid,
    Cancelled,
    Expired,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Placed => "placed",
            EventType::Paid => "paid",
            EventType::Cancelled => "cancelled",
            EventType::Expired => "expired",
        }
    }

    /// Gives units back to the sale.
    pub fn releases(self) -> bool {
        matches!(self, EventType::Cancelled | EventType::Expired)
    }
}

/// One step of an order's life. (order id, type) is unique: it is what makes
/// persistence idempotent, and [`StockEvent::message_id`] is the AMQP `message_id` and
/// the outbox field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockEvent {
    pub version: u8,
    #[serde(rename = "type", default)]
    pub kind: EventType,
    pub order_id: String,
    pub user_id: u64,
    pub item_id: u64,
    pub quantity: u32,
    /// Milliseconds since the Unix epoch, when the purchase was taken in Redis.
    pub purchased_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// A reservation: pay by this time (Unix ms), or it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_by_ms: Option<i64>,
    /// A reservation: the amount due, in minor units (price × quantity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    /// `paid`, `cancelled`, `expired`: when it happened (Unix ms, Redis clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
    /// `paid`: the payment provider's id of the payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
}

impl StockEvent {
    /// Parses and checks a message body; the error says why it can never be applied.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let event: StockEvent =
            serde_json::from_slice(body).map_err(|e| format!("malformed event: {e}"))?;
        if !(1..=EVENT_VERSION).contains(&event.version) {
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
        if event.kind != EventType::Placed && event.at_ms.is_none() {
            return Err(format!("a {} event needs at_ms", event.kind.as_str()));
        }
        Ok(event)
    }

    /// The outbox field and AMQP message id: the order id for its placement,
    /// `<order id>:<type>` for the steps after.
    pub fn message_id(&self) -> String {
        match self.kind {
            EventType::Placed => self.order_id.clone(),
            kind => format!("{}:{}", self.order_id, kind.as_str()),
        }
    }

    pub fn to_json(&self) -> String {
        // A struct of plain fields always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placement_has_the_form_the_lua_end_event_edits() {
        let json = event().to_json();
        assert_eq!(json.matches(r#""type":"placed""#).count(), 1, "{json}");
        assert!(json.ends_with('}'), "{json}");
    }

    fn event() -> StockEvent {
        StockEvent {
            version: EVENT_VERSION,
            order_id: "0192f1c2-7a4b-7cde-8f00-123456789abc".into(),
            user_id: 7,
            item_id: 42,
            quantity: 2,
            purchased_at_ms: 1_700_000_000_000,
            request_id: None,
            ..StockEvent::default()
        }
    }

    #[test]
    fn version_1_events_are_placements_and_later_steps_have_their_own_message_id() {
        let v1 = br#"{"version":1,"order_id":"o-1","user_id":7,"item_id":42,"quantity":2,"purchased_at_ms":1700000000000}"#;
        let event = StockEvent::parse(v1).unwrap();
        assert_eq!(event.kind, EventType::Placed);
        assert_eq!(event.message_id(), "o-1");
        let expired = StockEvent {
            kind: EventType::Expired,
            at_ms: Some(1_700_000_001_000),
            ..event.clone()
        };
        assert_eq!(expired.message_id(), "o-1:expired");
        assert!(expired.to_json().contains(r#""type":"expired""#));
        assert_eq!(
            StockEvent::parse(expired.to_json().as_bytes()).unwrap(),
            expired
        );
        let undated = StockEvent {
            kind: EventType::Paid,
            ..event
        };
        assert!(StockEvent::parse(undated.to_json().as_bytes()).is_err());
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
