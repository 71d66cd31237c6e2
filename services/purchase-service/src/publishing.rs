//! Hands placed orders to RabbitMQ without making the buyer wait for the broker.
//!
//! A placed order is already safe in its item's outbox; publishing at once only makes it
//! reach MySQL sooner. Events go through a bounded queue to one task that keeps a
//! bounded number of publishes awaiting their confirm. Both bounds keep memory flat when
//! the broker is slow: a publish awaiting its confirm costs kilobytes (measured: 4096 in
//! flight added about 27 MiB), a queued event a few hundred bytes. When the queue is
//! full (broker down, or far behind) the event is dropped here and the outbox relay
//! publishes it later.
//!
//! Once the broker confirms an order, its outbox entry is pushed back by
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
use inventory::ItemStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Confirmed orders are marked in Redis at least this often, or per this many.
const MARK_EVERY: Duration = Duration::from_millis(100);
const MARK_BATCH: usize = 512;

/// The publishing task's bounds, and when a confirmed order comes due again.
pub struct PublishSettings {
    pub capacity: usize,
    pub max_in_flight: usize,
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
        store: ItemStore,
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
    store: ItemStore,
    mut queued: mpsc::Receiver<StockEvent>,
    settings: PublishSettings,
    mut shutdown: Shutdown,
) {
    let max_in_flight = settings.max_in_flight.max(1);
    let mut in_flight = FuturesUnordered::new();
    let mut confirmed: Vec<(u64, String)> = Vec::new();
    let mut failures = FailedPublishes::default();
    let mut mark_timer = tokio::time::interval(MARK_EVERY);
    loop {
        tokio::select! {
            Some(event) = queued.recv(), if in_flight.len() < max_in_flight => {
                let publisher = publisher.clone();
                in_flight.push(async move {
                    let published = publish(&publisher, &event).await;
                    (event, published)
                });
            }
            Some((event, published)) = in_flight.next(), if !in_flight.is_empty() => {
                match published {
                    Ok(()) => confirmed.push((event.item_id, event.message_id())),
                    Err(error) => failures.record(&event.order_id, &error),
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

async fn mark_confirmed(store: &ItemStore, confirmed: &mut Vec<(u64, String)>, after_ms: i64) {
    if confirmed.is_empty() {
        return;
    }
    let orders: Vec<(u64, &str)> = confirmed.iter().map(|(i, o)| (*i, o.as_str())).collect();
    let due = chrono::Utc::now().timestamp_millis() + after_ms;
    if let Err(error) = store.reschedule(&orders, due).await {
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
    pub fn record(&mut self, order_id: &str, error: &PublishError) {
        tracing::debug!(order_id, %error, "publish failed");
        self.count += 1;
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

/// Publishes one event to the stock queue.
pub async fn publish(publisher: &Publisher, event: &StockEvent) -> Result<(), PublishError> {
    let mut headers = Vec::new();
    if let Some(request_id) = &event.request_id {
        headers.push(("x-request-id", request_id.as_str()));
    }
    let queue = &publisher.topology().queue;
    publisher
        .publish(
            queue,
            &event.message_id(),
            event.to_json().as_bytes(),
            &headers,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_summed_until_logged() {
        let mut failures = FailedPublishes::default();
        assert!(!failures.pending());
        failures.record("a", &PublishError::Nacked);
        assert!(!failures.pending(), "the first failure is logged at once");
        failures.record("b", &PublishError::Nacked);
        failures.record("c", &PublishError::Nacked);
        assert_eq!(failures.count, 2, "later ones wait for the next line");
        failures.log_if_due();
        assert!(failures.pending(), "not a second yet");
        failures.log();
        assert!(!failures.pending());
    }
}
