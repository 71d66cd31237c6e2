//! stock-writer's own metrics: events by fate, batch sizes, the lag from purchase to
//! MySQL commit, and how many orders wait in the outboxes or are parked (read from Redis
//! every few seconds).

use common::shutdown::Shutdown;
use inventory::ItemStore;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// How often the outbox and parked gauges are read from Redis.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct WriterMetrics {
    pub applied: Counter,
    pub duplicates: Counter,
    pub dead_lettered: Counter,
    pub parked: Counter,
    pub batch_size: Histogram,
    pub lag_seconds: Histogram,
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
        metrics
    }
}

/// Orders waiting in the outboxes, and parked ones, across every known item.
#[derive(Clone, Default)]
pub struct OutboxGauges {
    pub pending: Gauge,
    pub parked: Gauge,
}

impl OutboxGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = OutboxGauges::default();
        registry.register(
            "outbox_pending_orders",
            "Orders taken in Redis and not yet persisted in MySQL",
            gauges.pending.clone(),
        );
        registry.register(
            "outbox_parked_orders",
            "Orders stock-writer refused for good, waiting for `stock-writer dlq replay`",
            gauges.parked.clone(),
        );
        gauges
    }

    /// Reads both figures from Redis once.
    pub async fn refresh(&self, store: &ItemStore) -> Result<(), inventory::Error> {
        let items = store.known_item_ids().await?;
        let pending: u64 = store.outbox_counts(&items).await?.iter().sum();
        let parked: u64 = store.parked_counts(&items).await?.iter().sum();
        self.pending.set(pending as i64);
        self.parked.set(parked as i64);
        Ok(())
    }

    /// Refreshes the gauges every few seconds until shutdown.
    pub async fn run(self, store: ItemStore, mut shutdown: Shutdown) {
        loop {
            if let Err(error) = self.refresh(&store).await {
                tracing::debug!(%error, "could not read the outbox gauges");
            }
            if !shutdown.sleep(GAUGE_INTERVAL).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_metrics_keep_their_names() {
        let mut registry = Registry::default();
        let metrics = WriterMetrics::register(&mut registry);
        metrics.applied.inc();
        OutboxGauges::register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "writer_events_applied_total 1",
            "writer_events_duplicate_total",
            "writer_events_dead_lettered_total",
            "writer_orders_parked_total",
            "writer_batch_size_count",
            "writer_lag_seconds_count",
            "outbox_pending_orders",
            "outbox_parked_orders",
            "# HELP writer_events_applied Events applied to MySQL.",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
