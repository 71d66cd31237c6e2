//! Exchange `stock` (direct) → quorum queue `stock_updates`, the dead-letter quorum
//! queue `stock_updates.dlq` and the quorum queue `payments.refund_required`, all durable
//! and declared idempotently by producer and consumer alike. A name prefix lets several
//! deployments or tests share a broker.
//!
//! A quorum queue exists as soon as it is declared, but its Raft member starts a moment
//! later (longer on a fresh broker): a `basic.get` or `basic.consume` in between fails
//! with `INTERNAL_ERROR ... noproc`, which closes the connection. [`on_running_queues`]
//! is how a queue is first used after declaring it: it tries again on a fresh connection
//! for a bounded while.

use crate::PublishError;
use crate::publisher::connect;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ExchangeKind};
use std::time::{Duration, Instant};

/// How long a queue just declared may take to start before its use counts as failed.
pub const QUEUE_START_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether the broker refused an operation because a queue's process is not running
/// (yet): a quorum queue just declared whose Raft member has not started.
pub fn queue_not_running(error: &lapin::Error) -> bool {
    let error = error.to_string();
    error.contains("noproc") || error.contains("not_started")
}

/// Connects (each attempt bounded by `connect_timeout`) and runs `first_use` (declare
/// the topology, then consume or get from a queue) on the new channel; while it fails
/// because a queue is not running yet, waits a moment and does it all again on a fresh
/// connection, for up to [`QUEUE_START_TIMEOUT`]. Returns the connection and channel
/// with what `first_use` returned.
pub async fn on_running_queues<T, F, Fut>(
    url: &str,
    connect_timeout: Duration,
    mut first_use: F,
) -> Result<(Connection, Channel, T), PublishError>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = lapin::Result<T>>,
{
    let deadline = Instant::now() + QUEUE_START_TIMEOUT;
    let mut pause = Duration::from_millis(50);
    loop {
        let (connection, channel) = connect(url, connect_timeout).await?;
        match first_use(channel.clone()).await {
            Ok(value) => return Ok((connection, channel, value)),
            Err(error) => {
                let _ = connection.close(200, "retrying".into()).await;
                if !queue_not_running(&error) || Instant::now() + pause > deadline {
                    return Err(PublishError::Unavailable(error.to_string()));
                }
                tracing::info!(%error, "a queue is not running yet; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    pub dead_letter_queue: String,
    /// `payment.refund_required` announcements: payments that arrived for a reservation
    /// that had ended, for the payment system to give the money back.
    pub refund_queue: String,
}

impl Topology {
    pub fn new(prefix: &str) -> Self {
        Topology {
            exchange: format!("{prefix}stock"),
            queue: format!("{prefix}stock_updates"),
            dead_letter_queue: format!("{prefix}stock_updates.dlq"),
            refund_queue: format!("{prefix}payments.refund_required"),
        }
    }

    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        for queue in [&self.queue, &self.dead_letter_queue, &self.refund_queue] {
            let mut arguments = FieldTable::default();
            arguments.insert(
                ShortString::from("x-queue-type"),
                AMQPValue::LongString("quorum".into()),
            );
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    arguments,
                )
                .await?;
            // The routing key is the queue's own name.
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange.as_str().into(),
                    queue.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}
