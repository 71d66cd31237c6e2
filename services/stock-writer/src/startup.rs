//! Builds stock-writer from its settings: the consumer, and a small HTTP server for
//! `/healthz`, `/readyz` and `/metrics` (tests start both on port 0).

use crate::configuration::{Settings, WriterOwn};
use crate::consumer::{Consumer, Retrying};
use crate::metrics::{SaleGauges, WriterMetrics};
use crate::rebuild::RedisRebuild;
use crate::sync::StockSync;
use common::redis::Keyspace;
use common::shutdown::ShutdownSwitch;
use events::{Publisher, Topology};
use inventory::{DistributedLock, Inventory};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use web_layer::bootstrap::Infrastructure;
use web_layer::service::{Running, Service, Serving};

/// stock-writer, as `main` and the tests build it.
pub struct Application;

/// stock-writer started: the consumer and the HTTP server of its operational endpoints.
pub struct StockWriter {
    http: Serving,
    consumer: JoinHandle<()>,
    shutdown: ShutdownSwitch,
}

pub fn store(settings: &Settings) -> anyhow::Result<Inventory> {
    Ok(Inventory::new(
        common::redis::client(&settings.redis)?,
        Keyspace::new(settings.redis.key_prefix.clone()),
    ))
}

/// What `sync-stock` needs: one MySQL connection, the store, and the item locks.
pub fn stock_sync(settings: &Settings) -> anyhow::Result<StockSync> {
    let store = store(settings)?;
    Ok(StockSync {
        db: db::pool(&settings.database.url(), 1)?,
        lock: DistributedLock::new(store.redis().clone(), settings.lock.clone()),
        store,
    })
}

/// What `rebuild-redis` needs: `sync-stock`'s, and the broker to see the queue drained.
pub fn redis_rebuild(settings: &Settings, drain_timeout: Duration) -> anyhow::Result<RedisRebuild> {
    let StockSync { db, store, lock } = stock_sync(settings)?;
    Ok(RedisRebuild {
        db,
        store,
        lock,
        rabbitmq_url: settings.rabbitmq.url(),
        queue: Topology::new(&settings.rabbitmq.prefix).queue,
        drain_timeout,
    })
}

impl Service for Application {
    type Own = WriterOwn;
    type Running = StockWriter;

    async fn start(settings: Settings, mut infra: Infrastructure) -> anyhow::Result<StockWriter> {
        let db = infra.db.clone();
        let store = Inventory::new(infra.redis.clone(), infra.keys.clone());
        let topology = Topology::new(&settings.rabbitmq.prefix);
        let writer_metrics = WriterMetrics::register(infra.metrics.registry_mut());
        let gauges = SaleGauges::register(infra.metrics.registry_mut());
        let connected = Arc::new(AtomicBool::new(false));
        let retrying = Arc::new(Retrying::default());
        let consumer = Consumer {
            url: settings.rabbitmq.url(),
            topology: topology.clone(),
            prefetch: settings.writer.prefetch,
            batch_max: settings.writer.batch_max,
            db: db.clone(),
            store: store.clone(),
            dead_letters: Publisher::new(
                settings.rabbitmq.url(),
                topology,
                Duration::from_millis(settings.rabbitmq.publish_timeout_ms),
            ),
            metrics: writer_metrics,
            connected: connected.clone(),
            retrying: retrying.clone(),
        };
        let shutdown = ShutdownSwitch::new();
        // The gauges' own channel: a passive declare that fails closes its channel, and
        // must not take the dead-letter publisher's with it.
        let broker = Publisher::new(
            settings.rabbitmq.url(),
            Topology::new(&settings.rabbitmq.prefix),
            Duration::from_millis(settings.rabbitmq.publish_timeout_ms),
        );
        tokio::spawn(gauges.run(
            store.clone(),
            infra.db.clone(),
            broker,
            settings.rabbitmq.prefix.clone(),
            shutdown.subscribe(),
        ));
        let consumer = tokio::spawn(consumer.run(shutdown.subscribe()));

        infra.readiness = infra.readiness.with_check("rabbitmq", move || {
            let connected = connected.load(Ordering::Relaxed);
            async move {
                if connected {
                    Ok(())
                } else {
                    Err("not consuming".into())
                }
            }
        });
        // A batch retried without end holds back everything after it.
        infra.readiness = infra.readiness.with_check("consumer", move || {
            let outcome = retrying.check();
            async move { outcome }
        });
        // No traffic comes through the gateway to drain: at SIGTERM the consumer stops at once.
        let app = common::config::AppSettings {
            shutdown_drain_secs: 0,
            ..settings.app.clone()
        };
        let http = infra.serve(&app, None, |_| {})?;
        Ok(StockWriter {
            http,
            consumer,
            shutdown,
        })
    }
}

impl Running for StockWriter {
    fn port(&self) -> u16 {
        self.http.port()
    }

    /// Runs until SIGINT/SIGTERM; then the consumer finishes its batch, acks what was
    /// committed, and closes.
    async fn run_until_stopped(self) -> anyhow::Result<()> {
        let server = self.http.handle();
        let mut stopped = self.shutdown.subscribe();
        tokio::select! {
            served = self.http.into_server() => served?,
            () = stopped.requested() => server.stop(true).await,
        }
        self.shutdown.trigger();
        self.consumer.await?;
        Ok(())
    }
}

impl StockWriter {
    /// A handle that stops the writer (what SIGTERM does), for tests.
    pub fn stopper(&self) -> ShutdownSwitch {
        self.shutdown.clone()
    }
}
