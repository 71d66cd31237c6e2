//! Exchange `stock` (direct) → quorum queue `stock_updates`, the dead-letter quorum
//! queue `stock_updates.dlq` and the quorum queue `payments.refund_required`, all durable and declared idempotently by producer and
//! consumer alike. A name prefix lets several deployments or tests share a broker.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

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
