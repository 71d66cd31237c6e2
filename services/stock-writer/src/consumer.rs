//! The consumer: takes messages from `stock_updates` with a prefetch window and manual
//! acks, splits each into its events (a message may carry a batch of them), applies
//! whatever has arrived as one MySQL transaction, dead-letters what can
//! never apply (parking its order, so the relay stops republishing it), removes
//! persisted orders from the Redis outbox, and acks only after the commit. A lost
//! broker or database is waited out and reconnected; unacked deliveries go back to the
//! queue, and redelivery is harmless because persistence is idempotent. While a batch
//! is being retried the consumer says so ([`Retrying`]): `/readyz` fails with the
//! reason and `writer_batch_retry_seconds` grows, so a stuck writer is seen.

use crate::apply::{Applied, apply_batch};
use crate::metrics::WriterMetrics;
use anyhow::anyhow;
use common::shutdown::Shutdown;
use db::DbPool;
use events::{Publisher, Received, StockEvent, Topology};
use futures_util::{FutureExt, StreamExt};
use inventory::Inventory;
use inventory::outbox::OrderRef;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Consumer {
    pub url: String,
    pub topology: Topology,
    pub prefetch: u16,
    pub batch_max: usize,
    pub db: DbPool,
    pub store: Inventory,
    pub dead_letters: Publisher,
    pub metrics: WriterMetrics,
    pub connected: Arc<AtomicBool>,
    pub retrying: Arc<Retrying>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The batch the consumer is retrying, if any: nothing after it applies until it does.
#[derive(Debug, Default)]
pub struct Retrying {
    state: Mutex<Option<RetryState>>,
}

#[derive(Debug)]
struct RetryState {
    since: Instant,
    events: usize,
    attempts: u32,
    error: String,
}

impl Retrying {
    fn state(&self) -> std::sync::MutexGuard<'_, Option<RetryState>> {
        // The state is plain data: a panic elsewhere leaves it readable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a failed attempt at a batch of `events`; returns for how long the batch
    /// has been failing.
    fn failed(&self, events: usize, error: &anyhow::Error) -> Duration {
        let mut state = self.state();
        let state = state.get_or_insert_with(|| RetryState {
            since: Instant::now(),
            events,
            attempts: 0,
            error: String::new(),
        });
        state.attempts += 1;
        state.error = error.to_string();
        state.since.elapsed()
    }

    fn cleared(&self) {
        *self.state() = None;
    }

    /// `/readyz`'s check: failing, with the reason, while a batch is being retried.
    pub fn check(&self) -> Result<(), String> {
        match &*self.state() {
            None => Ok(()),
            Some(state) => Err(format!(
                "stuck: a batch of {} events has failed {} times over {:.1} s and is being retried; last error: {}",
                state.events,
                state.attempts,
                state.since.elapsed().as_secs_f64(),
                state.error
            )),
        }
    }
}

impl Consumer {
    /// Consumes until shutdown, reconnecting after any failure.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_requested() {
            match self.session(&mut shutdown).await {
                Ok(()) => break,
                Err(error) => {
                    self.connected.store(false, Ordering::Relaxed);
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "consumer session ended; reconnecting");
                    if !shutdown.sleep(backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.connected.store(false, Ordering::Relaxed);
        tracing::info!("consumer stopped");
    }

    async fn session(&self, shutdown: &mut Shutdown) -> anyhow::Result<()> {
        // The queue may have just been declared: consuming waits until it runs.
        let (connection, _channel, mut deliveries) = events::topology::on_running_queues(
            &self.url,
            Duration::from_secs(5),
            |channel| async move {
                self.topology.declare(&channel).await?;
                channel
                    .basic_qos(self.prefetch, BasicQosOptions::default())
                    .await?;
                channel
                    .basic_consume(
                        self.topology.queue.as_str().into(),
                        "stock-writer".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
            },
        )
        .await
        .map_err(|e| anyhow!(e))?;
        self.connected.store(true, Ordering::Relaxed);
        tracing::info!(queue = %self.topology.queue, prefetch = self.prefetch, "consuming");
        loop {
            let first = tokio::select! {
                // Shutdown first: with deliveries always ready (the prefetch window), an
                // unbiased choice would go on starting batches after it was asked.
                biased;
                () = shutdown.requested() => {
                    // Everything handled so far is acked; closing requeues nothing else.
                    let _ = connection.close(200, "shutting down".into()).await;
                    return Ok(());
                }
                next = deliveries.next() => match next {
                    Some(delivery) => delivery?,
                    None => return Err(anyhow!("the broker closed the consumer")),
                },
            };
            let mut batch = vec![first];
            let mut received = events::parse_message(&batch[0].data)
                .into_iter()
                .map(|r| (0, r))
                .collect::<Vec<_>>();
            while received.len() < self.batch_max {
                match deliveries.next().now_or_never() {
                    Some(Some(delivery)) => {
                        let delivery = delivery?;
                        let at = batch.len();
                        received.extend(
                            events::parse_message(&delivery.data)
                                .into_iter()
                                .map(|r| (at, r)),
                        );
                        batch.push(delivery);
                    }
                    Some(None) | None => break,
                }
            }
            self.handle(&batch, &received, shutdown).await?;
        }
    }

    /// Applies, dead-letters, cleans up and acks one batch of deliveries holding the
    /// events `received` (each with the index of its delivery). An error leaves the
    /// batch unacked (it will be redelivered).
    async fn handle(
        &self,
        batch: &[Delivery],
        received: &[(usize, Received)],
        shutdown: &mut Shutdown,
    ) -> anyhow::Result<()> {
        let events: Vec<&StockEvent> = received
            .iter()
            .filter_map(|(_, r)| r.event.as_ref().ok())
            .collect();
        let mut outcomes = self.apply_with_retry(&events, shutdown).await?.into_iter();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut persisted = Vec::new();
        for (delivery, entry) in received {
            let (outcome, event) = match &entry.event {
                Ok(event) => {
                    let outcome = outcomes
                        .next()
                        .ok_or_else(|| anyhow!("an event has no outcome"))?;
                    (outcome, Some(event))
                }
                Err(reason) => (Applied::Poison(reason.clone()), None),
            };
            match (outcome, event) {
                (Applied::Poison(reason), event) => {
                    let message_id = match event {
                        Some(event) => event.message_id(),
                        None => batch[*delivery]
                            .properties
                            .message_id()
                            .as_ref()
                            .map(|id| id.to_string())
                            .unwrap_or_default(),
                    };
                    self.dead_letter(entry, &message_id, &reason).await?;
                    if let Some(event) = event {
                        self.park(event, entry, &reason, now_ms).await;
                    }
                }
                (Applied::Applied, Some(event)) => {
                    self.metrics.applied.inc();
                    let lag_ms = (now_ms - event.purchased_at_ms).max(0);
                    self.metrics.lag_seconds.observe(lag_ms as f64 / 1000.0);
                    persisted.push(event);
                }
                (_, Some(event)) => {
                    self.metrics.duplicates.inc();
                    persisted.push(event);
                }
                (_, None) => {}
            }
        }
        let message_ids: Vec<String> = persisted.iter().map(|e| e.message_id()).collect();
        let persisted: Vec<OrderRef> = persisted
            .iter()
            .zip(&message_ids)
            .map(|(event, id)| order_ref(event, id))
            .collect();
        if let Err(error) = self.store.outbox.remove(&persisted).await {
            // The relay will republish them; they are duplicates by then and get cleaned.
            tracing::warn!(%error, "could not clear persisted orders from the outbox");
        }
        self.metrics.batch_size.observe(received.len() as f64);
        if let Some(last) = batch.last() {
            last.ack(BasicAckOptions { multiple: true }).await?;
        }
        Ok(())
    }

    async fn apply_with_retry(
        &self,
        events: &[&StockEvent],
        shutdown: &mut Shutdown,
    ) -> anyhow::Result<Vec<Applied>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut backoff = Duration::from_millis(100);
        let outcome = loop {
            let attempt = async {
                let mut conn = self.db.get().await.map_err(|e| anyhow!(e))?;
                apply_batch(&mut conn, events).await.map_err(|e| anyhow!(e))
            };
            match attempt.await {
                Ok(outcomes) => break Ok(outcomes),
                Err(error) => {
                    let failing_for = self.retrying.failed(events.len(), &error);
                    self.metrics.batch_retries.inc();
                    self.metrics
                        .batch_retry_seconds
                        .set(failing_for.as_secs_f64());
                    tracing::warn!(%error, events = events.len(), failing_for_ms = failing_for.as_millis() as u64, "could not apply the batch; kept for retry");
                    if !shutdown.sleep(backoff).await {
                        break Err(anyhow!(
                            "stopping with an unapplied batch (it will be redelivered)"
                        ));
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        self.retrying.cleared();
        self.metrics.batch_retry_seconds.set(0.0);
        outcome
    }

    /// Moves a refused order out of the outbox; if Redis cannot be reached now, the
    /// relay republishes it later and it is refused, and parked, again.
    async fn park(&self, event: &StockEvent, entry: &Received, reason: &str, now_ms: i64) {
        let body = String::from_utf8_lossy(&entry.body);
        match self
            .store
            .outbox
            .park(order_ref(event, &event.message_id()), &body, reason, now_ms)
            .await
        {
            Ok(()) => {
                self.metrics.parked.inc();
            }
            Err(error) => {
                tracing::warn!(order_id = %event.order_id, %error, "could not park a refused order; it will be refused again");
            }
        }
    }

    /// Sends one refused event (or an unreadable message, whole) to the dead-letter
    /// queue.
    async fn dead_letter(
        &self,
        entry: &Received,
        message_id: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        tracing::error!(%message_id, %reason, "event can never be applied; sent to the dead-letter queue");
        self.dead_letters
            .publish(
                &self.topology.dead_letter_queue,
                message_id,
                &entry.body,
                &[("x-death-reason", reason)],
            )
            .await?;
        self.metrics.dead_lettered.inc();
        Ok(())
    }
}

/// The outbox entry of an event: its message id is the outbox field.
fn order_ref<'a>(event: &StockEvent, message_id: &'a str) -> OrderRef<'a> {
    OrderRef {
        item_id: event.item_id,
        user_id: event.user_id,
        order_id: message_id,
    }
}
