//! stock-writer settings: the shared sections plus its own `[writer]` section.

use common::config::{
    AppSettings, DatabaseSettings, LockSettings, RabbitMqSettings, RedisSettings,
};
use serde::Deserialize;

const DEFAULTS: &str = r#"
[app]
name = "stock-writer"
port = 8084

[writer]
prefetch = 1000
batch_max = 500
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct WriterSection {
    /// Unacknowledged messages the broker may hand over at once.
    pub prefetch: u16,
    /// Events applied in one MySQL transaction at most. A batch is whatever has
    /// arrived by the time the previous one committed, so it grows with the backlog.
    pub batch_max: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub app: AppSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub rabbitmq: RabbitMqSettings,
    /// The item locks sync-stock takes, as catalog-service's admin writes do.
    pub lock: LockSettings,
    pub writer: WriterSection,
}

impl Settings {
    pub fn load() -> Result<Self, common::config::ConfigError> {
        common::config::load(DEFAULTS)
    }
}
