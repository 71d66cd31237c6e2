//! stock-writer's own metrics: events by fate, batch sizes, and the lag from purchase
//! to MySQL commit.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct WriterMetrics {
    pub applied: Counter,
    pub duplicates: Counter,
    pub dead_lettered: Counter,
    pub batch_size: Histogram,
    pub lag_seconds: Histogram,
}

impl WriterMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = WriterMetrics {
            applied: Counter::default(),
            duplicates: Counter::default(),
            dead_lettered: Counter::default(),
            batch_size: Histogram::new([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]),
            lag_seconds: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        };
        registry.register(
            "writer_events_applied",
            "Events applied to MySQL",
            metrics.applied.clone(),
        );
        registry.register(
            "writer_events_duplicate",
            "Redelivered events acknowledged without effect",
            metrics.duplicates.clone(),
        );
        registry.register(
            "writer_events_dead_lettered",
            "Events sent to the dead-letter queue",
            metrics.dead_lettered.clone(),
        );
        registry.register(
            "writer_batch_size",
            "Events per MySQL transaction",
            metrics.batch_size.clone(),
        );
        registry.register(
            "writer_lag_seconds",
            "From purchase to MySQL commit",
            metrics.lag_seconds.clone(),
        );
        metrics
    }
}
