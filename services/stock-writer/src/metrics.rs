//! stock-writer's own metrics: events by fate, batch sizes, the lag from purchase to
//! MySQL commit, and gauges of the sale's state read every few seconds: how many orders
//! wait in the outboxes (and for how long) or are parked, the stock left per item, and
//! the depth of the stock and dead-letter queues.

use common::shutdown::Shutdown;
use db::DbPool;
use db::schema::items;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Unsigned};
use diesel_async::RunQueryDsl;
use events::{PublishError, Publisher, Topology};
use inventory::Inventory;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// How often the sale's gauges are read.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct WriterMetrics {
    pub applied: Counter,
    pub duplicates: Counter,
    pub dead_lettered: Counter,
    pub parked: Counter,
    pub batch_size: Histogram,
    pub lag_seconds: Histogram,
    /// Failed attempts at a batch (each is retried).
    pub batch_retries: Counter,
    /// How long the batch being retried has been failing; 0 when none is.
    pub batch_retry_seconds: Gauge<f64, AtomicU64>,
}

impl WriterMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = WriterMetrics {
            applied: Counter::default(),
            duplicates: Counter::default(),
            dead_lettered: Counter::default(),
            parked: Counter::default(),
            batch_size: Histogram::new([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]),
            lag_seconds: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            batch_retries: Counter::default(),
            batch_retry_seconds: Gauge::default(),
        };
        let registry = registry.sub_registry_with_prefix("writer");
        for (name, help, counter) in [
            (
                "events_applied",
                "Events applied to MySQL",
                &metrics.applied,
            ),
            (
                "events_duplicate",
                "Redelivered events acknowledged without effect",
                &metrics.duplicates,
            ),
            (
                "events_dead_lettered",
                "Events sent to the dead-letter queue",
                &metrics.dead_lettered,
            ),
            (
                "orders_parked",
                "Refused orders moved out of the outbox into a parked set",
                &metrics.parked,
            ),
            (
                "batch_retries",
                "Failed attempts to apply a batch (it is kept and retried)",
                &metrics.batch_retries,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        for (name, help, histogram) in [
            (
                "batch_size",
                "Events per MySQL transaction",
                &metrics.batch_size,
            ),
            (
                "lag_seconds",
                "From purchase to MySQL commit",
                &metrics.lag_seconds,
            ),
        ] {
            registry.register(name, help, histogram.clone());
        }
        registry.register(
            "batch_retry_seconds",
            "How long the batch being retried has been failing (0 when none is): nothing after it applies",
            metrics.batch_retry_seconds.clone(),
        );
        metrics
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    item_id: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// The state of the sale, read every few seconds: orders waiting in the outboxes (how
/// many, and how long the oldest has waited), parked ones, the stock left per item (from
/// Redis), the units MySQL owes (see `db::stock`), and the messages waiting in the stock
/// queue and the dead-letter queue (from the broker).
#[derive(Clone, Default)]
pub struct SaleGauges {
    pub pending: Gauge,
    pub parked: Gauge,
    pub owed: Gauge,
    pub oldest_pending_age: Gauge<f64, AtomicU64>,
    stock: Family<ItemLabels, Gauge>,
    queue_messages: Family<QueueLabels, Gauge>,
}

impl SaleGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = SaleGauges::default();
        for (name, help, gauge) in [
            (
                "outbox_pending_orders",
                "Orders taken in Redis and not yet persisted in MySQL",
                &gauges.pending,
            ),
            (
                "outbox_parked_orders",
                "Orders stock-writer refused for good, waiting for `stock-writer dlq replay`",
                &gauges.parked,
            ),
            (
                "stock_owed_units",
                "Units persisted sales took beyond MySQL's stock, until the releases that freed them arrive",
                &gauges.owed,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "outbox_oldest_age_seconds",
            "How long the oldest order waiting in an outbox has waited (0 when none waits)",
            gauges.oldest_pending_age.clone(),
        );
        registry.register(
            "item_stock",
            "Units left to sell, per item, as Redis holds them",
            gauges.stock.clone(),
        );
        registry.register(
            "queue_messages",
            "Messages ready in the broker's stock_updates and stock_updates.dlq queues",
            gauges.queue_messages.clone(),
        );
        gauges
    }

    /// Reads the Redis figures once.
    pub async fn refresh(&self, store: &Inventory, now_ms: i64) -> Result<(), inventory::Error> {
        let items = store.stock.known_item_ids().await?;
        let pending = store.outbox.counts(&items).await?;
        let with_pending: Vec<u64> = items
            .iter()
            .zip(&pending)
            .filter(|(_, count)| **count > 0)
            .map(|(id, _)| *id)
            .collect();
        let oldest = store.outbox.oldest_entries(&with_pending).await?;
        let parked: u64 = store.outbox.parked_counts(&items).await?.iter().sum();
        let stocks = store.stock.stocks(&items).await?;
        self.pending.set(pending.iter().sum::<u64>() as i64);
        self.parked.set(parked as i64);
        self.oldest_pending_age
            .set(age_seconds(oldest.into_iter().flatten().min(), now_ms));
        for (item_id, stock) in items.into_iter().zip(stocks) {
            let labels = ItemLabels { item_id };
            match stock {
                Some(stock) => {
                    self.stock.get_or_create(&labels).set(stock as i64);
                }
                None => {
                    self.stock.remove(&labels);
                }
            }
        }
        Ok(())
    }

    /// Reads MySQL's owed units once.
    pub async fn refresh_owed(&self, db: &DbPool) -> Result<(), db::Error> {
        let mut conn = db::connection(db).await?;
        let owed: u64 = items::table
            .select(sql::<Unsigned<BigInt>>(
                "CAST(COALESCE(SUM(stock_owed), 0) AS UNSIGNED)",
            ))
            .first(&mut conn)
            .await?;
        self.owed.set(i64::try_from(owed).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Reads the queues' depths once, labelled with their names without the deployment's
    /// prefix.
    pub async fn refresh_queues(
        &self,
        broker: &Publisher,
        prefix: &str,
    ) -> Result<(), PublishError> {
        let (named, labelled) = (Topology::new(prefix), Topology::new(""));
        for (queue, label) in [
            (named.queue, labelled.queue),
            (named.dead_letter_queue, labelled.dead_letter_queue),
        ] {
            let count = broker.message_count(&queue).await?;
            self.queue_messages
                .get_or_create(&QueueLabels { queue: label })
                .set(i64::from(count));
        }
        Ok(())
    }

    /// Refreshes the gauges every few seconds until shutdown.
    pub async fn run(
        self,
        store: Inventory,
        db: DbPool,
        broker: Publisher,
        prefix: String,
        mut shutdown: Shutdown,
    ) {
        loop {
            let now_ms = chrono::Utc::now().timestamp_millis();
            if let Err(error) = self.refresh(&store, now_ms).await {
                tracing::debug!(%error, "could not read the outbox gauges");
            }
            if let Err(error) = self.refresh_owed(&db).await {
                tracing::debug!(%error, "could not read the owed units");
            }
            if let Err(error) = self.refresh_queues(&broker, &prefix).await {
                tracing::debug!(%error, "could not read the queue gauges");
            }
            if !shutdown.sleep(GAUGE_INTERVAL).await {
                return;
            }
        }
    }
}

/// Seconds from `oldest_ms` to `now_ms`; 0 when nothing waits (or clocks disagree).
fn age_seconds(oldest_ms: Option<i64>, now_ms: i64) -> f64 {
    oldest_ms.map_or(0.0, |oldest| (now_ms - oldest).max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_metrics_keep_their_names() {
        let mut registry = Registry::default();
        let metrics = WriterMetrics::register(&mut registry);
        metrics.applied.inc();
        SaleGauges::register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "writer_events_applied_total 1",
            "writer_events_duplicate_total",
            "writer_events_dead_lettered_total",
            "writer_orders_parked_total",
            "writer_batch_size_count",
            "writer_lag_seconds_count",
            "writer_batch_retries_total",
            "writer_batch_retry_seconds",
            "outbox_pending_orders",
            "outbox_parked_orders",
            "outbox_oldest_age_seconds",
            "stock_owed_units",
            "# HELP writer_events_applied Events applied to MySQL.",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn the_oldest_order_s_age_is_counted_from_its_own_time() {
        assert_eq!(age_seconds(None, 10_000), 0.0);
        assert_eq!(age_seconds(Some(7_500), 10_000), 2.5);
        assert_eq!(
            age_seconds(Some(12_000), 10_000),
            0.0,
            "a clock ahead of ours"
        );
    }

    #[tokio::test]
    async fn the_sale_gauges_read_the_outboxes_and_the_stock_from_redis() {
        use redis::AsyncCommands;
        let redis = testkit::TestRedis::new();
        let store = Inventory::new(
            common::redis::client(&redis.settings()).unwrap(),
            common::redis::Keyspace::new(redis.prefix.clone()),
        );
        store
            .stock
            .put(&inventory::stock::ItemState::on_sale(1, 7))
            .await
            .unwrap();
        store
            .stock
            .put(&inventory::stock::ItemState::on_sale(2, 3))
            .await
            .unwrap();
        let mut conn = redis.connection().await;
        conn.hset::<_, _, _, ()>(
            store.keys(2).outbox(),
            "o-1",
            r#"{"order_id":"o-1","purchased_at_ms":4000}"#,
        )
        .await
        .unwrap();
        let mut registry = Registry::default();
        let gauges = SaleGauges::register(&mut registry);
        gauges.refresh(&store, 10_000).await.unwrap();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "outbox_pending_orders 1",
            "outbox_parked_orders 0",
            "outbox_oldest_age_seconds 6.0",
            "item_stock{item_id=\"1\"} 7",
            "item_stock{item_id=\"2\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
