//! `TestEnv`: everything one test owns on the machine's real servers (a database, a
//! Redis key prefix, RabbitMQ names) and the one way to point a service's settings at
//! it, in the manner of crates.io's `TestApp` builder. With `TEST_LOG=1` the services'
//! logs go to the test's output, which cargo shows for a failing test.

use crate::{TestDatabase, TestRabbit, TestRedis};
use common::config::Settings;

pub struct TestEnv {
    pub database: TestDatabase,
    pub redis: TestRedis,
    pub rabbit: TestRabbit,
}

impl TestEnv {
    pub async fn new() -> Self {
        init_test_log();
        TestEnv {
            database: TestDatabase::new().await,
            redis: TestRedis::new(),
            rabbit: TestRabbit::new(),
        }
    }

    /// A service's settings pointed here: loopback port 0, this database, key prefix
    /// and queues, and the test JWT keys.
    pub fn settings<Own: common::config::OwnSettings>(&self) -> Settings<Own> {
        let mut settings = Settings::<Own>::load().expect("settings");
        self.apply(&mut settings);
        settings
    }

    /// Points existing settings here (see [`Self::settings`]).
    pub fn apply<Own>(&self, settings: &mut Settings<Own>) {
        settings.app.port = 0;
        settings.app.host = "127.0.0.1".into();
        self.database.apply(&mut settings.database);
        self.redis.apply(&mut settings.redis);
        self.rabbit.apply(&mut settings.rabbitmq);
        crate::keys().apply(&mut settings.jwt);
    }
}

/// With `TEST_LOG=1`, every service started in this test process logs to the test's
/// captured output (shown when a test fails).
pub fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some_and(|v| v != "0") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
    }
}
