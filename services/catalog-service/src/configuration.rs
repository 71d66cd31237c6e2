//! catalog-service settings: the shared sections it reads.

use common::config::{AppSettings, DatabaseSettings, JwtSettings, LockSettings, RedisSettings};
use serde::Deserialize;

const DEFAULTS: &str = r#"
[app]
name = "catalog-service"
port = 8082
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub app: AppSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub jwt: JwtSettings,
    pub lock: LockSettings,
}

impl Settings {
    pub fn load() -> Result<Self, common::config::ConfigError> {
        common::config::load(DEFAULTS)
    }
}
