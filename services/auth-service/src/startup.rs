//! Builds the auth-service from its settings, so `main` and the tests start the very
//! same application (tests on port 0).

use crate::accounts::Accounts;
use crate::configuration::Settings;
use crate::password::PasswordHasher;
use crate::routes::{self, TrustForwardedFor};
use crate::throttle::LoginThrottle;
use crate::tokens::TokenIssuer;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use common::auth::Authenticator;
use common::http::Readiness;
use common::jwt::JwtVerifier;
use common::metrics::Metrics;
use common::redis::Keyspace;
use std::net::TcpListener;

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
        let redis = common::redis::pool(&settings.redis)?;
        let keys = Keyspace::new(settings.redis.key_prefix.clone());
        let authenticator = Authenticator {
            verifier: JwtVerifier::from_settings(&settings.jwt)?,
            redis: redis.clone(),
            keys: keys.clone(),
        };
        let accounts = Accounts {
            db: db.clone(),
            hasher: PasswordHasher::new(settings.auth.bcrypt_rounds).await?,
            issuer: TokenIssuer::from_settings(&settings.jwt)?,
            throttle: LoginThrottle {
                redis: redis.clone(),
                keys,
                max_per_email: settings.auth.login_max_attempts,
                max_per_address: settings.auth.login_max_attempts_per_address,
                decay_secs: settings.auth.login_decay_seconds,
            },
            authenticator: authenticator.clone(),
        };
        let readiness = Readiness::default()
            .with_redis(redis)
            .with_check("mysql", move || {
                let db = db.clone();
                async move { db::ping(&db).await }
            });

        let listener = TcpListener::bind((settings.app.host.as_str(), settings.app.port))?;
        let port = listener.local_addr()?.port();
        let metrics = web::Data::new(Metrics::new(&settings.app.name));
        let accounts = web::Data::new(accounts);
        let authenticator = web::Data::new(authenticator);
        let readiness = web::Data::new(readiness);
        let trust = TrustForwardedFor(settings.app.trust_forwarded_for);
        let body_limit = settings.app.body_limit_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(common::telemetry::observe))
                .app_data(metrics.clone())
                .app_data(accounts.clone())
                .app_data(authenticator.clone())
                .app_data(readiness.clone())
                .app_data(trust)
                .configure(routes::configure)
                .configure(|cfg| common::http::configure(cfg, body_limit))
        })
        .shutdown_timeout(settings.app.shutdown_timeout_secs)
        .listen(listener)?
        .run();
        tracing::info!(port, "auth-service listening");
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
