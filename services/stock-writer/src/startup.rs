//! Builds stock-writer from its settings: the consumer, and a small HTTP server for
//! `/healthz`, `/readyz` and `/metrics` (tests start both on port 0).

use crate::configuration::Settings;
use crate::consumer::Consumer;
use crate::metrics::{OutboxGauges, WriterMetrics};
use crate::rebuild::RedisRebuild;
use crate::sync::StockSync;
use actix_web::dev::Server;
use common::redis::Keyspace;
use common::shutdown::ShutdownSwitch;
use events::{Publisher, Topology};
use inventory::{DistributedLock, ItemStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use web_layer::bootstrap::Infrastructure;

pub struct Application {
    port: u16,
    server: Server,
    consumer: JoinHandle<()>,
    shutdown: ShutdownSwitch,
}

pub fn store(settings: &Settings) -> anyhow::Result<ItemStore> {
    Ok(ItemStore::new(
        common::redis::pool(&settings.redis)?,
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

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mut infrastructure = Infrastructure::connect(&settings).await?;
        let db = infrastructure.db.clone();
        let store = ItemStore::new(infrastructure.redis.clone(), infrastructure.keys.clone());
        let topology = Topology::new(&settings.rabbitmq.prefix);
        let writer_metrics = WriterMetrics::register(infrastructure.metrics.registry_mut());
        let gauges = OutboxGauges::register(infrastructure.metrics.registry_mut());
        let connected = Arc::new(AtomicBool::new(false));
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
        };
        let shutdown = ShutdownSwitch::new();
        tokio::spawn(gauges.run(store.clone(), shutdown.subscribe()));
        let consumer = tokio::spawn(consumer.run(shutdown.subscribe()));

        infrastructure.readiness = infrastructure.readiness.with_check("rabbitmq", move || {
            let connected = connected.load(Ordering::Relaxed);
            async move {
                if connected {
                    Ok(())
                } else {
                    Err("not consuming".into())
                }
            }
        });
        let (port, server) = infrastructure.serve(&settings.app, None, |_| {})?;
        Ok(Application {
            port,
            server,
            consumer,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the writer (what SIGTERM does), for tests.
    pub fn stopper(&self) -> ShutdownSwitch {
        self.shutdown.clone()
    }

    /// Runs until SIGINT/SIGTERM; then the consumer finishes its batch, acks what was
    /// committed, and closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let server = self.server.handle();
        let mut stopped = self.shutdown.subscribe();
        tokio::select! {
            served = self.server => served?,
            () = stopped.requested() => server.stop(true).await,
        }
        self.shutdown.trigger();
        self.consumer.await?;
        Ok(())
    }
}
