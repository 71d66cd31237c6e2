//! Builds the catalog-service from its settings (tests start it on port 0) and warms
//! Redis from MySQL before serving.

use crate::catalog::Catalog;
use crate::configuration::Settings;
use crate::routes;
use actix_web::dev::Server;
use actix_web::web;
use common::auth::Authenticator;
use common::http::Readiness;
use common::jwt::JwtVerifier;
use common::metrics::Metrics;
use common::redis::{Keyspace, RedisPool};
use inventory::{DistributedLock, ItemStore};
use std::time::Duration;

pub struct Application {
    port: u16,
    server: Server,
}

pub fn catalog(settings: &Settings, redis: RedisPool) -> anyhow::Result<Catalog> {
    Ok(Catalog {
        db: db::pool(&settings.database.url(), settings.database.pool_size)?,
        store: ItemStore::new(
            redis.clone(),
            Keyspace::new(settings.redis.key_prefix.clone()),
        ),
        lock: DistributedLock::new(redis, settings.lock.clone()),
    })
}

/// Warms Redis now, or keeps retrying in the background while a dependency is down.
async fn warm_up(catalog: Catalog) {
    let mut delay = Duration::from_millis(500);
    loop {
        match catalog.warm_up().await {
            Ok(loaded) => {
                tracing::info!(loaded, "Redis warmed from MySQL");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "warm-up failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.database.run_migrations {
            db::run_migrations(&settings.database.url()).await?;
        }
        let catalog = catalog(
            &settings,
            common::redis::connect(&settings.redis, settings.app.env).await?,
        )?;
        if catalog.warm_up().await.is_err() {
            tokio::spawn(warm_up(catalog.clone()));
        }
        let authenticator = Authenticator {
            verifier: JwtVerifier::from_settings(&settings.jwt)?,
            redis: catalog.store.redis().clone(),
            keys: Keyspace::new(settings.redis.key_prefix.clone()),
        };
        let readiness = Readiness::default()
            .with_redis(catalog.store.redis().clone())
            .with_check("mysql", db::readiness_check(catalog.db.clone()));

        let metrics = Metrics::new(&settings.app.name);
        let catalog = web::Data::new(catalog);
        let authenticator = web::Data::new(authenticator);
        let (port, server) = common::http::serve(&settings.app, metrics, readiness, move |cfg| {
            cfg.app_data(catalog.clone())
                .app_data(authenticator.clone());
            routes::configure(cfg);
        })?;
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
