//! Builds the auth-service from its settings, so `main` and the tests start the very
//! same application (tests on port 0).

use crate::accounts::Accounts;
use crate::configuration::Settings;
use crate::password::PasswordHasher;
use crate::routes;
use crate::throttle::{AttemptCounters, LoginThrottle, RefreshLimit};
use crate::tokens::TokenIssuer;
use actix_web::dev::Server;
use actix_web::web;
use common::auth::Authenticator;
use common::client::TrustForwardedFor;
use common::http::Readiness;
use common::jwt::JwtVerifier;
use common::metrics::Metrics;
use common::redis::Keyspace;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.database.run_migrations {
            db::run_migrations(&settings.database.url()).await?;
        }
        let db = db::pool(&settings.database.url(), settings.database.pool_size)?;
        let redis = common::redis::connect(&settings.redis, settings.app.env).await?;
        let keys = Keyspace::new(settings.redis.key_prefix.clone());
        let authenticator = Authenticator {
            verifier: JwtVerifier::from_settings(&settings.jwt)?,
            redis: redis.clone(),
            keys: keys.clone(),
        };
        let counters = AttemptCounters {
            redis: redis.clone(),
            keys,
        };
        let accounts = Accounts {
            db: db.clone(),
            hasher: PasswordHasher::new(settings.auth.bcrypt_rounds).await?,
            issuer: TokenIssuer::from_settings(&settings.jwt)?,
            throttle: LoginThrottle {
                counters: counters.clone(),
                max_per_pair: settings.auth.login_max_attempts,
                max_per_address: settings.auth.login_max_attempts_per_address,
                max_per_email: settings.auth.login_max_attempts_per_email,
                decay_secs: settings.auth.login_decay_seconds,
            },
            refresh_limit: RefreshLimit {
                counters,
                max_per_user: settings.auth.refresh_max_attempts,
                window_secs: settings.auth.refresh_decay_seconds,
            },
            authenticator: authenticator.clone(),
        };
        let readiness = Readiness::default()
            .with_redis(redis)
            .with_check("mysql", db::readiness_check(db.clone()));

        let metrics = Metrics::new(&settings.app.name);
        let accounts = web::Data::new(accounts);
        let authenticator = web::Data::new(authenticator);
        let trust = TrustForwardedFor(settings.app.trust_forwarded_for);
        let (port, server) = common::http::serve(&settings.app, metrics, readiness, move |cfg| {
            cfg.app_data(accounts.clone())
                .app_data(authenticator.clone())
                .app_data(trust);
            routes::configure(cfg);
        })?;
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, finishing in-flight requests first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
