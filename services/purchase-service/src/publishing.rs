//! Hands placed orders to RabbitMQ without making the buyer wait for the broker.
//!
//! A placed order is already safe in its item's outbox; publishing at once only makes it
//! reach MySQL sooner. Events go through a bounded queue to one task that keeps a
//! bounded number of messages awaiting their confirm. Each message takes every event
//! queued by then (up to `batch_max`): the broker's cost is per message, so while a
//! confirm is outstanding the orders that arrive meanwhile gather into the next message
//! (a partial batch waits while two messages await their confirms, a full one goes up
//! to `max_in_flight`), and a lone order still goes at once. Both bounds keep memory flat when the broker is slow.
//! When the queue is full (broker down, or far behind) the event is dropped here and
//! the outbox relay publishes it later.
//!
//! Once the broker confirms a message, its orders' outbox entries are pushed back by
//! `republish_after_ms` (in batches), so that the relay republishes only orders whose
//! publish never got through, not every order stock-writer has yet to persist: under
//! sustained overload those duplicates would only add to the broker's and the writer's
//! load.
//!
//! On shutdown the queue takes nothing more, and the task publishes what it holds,
//! waits for the confirms and marks them before it ends, so a restart leaves the relay
//! nothing to republish.

use common::shutdown::Shutdown;
use events::{PublishError, Publisher, StockEvent};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use inventory::Inventory;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Confirmed orders are marked in Redis at least this often, or per this many.
const MARK_EVERY: Duration = Duration::from_millis(100);
const MARK_BATCH: usize = 512;
/// Messages awaiting their confirm below which a partial batch is published.
const PARTIAL_IN_FLIGHT: usize = 2;

/// The publishing task's bounds, and when a confirmed order comes due again.
pub struct PublishSettings {
    pub capacity: usize,
    /// Messages awaiting their confirm at once.
    pub max_in_flight: usize,
    /// Events per message at most.
    pub batch_max: usize,
    pub republish_after_ms: i64,
}

#[derive(Clone)]
pub struct PublishQueue {
    events: mpsc::Sender<StockEvent>,
}

impl PublishQueue {
    /// Starts the publishing task on the current runtime. Once shutdown is requested (or
    /// every handle is dropped) it drains: publishes what is queued, waits for the
    /// confirms, marks them, and ends.
    pub fn start(
        publisher: Arc<Publisher>,
        store: Inventory,
        settings: PublishSettings,
        shutdown: Shutdown,
    ) -> (Self, JoinHandle<()>) {
        let (events, queued) = mpsc::channel(settings.capacity.max(1));
        let task = tokio::spawn(publish_queued(publisher, store, queued, settings, shutdown));
        (PublishQueue { events }, task)
    }

    /// Queues an event for publishing; false when the queue is full, in which case the
    /// outbox relay will publish it.
    pub fn offer(&self, event: StockEvent) -> bool {
        self.events.try_send(event).is_ok()
    }
}

async fn publish_queued(
    publisher: Arc<Publisher>,
    store: Inventory,
    mut queued: mpsc::Receiver<StockEvent>,
    settings: PublishSettings,
    mut shutdown: Shutdown,
) {
    let max_in_flight = settings.max_in_flight.max(1);
    let batch_max = settings.batch_max.max(1);
    let mut in_flight = FuturesUnordered::new();
    let mut confirmed: Vec<(u64, String)> = Vec::new();
    let mut failures = FailedPublishes::default();
    let mut mark_timer = tokio::time::interval(MARK_EVERY);
    loop {
        tokio::select! {
            Some(first) = queued.recv(), if may_publish(in_flight.len(), queued.len(), max_in_flight, batch_max) => {
                let mut batch = vec![first];
                while batch.len() < batch_max && let Ok(event) = queued.try_recv() {
                    batch.push(event);
                }
                let publisher = publisher.clone();
                in_flight.push(async move {
                    let published = publish(&publisher, &batch).await;
                    (batch, published)
                });
            }
            Some((batch, published)) = in_flight.next(), if !in_flight.is_empty() => {
                match published {
                    Ok(()) => confirmed.extend(batch.iter().map(|e| (e.item_id, e.message_id()))),
                    Err(error) => failures.record(batch.len(), &error),
                }
                if confirmed.len() >= MARK_BATCH {
                    mark_confirmed(&store, &mut confirmed, settings.republish_after_ms).await;
                }
            }
            _ = mark_timer.tick(), if !confirmed.is_empty() || failures.pending() => {
                mark_confirmed(&store, &mut confirmed, settings.republish_after_ms).await;
                failures.log_if_due();
            }
            () = shutdown.requested(), if !queued.is_closed() => {
                tracing::info!(queued = queued.len(), in_flight = in_flight.len(), "draining the publish queue");
                queued.close();
            }
            else => break,
        }
    }
    mark_confirmed(&store, &mut confirmed, settings.republish_after_ms).await;
    failures.log();
}

