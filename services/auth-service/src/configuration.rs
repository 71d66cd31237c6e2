//! auth-service settings: the shared sections plus its own `[auth]` section.

use common::config::{AppSettings, DatabaseSettings, JwtSettings, RedisSettings};
use serde::Deserialize;

const DEFAULTS: &str = r#"
[app]
name = "auth-service"
port = 8081

[auth]
bcrypt_rounds = 12
login_max_attempts = 5
login_max_attempts_per_address = 20
login_decay_seconds = 60
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSection {
    pub bcrypt_rounds: u32,
    pub login_max_attempts: u64,
    pub login_max_attempts_per_address: u64,
    pub login_decay_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub app: AppSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub jwt: JwtSettings,
    pub auth: AuthSection,
}

impl Settings {
    pub fn load() -> Result<Self, common::config::ConfigError> {
        common::config::load(DEFAULTS)
    }
}
