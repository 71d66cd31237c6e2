//! Builds the auth-service from its settings, so `main` and the tests start the very
//! same application (tests on port 0).

use crate::accounts::Accounts;
use crate::attempts::AttemptCounters;
use crate::configuration::{AuthOwn, Settings};
use crate::password::PasswordHasher;
use crate::routes;
use crate::throttle::{LoginThrottle, RefreshLimit, RegisterLimit};
use crate::tokens::TokenIssuer;
use actix_web::web;
use std::time::Duration;
use web_layer::bootstrap::Infrastructure;
use web_layer::client::TrustForwardedFor;
use web_layer::service::{Service, Serving};

/// auth-service: its HTTP server is all that runs.
pub struct Application;

impl Service for Application {
    type Own = AuthOwn;
    type Running = Serving;

    async fn start(settings: Settings, mut infra: Infrastructure) -> anyhow::Result<Serving> {
        let authenticator = infra.authenticator(&settings.jwt)?;
        let counters = AttemptCounters::new(infra.redis.clone());
        let keys = &infra.keys;
        let accounts = Accounts {
            db: infra.db.clone(),
            hasher: PasswordHasher::new(settings.auth.bcrypt_rounds)
                .await?
                .bounded(
                    settings.auth.hash_concurrency,
                    Duration::from_millis(settings.auth.hash_queue_wait_ms),
                ),
            issuer: TokenIssuer::from_settings(&settings.jwt)?,
            throttle: LoginThrottle {
                counters: counters.clone(),
                keys: keys.clone(),
                max_per_pair: settings.auth.login_max_attempts,
                max_per_address: settings.auth.login_max_attempts_per_address,
                max_per_email: settings.auth.login_max_attempts_per_email,
                decay_secs: settings.auth.login_decay_seconds,
            },
            register_limit: RegisterLimit {
                counters: counters.clone(),
                keys: keys.clone(),
                max_per_address: settings.auth.register_max_per_address,
                window_secs: settings.auth.register_decay_seconds,
            },
            refresh_limit: RefreshLimit {
                counters,
                keys: keys.clone(),
                max_per_user: settings.auth.refresh_max_attempts,
                window_secs: settings.auth.refresh_decay_seconds,
            },
            authenticator: authenticator.clone(),
        };
        let accounts = web::Data::new(accounts);
        let trust = TrustForwardedFor(settings.app.trust_forwarded_for);
        Ok(infra.serve(&settings.app, Some(authenticator), move |cfg| {
            cfg.app_data(accounts.clone()).app_data(trust);
            routes::configure(cfg);
        })?)
    }
}
