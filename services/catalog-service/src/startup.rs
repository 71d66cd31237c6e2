//! Builds the catalog-service from its settings (tests start it on port 0) and warms
//! Redis from MySQL before serving.

use crate::catalog::Catalog;
use crate::configuration::{CatalogOwn, Settings};
use crate::routes;
use actix_web::web;
use common::redis::{Keyspace, RedisClient};
use db::DbPool;
use inventory::{DistributedLock, Inventory};
use std::time::Duration;
use web_layer::bootstrap::Infrastructure;
use web_layer::service::{Service, Serving};

/// catalog-service: its HTTP server is all that runs (the warm-up retries in the
/// background when it must).
pub struct Application;

pub fn catalog(settings: &Settings, db: DbPool, redis: RedisClient) -> Catalog {
    Catalog {
        db,
        store: Inventory::new(
            redis.clone(),
            Keyspace::new(settings.redis.key_prefix.clone()),
        ),
        lock: DistributedLock::new(redis, settings.lock.clone()),
    }
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

impl Service for Application {
    type Own = CatalogOwn;
    type Running = Serving;

    async fn start(settings: Settings, mut infra: Infrastructure) -> anyhow::Result<Serving> {
        let catalog = catalog(&settings, infra.db.clone(), infra.redis.clone());
        if catalog.warm_up().await.is_err() {
            tokio::spawn(warm_up(catalog.clone()));
        }
        let authenticator = infra.authenticator(&settings.jwt)?;
        let catalog = web::Data::new(catalog);
        Ok(infra.serve(&settings.app, Some(authenticator), move |cfg| {
            cfg.app_data(catalog.clone());
            routes::configure(cfg);
        })?)
    }
}
