//! A private exchange and queue names per test on the machine's RabbitMQ, deleted when
//! the value is dropped.

use common::config::RabbitMqSettings;
use events::Topology;
use lapin::options::{BasicAckOptions, BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::AMQPValue;
use lapin::{Connection, ConnectionProperties};

pub fn rabbit_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub struct TestRabbit {
    pub prefix: String,
}

/// A message taken from a queue.
pub struct Message {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// The stock events `messages` carry (a message may hold a batch), unreadable ones left
/// out.
pub fn events_of(messages: &[Message]) -> Vec<events::StockEvent> {
    messages
        .iter()
        .flat_map(|m| events::parse_message(&m.body))
        .filter_map(|r| r.event.ok())
        .collect()
}

impl TestRabbit {
    pub fn new() -> Self {
        TestRabbit {
            prefix: format!("test.{}.", super::unique_suffix()),
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix)
    }

    pub fn apply(&self, settings: &mut RabbitMqSettings) {
        settings.prefix = self.prefix.clone();
        settings.publish_timeout_ms = 2000;
    }

    /// Takes every message waiting in the stock queue (published, not consumed).
    pub async fn drain_published(&self) -> Vec<Message> {
        self.drain(&self.topology().queue).await
    }

    /// Takes every message waiting in the dead-letter queue.
    pub async fn drain_dead_letters(&self) -> Vec<Message> {
        self.drain(&self.topology().dead_letter_queue).await
    }

    /// Deletes one of the topology's queues (as an operator's mistake would).
    pub async fn delete_queue(&self, queue: &str) {
        let connection = Connection::connect(&rabbit_url(), ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await
            .expect("queue.delete");
        let _ = connection.close(200, "done".into()).await;
    }

    /// Takes every message waiting in a queue.
    pub async fn drain(&self, queue: &str) -> Vec<Message> {
        // The queues may have just been declared: the first get waits until they run.
        let topology = self.topology();
        let (connection, channel, mut next) = events::topology::on_running_queues(
            &rabbit_url(),
            std::time::Duration::from_secs(5),
            |channel| {
                let topology = topology.clone();
                async move {
                    topology.declare(&channel).await?;
                    channel
                        .basic_get(queue.into(), BasicGetOptions::default())
                        .await
                }
            },
        )
        .await
        .expect("declare and read the queue (is RabbitMQ up? scripts/test starts it)");
        let mut messages = Vec::new();
        while let Some(message) = next {
            let headers = message
                .delivery
                .properties
                .headers()
                .as_ref()
                .map(|table| {
                    table
                        .inner()
                        .iter()
                        .map(|(k, v)| {
                            let value = match v {
                                AMQPValue::LongString(s) => s.to_string(),
                                other => format!("{other:?}"),
                            };
                            (k.to_string(), value)
                        })
                        .collect()
                })
                .unwrap_or_default();
            message
                .delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
            messages.push(Message {
                body: message.delivery.data.clone(),
                headers,
            });
            next = channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
                .expect("basic.get");
        }
        let _ = connection.close(200, "done".into()).await;
        messages
    }
}

impl Default for TestRabbit {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRabbit {
    fn drop(&mut self) {
        let topology = self.topology();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let connection =
                    Connection::connect(&rabbit_url(), ConnectionProperties::default())
                        .await
                        .ok()?;
                let channel = connection.create_channel().await.ok()?;
                for queue in [
                    &topology.queue,
                    &topology.dead_letter_queue,
                    &topology.refund_queue,
                ] {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                let _ = channel
                    .exchange_delete(
                        topology.exchange.as_str().into(),
                        ExchangeDeleteOptions::default(),
                    )
                    .await;
                let _ = connection.close(200, "done".into()).await;
                Some(())
            })
        })
        .join();
    }
}
