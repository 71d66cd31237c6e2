//! Publishing with publisher confirms over one lazily (re)connected channel: a publish
//! succeeds only once the broker has taken responsibility for the message. Every
//! message is `mandatory`: one no queue takes (its queue was deleted) comes back with
//! the confirm and the publish fails, rather than the broker confirming and dropping it.
//! After a failure the connection is rebuilt on the next publish, at most once a second,
//! declaring the topology again (which recreates a deleted queue), so a broker outage
//! costs callers a fast error rather than a hang.

use crate::Topology;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("RabbitMQ is unreachable: {0}")]
    Unavailable(String),
    #[error("the broker refused the message")]
    Nacked,
    #[error("no confirmation within {0:?}")]
    Timeout(Duration),
    /// No queue is bound to the routing key: the broker returned the message.
    #[error("the broker returned the message unrouted: {0}")]
    Returned(String),
}

struct Link {
    /// Kept so the connection lives as long as its channel.
    _connection: Connection,
    channel: Channel,
}

pub struct Publisher {
    url: String,
    topology: Topology,
    timeout: Duration,
    link: Mutex<Option<Link>>,
    last_attempt: Mutex<Option<Instant>>,
}

/// Connects and opens a channel, bounded by `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> Result<(Connection, Channel), PublishError> {
    let attempt = async {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        Ok::<_, lapin::Error>((connection, channel))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(link)) => Ok(link),
        Ok(Err(error)) => Err(PublishError::Unavailable(error.to_string())),
        Err(_) => Err(PublishError::Unavailable(format!(
            "no connection within {timeout:?}"
        ))),
    }
}

impl Publisher {
    pub fn new(url: String, topology: Topology, timeout: Duration) -> Self {
        Publisher {
            url,
            topology,
            timeout,
            link: Mutex::new(None),
            last_attempt: Mutex::new(None),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut link = self.link.lock().await;
        if let Some(current) = link.as_ref().filter(|l| l.channel.status().connected()) {
            return Ok(current.channel.clone());
        }
        {
            let mut last = self.last_attempt.lock().await;
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return Err(PublishError::Unavailable("reconnecting".into()));
            }
            *last = Some(Instant::now());
        }
        let (connection, channel) = connect(&self.url, self.timeout).await?;
        let setup = async {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            self.topology.declare(&channel).await
        };
        setup
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))?;
        tracing::info!("connected to RabbitMQ for publishing");
        *link = Some(Link {
            _connection: connection,
            channel: channel.clone(),
        });
        Ok(channel)
    }

    async fn forget_link(&self) {
        *self.link.lock().await = None;
    }

    /// Whether the publisher currently holds a live channel (for readiness).
    pub async fn is_connected(&self) -> bool {
        self.channel().await.is_ok()
    }

    /// How many messages are ready in one of the topology's queues, by a passive declare
    /// on this publisher's channel (for stock-writer's queue gauges).
    pub async fn message_count(&self, queue: &str) -> Result<u32, PublishError> {
        let channel = self.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declare = channel.queue_declare(queue.into(), passive, FieldTable::default());
        Ok(self.within_timeout(declare).await?.message_count())
    }

    /// Runs one exchange with the broker within the timeout; after an error or a
    /// timeout the link is rebuilt on the next use.
    async fn within_timeout<T>(
        &self,
        exchange: impl Future<Output = Result<T, lapin::Error>>,
    ) -> Result<T, PublishError> {
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.forget_link().await;
                Err(PublishError::Unavailable(error.to_string()))
            }
            Err(_) => {
                self.forget_link().await;
                Err(PublishError::Timeout(self.timeout))
            }
        }
    }

    /// Publishes a persistent JSON message to `routing_key` on the stock exchange and
    /// waits for the broker's confirm; a message no queue took is an error.
    pub async fn publish(
        &self,
        routing_key: &str,
        message_id: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let mut table = FieldTable::default();
        for (name, value) in headers {
            table.insert(
                ShortString::from(*name),
                AMQPValue::LongString((*value).into()),
            );
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message_id.into())
            .with_headers(table);
        let publish = async {
            channel
                .basic_publish(
                    self.topology.exchange.as_str().into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    body,
                    properties,
                )
                .await?
                .await
        };
        match self.within_timeout(publish).await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                // The next publish reconnects and declares the topology again.
                self.forget_link().await;
                Err(PublishError::Returned(format!(
                    "{:?} {} (routing key {routing_key})",
                    returned.reply_code, returned.reply_text
                )))
            }
            Confirmation::Nack(None) | Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }
}