/// Whether to publish now. A full batch goes while fewer than `max_in_flight` messages
/// await their confirm; a partial one only while fewer than [`PARTIAL_IN_FLIGHT`] do, so
/// the orders that arrive during a confirm's round trip gather into the next message
/// instead of each taking one (a lone order still goes at once).
fn may_publish(in_flight: usize, queued: usize, max_in_flight: usize, batch_max: usize) -> bool {
    in_flight < max_in_flight && (in_flight < PARTIAL_IN_FLIGHT || queued + 1 >= batch_max)
}

async fn mark_confirmed(store: &Inventory, confirmed: &mut Vec<(u64, String)>, after_ms: i64) {
    if confirmed.is_empty() {
        return;
    }
    let orders: Vec<(u64, &str)> = confirmed.iter().map(|(i, o)| (*i, o.as_str())).collect();
    let due = chrono::Utc::now().timestamp_millis() + after_ms;
    if let Err(error) = store.outbox.mark_confirmed(&orders, due).await {
        tracing::warn!(%error, count = orders.len(), "could not mark published orders; the relay may publish them again");
    }
    confirmed.clear();
}

/// Failed publishes, summed into one warning a second: while the broker is down every
/// order fails, thousands a second, and a line each would flood the log.
#[derive(Default)]
pub struct FailedPublishes {
    count: u64,
    last_error: String,
    last_logged: Option<Instant>,
}

impl FailedPublishes {
    /// A publish of `orders` orders failed.
    pub fn record(&mut self, orders: usize, error: &PublishError) {
        tracing::debug!(orders, %error, "publish failed");
        self.count += orders as u64;
        self.last_error = error.to_string();
        self.log_if_due();
    }

    pub fn pending(&self) -> bool {
        self.count > 0
    }

    pub fn log_if_due(&mut self) {
        if self
            .last_logged
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.log();
        }
    }

    /// Logs what was recorded since the last line, if anything.
    pub fn log(&mut self) {
        if self.count > 0 {
            tracing::warn!(count = self.count, error = %self.last_error, "publishes failed; the outbox relay will retry them");
            self.count = 0;
            self.last_logged = Some(Instant::now());
        }
    }
}

/// Publishes events to the stock queue as one message. A lone event keeps its own
/// message id and request id header; a batch is named after its first event.
pub async fn publish(publisher: &Publisher, events: &[StockEvent]) -> Result<(), PublishError> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let mut headers = Vec::new();
    let message_id = if let [event] = events {
        if let Some(request_id) = &event.request_id {
            headers.push(("x-request-id", request_id.as_str()));
        }
        event.message_id()
    } else {
        format!("batch:{}+{}", first.message_id(), events.len() - 1)
    };
    let queue = &publisher.topology().queue;
    publisher
        .publish(
            queue,
            &message_id,
            events::encode_message(events).as_bytes(),
            &headers,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_batch_waits_for_confirms_and_a_full_one_does_not() {
        let (max_in_flight, batch_max) = (16, 128);
        assert!(
            may_publish(0, 0, max_in_flight, batch_max),
            "a lone order goes at once"
        );
        assert!(may_publish(1, 5, max_in_flight, batch_max));
        assert!(
            !may_publish(2, 5, max_in_flight, batch_max),
            "a partial batch gathers"
        );
        assert!(
            may_publish(2, 127, max_in_flight, batch_max),
            "a full batch goes"
        );
        assert!(
            !may_publish(16, 500, max_in_flight, batch_max),
            "the bound holds"
        );
        assert!(
            may_publish(0, 0, 1, 1),
            "one in flight at most still publishes"
        );
        assert!(!may_publish(1, 0, 1, 1));
    }

    #[test]
    fn failures_are_summed_until_logged() {
        let mut failures = FailedPublishes::default();
        assert!(!failures.pending());
        failures.record(1, &PublishError::Nacked);
        assert!(!failures.pending(), "the first failure is logged at once");
        failures.record(3, &PublishError::Nacked);
        failures.record(1, &PublishError::Nacked);
        assert_eq!(failures.count, 4, "later ones wait for the next line");
        failures.log_if_due();
        assert!(failures.pending(), "not a second yet");
        failures.log();
        assert!(!failures.pending());
    }
}
