//! The outbox relay: republishes orders that are still in an outbox a while after
//! purchase (never published because the broker was down or the process died before
//! publishing, or published but not yet persisted). Duplicates are harmless: the
//! consumer is idempotent by order id. Each order backs off on its own: the n-th
//! republish of an order makes it due again `republish_after_ms × 2^(n-1)` later, at
//! most [`MAX_BACKOFF_FACTOR`] times that, so a writer that is down for long does not
//! get every order every half minute.
//!
//! Behind N instances each relay scans only the outboxes of the items its [`Share`]
//! owns (`item id mod N = rank`, [`crate::membership`]), so the N relays together scan
//! and republish each outbox once, and the items of an instance that stopped or died
//! pass to the others at their next heartbeat after it left the set. While the
//! instances' views of the set differ (for up to one heartbeat after a change) an item
//! may be scanned by two relays or, for that long, by none.

use crate::membership::{Membership, Share};
use crate::publishing::{FailedPublishes, publish};
use common::shutdown::Shutdown;
use events::{PublishError, Publisher, StockEvent};
use futures_util::StreamExt;
use inventory::Inventory;
use inventory::outbox::OutboxEntry;
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::Duration;

const BATCH_PER_ITEM: usize = 2000;

/// The longest backoff, as a multiple of `republish_after_ms` (30 s → 8 min).
pub const MAX_BACKOFF_FACTOR: i64 = 16;

pub struct Relay {
    pub store: Inventory,
    pub publisher: Arc<Publisher>,
    pub interval: Duration,
    pub relay_after_ms: i64,
    pub republish_after_ms: i64,
    /// Messages awaiting a confirm at once, and events per message, as for fresh orders.
    pub max_in_flight: usize,
    pub batch_max: usize,
    /// Which items' outboxes this instance relays.
    pub membership: Membership,
    /// Orders this instance's relay republished (`outbox_republished_total`).
    pub republished: Counter,
}

impl Relay {
    /// Runs until shutdown. After a pass that republished something it goes again at
    /// once, so a backlog left by a broker outage drains at the broker's pace rather
    /// than one batch per interval.
    pub async fn run(self, mut shutdown: Shutdown) {
        loop {
            match self.tick(self.membership.share()).await {
                Ok(0) => {}
                Ok(count) => {
                    tracing::info!(count, "relay republished outbox orders");
                    if !shutdown.is_requested() {
                        continue;
                    }
                }
                Err(error) => tracing::warn!(%error, "relay tick failed"),
            }
            if !shutdown.sleep(self.interval).await {
                return;
            }
        }
    }

    /// One pass over the outboxes of the items `share` owns; returns how many orders
    /// were republished. Also forgets those of its items that stopped selling
    /// ([`inventory::selling`]).
    pub async fn tick(&self, share: Share) -> Result<usize, inventory::Error> {
        let now = chrono::Utc::now().timestamp_millis();
        self.store
            .selling
            .sweep(|item_id| share.owns(item_id), now)
            .await?;
        let mut items = self.store.stock.known_item_ids().await?;
        items.retain(|item_id| share.owns(*item_id));
        let due = self
            .store
            .outbox
            .due_entries(&items, now - self.relay_after_ms, BATCH_PER_ITEM)
            .await?;
        // Published in batches, several at once (up to max_in_flight): the broker
        // confirms them together, so a backlog left by an outage drains at the broker's
        // pace rather than one round trip per order, without holding thousands of
        // publishes in memory.
        let readable: Vec<(OutboxEntry, StockEvent)> = due
            .into_iter()
            .filter_map(|entry| match StockEvent::parse(entry.event.as_bytes()) {
                Ok(event) => Some((entry, event)),
                Err(_) => {
                    tracing::error!(order_id = %entry.order_id, "unreadable outbox entry left in place");
                    None
                }
            })
            .collect();
        let attempts: Vec<_> = readable
            .chunks(self.batch_max.max(1))
            .map(|chunk| publish_chunk(&self.publisher, chunk))
            .collect();
        let mut failures = FailedPublishes::default();
        let mut published = Vec::new();
        let mut outcomes =
            futures_util::stream::iter(attempts).buffer_unordered(self.max_in_flight.max(1));
        while let Some((chunk, outcome)) = outcomes.next().await {
            match outcome {
                Ok(()) => published.extend(chunk.iter().map(|(entry, _)| entry)),
                Err(error) => failures.record(chunk.len(), &error),
            }
        }
        failures.log();
        let orders: Vec<(u64, &str)> = published
            .iter()
            .map(|e| (e.item_id, e.order_id.as_str()))
            .collect();
        self.store
            .outbox
            .back_off(
                &orders,
                now,
                self.republish_after_ms,
                self.republish_after_ms * MAX_BACKOFF_FACTOR,
            )
            .await?;
        self.republished.inc_by(published.len() as u64);
        Ok(published.len())
    }
}

/// Publishes a chunk of due entries as one message; the chunk and the outcome.
async fn publish_chunk<'a>(
    publisher: &Publisher,
    chunk: &'a [(OutboxEntry, StockEvent)],
) -> (&'a [(OutboxEntry, StockEvent)], Result<(), PublishError>) {
    let events: Vec<StockEvent> = chunk.iter().map(|(_, event)| event.clone()).collect();
    (chunk, publish(publisher, &events).await)
}
