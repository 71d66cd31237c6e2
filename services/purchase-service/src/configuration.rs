//! purchase-service settings: the shared sections plus its own `[purchase]` section.

use common::config::{
    AppSettings, DatabaseSettings, JwtSettings, LockSettings, RabbitMqSettings, RedisSettings,
};
use serde::Deserialize;

const DEFAULTS: &str = r#"
[app]
name = "purchase-service"
port = 8083

[purchase]
strategy = "lua"
idempotency_ttl_secs = 86400
relay_interval_ms = 1000
relay_after_ms = 10000
republish_after_ms = 30000
max_publishes_in_flight = 4096
"#;

/// How a purchase is taken in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// One atomic Lua script: no lock, no retries (the default).
    Lua,
    /// The reference design: distributed lock + WATCH/MULTI/EXEC.
    Lock,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PurchaseSection {
    pub strategy: Strategy,
    pub idempotency_ttl_secs: u64,
    /// How often the outbox relay looks for orders that were never confirmed published.
    pub relay_interval_ms: u64,
    /// An order still in the outbox this long after purchase is republished.
    pub relay_after_ms: i64,
    /// After a republish, how long before the same order is tried again.
    pub republish_after_ms: i64,
    /// Publishes waiting for a broker confirm at once; beyond it the relay takes over.
    pub max_publishes_in_flight: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub app: AppSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub jwt: JwtSettings,
    pub lock: LockSettings,
    pub rabbitmq: RabbitMqSettings,
    pub purchase: PurchaseSection,
}

impl Settings {
    pub fn load() -> Result<Self, common::config::ConfigError> {
        common::config::load(DEFAULTS)
    }
}
