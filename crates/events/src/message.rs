//! A stock message carries one event (a JSON object) or several (a JSON array of them).
//! Publishing a burst of orders as one message, confirmed once, is what keeps the
//! broker's cost per order low: a quorum queue pays for every message (its Raft log
//! entry, its confirm, its delivery and ack), hardly for its size. The consumer splits
//! a message back into events and stays idempotent per event, so a batch redelivered,
//! or an event in it that is also published alone by the relay, changes nothing.

use crate::StockEvent;
use serde_json::value::RawValue;

/// The body of one message holding `events` (one: the event itself; more: an array).
pub fn encode_message(events: &[StockEvent]) -> String {
    match events {
        [event] => event.to_json(),
        // A list of plain structs always serializes.
        events => serde_json::to_string(events).unwrap_or_default(),
    }
}

/// One event of a received message: parsed, or why it can never apply, with its own
/// bytes (what goes to the dead-letter queue if it is refused).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub event: Result<StockEvent, String>,
    pub body: Vec<u8>,
}

/// Splits a message body into its events. A body that is neither an event nor an array
/// of them is one refused entry holding the whole body.
pub fn parse_message(body: &[u8]) -> Vec<Received> {
    let whole = |event| {
        vec![Received {
            event,
            body: body.to_vec(),
        }]
    };
    if body.trim_ascii_start().first() != Some(&b'[') {
        return whole(StockEvent::parse(body));
    }
    match serde_json::from_slice::<Vec<&RawValue>>(body) {
        Ok(raw) if !raw.is_empty() => raw
            .into_iter()
            .map(|raw| Received {
                event: StockEvent::parse(raw.get().as_bytes()),
                body: raw.get().as_bytes().to_vec(),
            })
            .collect(),
        Ok(_) => whole(Err("an empty batch of events".into())),
        Err(error) => whole(Err(format!("malformed batch of events: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EVENT_VERSION, EventType};

    fn event(order: &str) -> StockEvent {
        StockEvent {
            version: EVENT_VERSION,
            order_id: order.into(),
            user_id: 7,
            item_id: 42,
            quantity: 1,
            purchased_at_ms: 1_700_000_000_000,
            ..StockEvent::default()
        }
    }

    #[test]
    fn one_event_is_sent_as_itself_and_a_burst_as_an_array() {
        let one = encode_message(&[event("o-1")]);
        assert!(one.starts_with('{'));
        let received = parse_message(one.as_bytes());
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].event, Ok(event("o-1")));
        assert_eq!(received[0].body, one.as_bytes());

        let step = StockEvent {
            kind: EventType::Expired,
            at_ms: Some(1_700_000_001_000),
            ..event("o-1")
        };
        let burst = [event("o-1"), event("o-2"), step.clone()];
        let received = parse_message(encode_message(&burst).as_bytes());
        let events: Vec<_> = received.iter().map(|r| r.event.clone()).collect();
        assert_eq!(events, burst.map(Ok));
        assert_eq!(received[2].body, step.to_json().as_bytes());
    }

    #[test]
    fn a_bad_event_in_a_batch_is_refused_alone() {
        let good = event("o-1").to_json();
        let body = format!(r#" [{good}, {{"version":2,"order_id":"o-2","quantity":0}}]"#);
        let received = parse_message(body.as_bytes());
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].event, Ok(event("o-1")));
        assert!(received[1].event.is_err());
        assert_eq!(
            received[1].body,
            br#"{"version":2,"order_id":"o-2","quantity":0}"#
        );
    }

    #[test]
    fn a_body_that_is_no_batch_is_refused_whole() {
        for body in [&b"[1, 2"[..], b"[]", b"not json", b""] {
            let received = parse_message(body);
            assert_eq!(received.len(), 1, "{body:?}");
            assert!(received[0].event.is_err(), "{body:?}");
            assert_eq!(received[0].body, body);
        }
    }
}
