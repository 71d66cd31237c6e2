//! auth-service settings: the shared sections plus its own `[auth]` section.

use common::config::OwnSettings;
use serde::Deserialize;

const DEFAULTS: &str = r#"
[app]
name = "auth-service"
port = 8081

[auth]
bcrypt_rounds = 12
login_max_attempts = 5
login_max_attempts_per_address = 20
login_max_attempts_per_email = 100
login_decay_seconds = 60
refresh_max_attempts = 10
refresh_decay_seconds = 3600
register_max_per_address = 20
register_decay_seconds = 600
hash_concurrency = 0
hash_queue_wait_ms = 1000
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub bcrypt_rounds: u32,
    /// Per (email, client address) pair.
    pub login_max_attempts: u64,
    pub login_max_attempts_per_address: u64,
    /// Per email across all addresses: a ceiling well above the pair's.
    pub login_max_attempts_per_email: u64,
    pub login_decay_seconds: u64,
    /// Refreshes per user per `refresh_decay_seconds`.
    pub refresh_max_attempts: u64,
    pub refresh_decay_seconds: u64,
    /// Registrations per client address per `register_decay_seconds`.
    pub register_max_per_address: u64,
    pub register_decay_seconds: u64,
    /// bcrypt hashes running at once at most; 0: one per core.
    pub hash_concurrency: usize,
    /// How long a request waits for a hashing slot before 503 `SYSTEM_BUSY`.
    pub hash_queue_wait_ms: u64,
}

/// What only auth-service reads.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthOwn {
    pub auth: AuthSettings,
}

impl OwnSettings for AuthOwn {
    const DEFAULTS: &'static str = DEFAULTS;
}

pub type Settings = common::config::Settings<AuthOwn>;
