//! Builds the catalog-service from its settings (tests start it on port 0) and warms
//! Redis from MySQL before serving.

use crate::catalog::Catalog;
use crate::configuration::Settings;
use crate::routes;
use actix_web::dev::Server;
use actix_web::web;
use common::redis::{Keyspace, RedisClient};
use db::DbPool;
use inventory::{DistributedLock, ItemStore};
use std::time::Duration;
use web_layer::bootstrap::Infrastructure;

pub struct Application {
    port: u16,
    server: Server,
}

pub fn catalog(settings: &Settings, db: DbPool, redis: RedisClient) -> Catalog {
    Catalog {
        db,
        store: ItemStore::new(
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

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let infrastructure = Infrastructure::connect(&settings).await?;
        let catalog = catalog(
            &settings,
            infrastructure.db.clone(),
            infrastructure.redis.clone(),
        );
        if catalog.warm_up().await.is_err() {
            tokio::spawn(warm_up(catalog.clone()));
        }
        let authenticator = infrastructure.authenticator(&settings.jwt)?;
        let catalog = web::Data::new(catalog);
        let (port, server) =
            infrastructure.serve(&settings.app, Some(authenticator), move |cfg| {
                cfg.app_data(catalog.clone());
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
