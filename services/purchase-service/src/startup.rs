//! Builds the purchase-service from its settings (tests start it on port 0): the
//! configured strategy, the publisher, the outbox relay and the HTTP server; and stops
//! it gracefully: no new purchases, in-flight ones answered, the publish queue drained
//! and confirmed, the relay stopped, all within `SHUTDOWN_TIMEOUT_SECS` of the signal.

use crate::configuration::{Settings, Strategy};
use crate::publishing::{PublishQueue, PublishSettings};
use crate::purchases::Purchases;
use crate::relay::Relay;
use crate::routes;
use actix_web::dev::{Server, ServerHandle};
use actix_web::web;
use common::shutdown::ShutdownSwitch;
use events::{Publisher, Topology};
use inventory::{DistributedLock, ItemStore};
use prometheus_client::metrics::family::Family;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use web_layer::bootstrap::Infrastructure;

pub struct Application {
    port: u16,
    server: Server,
    /// Tells the publishing task to drain and the relay to stop.
    shutdown: ShutdownSwitch,
    background: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
    pub purchases: Purchases,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mut infrastructure = Infrastructure::connect(&settings).await?;
        let store = ItemStore::new(infrastructure.redis.clone(), infrastructure.keys.clone());
        if settings.purchase.strategy == Strategy::Lua
            && let Err(error) = store.preload_purchase_script().await
        {
            tracing::warn!(%error, "could not preload the purchase script; it loads on first use");
        }
        let publisher = Arc::new(Publisher::new(
            settings.rabbitmq.url(),
            Topology::new(&settings.rabbitmq.prefix),
            Duration::from_millis(settings.rabbitmq.publish_timeout_ms),
        ));
        let outcomes = Family::default();
        infrastructure.metrics.registry_mut().register(
            "purchase_outcomes",
            "Purchase attempts by strategy and outcome",
            outcomes.clone(),
        );
        let shutdown = ShutdownSwitch::new();
        let (publishing, publishing_task) = PublishQueue::start(
            publisher.clone(),
            store.clone(),
            PublishSettings {
                capacity: settings.purchase.publish_queue_capacity,
                max_in_flight: settings.purchase.max_publishes_in_flight,
                republish_after_ms: settings.purchase.republish_after_ms,
            },
            shutdown.subscribe(),
        );
        let purchases = Purchases {
            strategy: settings.purchase.strategy,
            store: store.clone(),
            lock: DistributedLock::new(infrastructure.redis.clone(), settings.lock.clone()),
            after_watch: None,
            db: infrastructure.db.clone(),
            publishing,
            settings: settings.purchase.clone(),
            outcomes,
        };
        let relay = Relay {
            store,
            publisher: publisher.clone(),
            interval: Duration::from_millis(settings.purchase.relay_interval_ms),
            relay_after_ms: settings.purchase.relay_after_ms,
            republish_after_ms: settings.purchase.republish_after_ms,
            max_in_flight: settings.purchase.max_publishes_in_flight,
        };
        let relay_task = tokio::spawn(relay.run(shutdown.subscribe()));

        let authenticator = infrastructure.authenticator(&settings.jwt)?;
        infrastructure.readiness = infrastructure.readiness.with_check("rabbitmq", move || {
            let publisher = publisher.clone();
            async move {
                if publisher.is_connected().await {
                    Ok(())
                } else {
                    Err("not connected (purchases still succeed; the outbox holds them)".into())
                }
            }
        });

        let shared = web::Data::new(purchases.clone());
        let (port, server) =
            infrastructure.serve(&settings.app, Some(authenticator), move |cfg| {
                cfg.app_data(shared.clone());
                routes::configure(cfg);
            })?;
        tracing::info!(strategy = ?settings.purchase.strategy, "purchase strategy");
        Ok(Application {
            port,
            server,
            shutdown,
            background: vec![publishing_task, relay_task],
            shutdown_timeout: Duration::from_secs(settings.app.shutdown_timeout_secs),
            purchases,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server as SIGTERM does (for tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or [`Self::handle`]'s stop); the server stops taking
    /// requests and answers those in flight, then the publish queue drains and the relay
    /// stops. Whatever is not confirmed by the deadline stays in the outbox for the relay
    /// of the next start.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let signalled = tokio::spawn(async {
            web_layer::http::shutdown_signal().await;
            Instant::now()
        });
        let served = self.server.await;
        let since = if signalled.is_finished() {
            signalled.await.unwrap_or_else(|_| Instant::now())
        } else {
            signalled.abort();
            Instant::now()
        };
        self.shutdown.trigger();
        let remaining = self.shutdown_timeout.saturating_sub(since.elapsed());
        let drained = tokio::time::timeout(remaining, async {
            for task in self.background {
                let _ = task.await;
            }
        })
        .await;
        match drained {
            Ok(()) => tracing::info!("publish queue drained; stopped"),
            Err(_) => tracing::warn!(
                "shutdown timeout reached before every publish was confirmed; the relay republishes the rest after restart"
            ),
        }
        served
    }
}
