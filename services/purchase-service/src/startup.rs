//! Builds the purchase-service from its settings (tests start it on port 0): the
//! configured strategy, the publisher, the outbox relay and the HTTP server.

use crate::configuration::{Settings, Strategy};
use crate::publishing::{PublishQueue, PublishSettings};
use crate::purchase::lock::LockStrategy;
use crate::purchase::lua::LuaStrategy;
use crate::purchases::{Purchases, Taker};
use crate::relay::Relay;
use crate::routes;
use actix_web::dev::Server;
use actix_web::web;
use common::auth::Authenticator;
use common::http::Readiness;
use common::jwt::JwtVerifier;
use common::metrics::Metrics;
use common::redis::Keyspace;
use events::{Publisher, Topology};
use inventory::{DistributedLock, ItemStore};
use prometheus_client::metrics::family::Family;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub struct Application {
    port: u16,
    server: Server,
    stop_relay: watch::Sender<bool>,
    pub purchases: Purchases,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.database.run_migrations {
            db::run_migrations(&settings.database.url()).await?;
        }
        let redis = common::redis::pool(&settings.redis)?;
        let keys = Keyspace::new(settings.redis.key_prefix.clone());
        let db = db::pool(&settings.database.url(), settings.database.pool_size)?;
        let taker = match settings.purchase.strategy {
            Strategy::Lua => {
                let lua = LuaStrategy {
                    redis: redis.clone(),
                    keys: keys.clone(),
                };
                if let Err(error) = lua.preload().await {
                    tracing::warn!(%error, "could not preload the purchase script; it loads on first use");
                }
                Taker::Lua(lua)
            }
            Strategy::Lock => Taker::Lock(LockStrategy {
                redis: redis.clone(),
                keys: keys.clone(),
                lock: DistributedLock::new(redis.clone(), settings.lock.clone()),
                after_watch: None,
            }),
        };
        let publisher = Arc::new(Publisher::new(
            settings.rabbitmq.url(),
            Topology::new(&settings.rabbitmq.prefix),
            Duration::from_millis(settings.rabbitmq.publish_timeout_ms),
        ));
        let store = ItemStore::new(redis.clone(), keys.clone());
        let mut metrics = Metrics::new(&settings.app.name);
        let outcomes = Family::default();
        metrics.registry_mut().register(
            "purchase_outcomes",
            "Purchase attempts by strategy and outcome",
            outcomes.clone(),
        );
        let purchases = Purchases {
            taker,
            store: store.clone(),
            db: db.clone(),
            publishing: PublishQueue::start(
                publisher.clone(),
                store.clone(),
                PublishSettings {
                    capacity: settings.purchase.publish_queue_capacity,
                    max_in_flight: settings.purchase.max_publishes_in_flight,
                    republish_after_ms: settings.purchase.republish_after_ms,
                },
            ),
            settings: settings.purchase.clone(),
            outcomes,
        };
        let (stop_relay, stop) = watch::channel(false);
        let relay = Relay {
            store,
            publisher: publisher.clone(),
            interval: Duration::from_millis(settings.purchase.relay_interval_ms),
            relay_after_ms: settings.purchase.relay_after_ms,
            republish_after_ms: settings.purchase.republish_after_ms,
            max_in_flight: settings.purchase.max_publishes_in_flight,
        };
        tokio::spawn(relay.run(stop));

        let authenticator = Authenticator {
            verifier: JwtVerifier::from_settings(&settings.jwt)?,
            redis: redis.clone(),
            keys,
        };
        let readiness = Readiness::default()
            .with_redis(redis)
            .with_check("mysql", db::readiness_check(db.clone()))
            .with_check("rabbitmq", move || {
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
        let authenticator = web::Data::new(authenticator);
        let (port, server) = common::http::serve(&settings.app, metrics, readiness, move |cfg| {
            cfg.app_data(shared.clone()).app_data(authenticator.clone());
            routes::configure(cfg);
        })?;
        tracing::info!(strategy = ?settings.purchase.strategy, "purchase strategy");
        Ok(Application {
            port,
            server,
            stop_relay,
            purchases,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, finishing in-flight requests, then stops the relay.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let _ = self.stop_relay.send(true);
        served
    }
}
