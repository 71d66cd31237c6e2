//! What every service connects to at start, built one way: migrations when
//! `DB_RUN_MIGRATIONS` asks for them, the MySQL pool, Redis (checked for an evicting
//! policy), the key prefix, the readiness checks of both and the metrics registry. Each
//! service's `startup.rs` adds only what is its own.

use crate::http::Readiness;
use crate::service::Serving;
use actix_web::web;
use common::auth::Authenticator;
use common::config::{AppSettings, JwtSettings, Settings};
use common::jwt::JwtVerifier;
use common::metrics::Metrics;
use common::redis::{Keyspace, RedisClient};
use common::revocation::FeedSettings;
use db::DbPool;

pub struct Infrastructure {
    pub db: DbPool,
    pub redis: RedisClient,
    pub keys: Keyspace,
    /// MySQL and Redis; a service adds its own checks (RabbitMQ) before serving.
    pub readiness: Readiness,
    /// Register a service's own metrics here before serving.
    pub metrics: Metrics,
}

impl Infrastructure {
    /// Connects lazily: a service starts while MySQL or Redis is down, and its
    /// requests answer `SYSTEM_BUSY` until they are back.
    pub async fn connect<Own>(settings: &Settings<Own>) -> anyhow::Result<Self> {
        let (app, database, redis) = (&settings.app, &settings.database, &settings.redis);
        if database.run_migrations {
            db::run_migrations(&database.url()).await?;
        }
        let db = db::pool(&database.url(), database.pool_size)?;
        let client = common::redis::connect(redis, app.env).await?;
        let readiness = Readiness::default()
            .with_redis(client.clone())
            .with_check("mysql", db::readiness_check(db.clone()));
        Ok(Infrastructure {
            db,
            redis: client,
            keys: Keyspace::new(redis.key_prefix.clone()),
            readiness,
            metrics: Metrics::new(&app.name),
        })
    }

    /// Token verification with revocation, for services that authenticate callers: its
    /// revocation feed follows the stream from now on (one task, one connection of its
    /// own), and its metrics are registered.
    pub fn authenticator(&mut self, jwt: &JwtSettings) -> anyhow::Result<Authenticator> {
        let authenticator = Authenticator::new(
            JwtVerifier::from_settings(jwt)?,
            self.redis.clone(),
            self.keys.clone(),
            FeedSettings::from_jwt(jwt),
        );
        authenticator.feed.register(&mut self.metrics);
        authenticator.follow_revocations();
        Ok(authenticator)
    }

    /// Serves the service's routes (`configure`), with the authenticator registered
    /// when there is one, on the bound port.
    pub fn serve<F>(
        self,
        app: &AppSettings,
        authenticator: Option<Authenticator>,
        configure: F,
    ) -> std::io::Result<Serving>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let authenticator = authenticator.map(web::Data::new);
        let (port, server) = crate::http::serve(app, self.metrics, self.readiness, move |cfg| {
            if let Some(authenticator) = &authenticator {
                cfg.app_data(authenticator.clone());
            }
            configure(cfg);
        })?;
        Ok(Serving::new(port, server))
    }
}
