//! Configuration loading shared by every service.
//!
//! Values are layered, later layers winning: the defaults compiled into the binary
//! (`crates/common/config/base.toml`, then the service's own defaults), the optional
//! environment file `$APP_CONFIG_DIR/$APP_ENV.toml` (default `config/local.toml`), a
//! `.env` file in the working directory, and finally environment variables with the names
//! users of the Laravel reference know (`DB_HOST`, `LOCK_MAX_RETRIES`, ...), listed in
//! [`ENV_VARS`]. A missing or malformed value fails at start with the key named.

pub use ::config::{Config, ConfigError};
use ::config::{File, FileFormat};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;

const BASE_DEFAULTS: &str = include_str!("../config/base.toml");

/// One environment variable and the configuration key it sets.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    pub name: &'static str,
    pub key: &'static str,
}

const fn var(name: &'static str, key: &'static str) -> EnvVar {
    EnvVar { name, key }
}

/// Every environment variable any service reads. README.md documents this table and a
/// test checks docker-compose.yaml against it.
pub const ENV_VARS: &[EnvVar] = &[
    var("APP_ENV", "app.env"),
    var("APP_HOST", "app.host"),
    var("APP_PORT", "app.port"),
    var("LOG_FORMAT", "app.log_format"),
    var("LOG_LEVEL", "app.log_level"),
    var("BODY_LIMIT_BYTES", "app.body_limit_bytes"),
    var("TRUST_FORWARDED_FOR", "app.trust_forwarded_for"),
    var("SHUTDOWN_TIMEOUT_SECS", "app.shutdown_timeout_secs"),
    var("DB_HOST", "database.host"),
    var("DB_PORT", "database.port"),
    var("DB_DATABASE", "database.database"),
    var("DB_USERNAME", "database.username"),
    var("DB_PASSWORD", "database.password"),
    var("DB_POOL_SIZE", "database.pool_size"),
    var("DB_RUN_MIGRATIONS", "database.run_migrations"),
    var("REDIS_MODE", "redis.mode"),
    var("REDIS_CLUSTER_NODES", "redis.cluster_nodes"),
    var("REDIS_HOST", "redis.host"),
    var("REDIS_PORT", "redis.port"),
    var("REDIS_PASSWORD", "redis.password"),
    var("REDIS_DB", "redis.db"),
    var("REDIS_POOL_SIZE", "redis.pool_size"),
    var("REDIS_KEY_PREFIX", "redis.key_prefix"),
    var("REDIS_RESPONSE_TIMEOUT_MS", "redis.response_timeout_ms"),
    var("REDIS_MIN_REPLICAS_ACKED", "redis.min_replicas_acked"),
    var(
        "REDIS_REPLICA_ACK_TIMEOUT_MS",
        "redis.replica_ack_timeout_ms",
    ),
    var("JWT_PUBLIC_KEY_PATH", "jwt.public_key_path"),
    var("JWT_PRIVATE_KEY_PATH", "jwt.private_key_path"),
    var("JWT_TTL", "jwt.ttl_minutes"),
    var("JWT_REFRESH_TTL", "jwt.refresh_ttl_minutes"),
    var("JWT_LEEWAY", "jwt.leeway_secs"),
    var("JWT_VERIFIED_CACHE_SIZE", "jwt.verified_cache_size"),
    var("LOCK_MAX_RETRIES", "lock.max_retries"),
    var("LOCK_RETRY_DELAY_MIN", "lock.retry_delay_min_us"),
    var("LOCK_RETRY_DELAY_MAX", "lock.retry_delay_max_us"),
    var("LOCK_TTL_MS", "lock.ttl_ms"),
    var("RABBITMQ_HOST", "rabbitmq.host"),
    var("RABBITMQ_PORT", "rabbitmq.port"),
    var("RABBITMQ_USER", "rabbitmq.user"),
    var("RABBITMQ_PASSWORD", "rabbitmq.password"),
    var("RABBITMQ_VHOST", "rabbitmq.vhost"),
    var("RABBITMQ_PREFIX", "rabbitmq.prefix"),
    var("RABBITMQ_PUBLISH_TIMEOUT_MS", "rabbitmq.publish_timeout_ms"),
    var("PURCHASE_STRATEGY", "purchase.strategy"),
    var("PURCHASE_OUTCOME_TIMEOUT_MS", "purchase.outcome_timeout_ms"),
    var("IDEMPOTENCY_TTL_SECS", "purchase.idempotency_ttl_secs"),
    var("OUTBOX_RELAY_INTERVAL_MS", "purchase.relay_interval_ms"),
    var("OUTBOX_RELAY_AFTER_MS", "purchase.relay_after_ms"),
    var("OUTBOX_REPUBLISH_AFTER_MS", "purchase.republish_after_ms"),
    var(
        "MAX_PUBLISHES_IN_FLIGHT",
        "purchase.max_publishes_in_flight",
    ),
    var("PUBLISH_QUEUE_CAPACITY", "purchase.publish_queue_capacity"),
    var("WRITER_PREFETCH", "writer.prefetch"),
    var("WRITER_BATCH_MAX", "writer.batch_max"),
    var("BCRYPT_ROUNDS", "auth.bcrypt_rounds"),
    var("LOGIN_MAX_ATTEMPTS", "auth.login_max_attempts"),
    var(
        "LOGIN_MAX_ATTEMPTS_PER_ADDRESS",
        "auth.login_max_attempts_per_address",
    ),
    var(
        "LOGIN_MAX_ATTEMPTS_PER_EMAIL",
        "auth.login_max_attempts_per_email",
    ),
    var("LOGIN_DECAY_SECONDS", "auth.login_decay_seconds"),
    var("REFRESH_MAX_ATTEMPTS", "auth.refresh_max_attempts"),
    var("REFRESH_DECAY_SECONDS", "auth.refresh_decay_seconds"),
];

/// Where the service runs: `production` turns off conveniences meant for development.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Local,
    Testing,
    Production,
}

impl Environment {
    pub fn is_production(self) -> bool {
        self == Environment::Production
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AppSettings {
    pub env: Environment,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub log_format: LogFormat,
    pub log_level: String,
    pub body_limit_bytes: usize,
    /// Take the client address from the rightmost `X-Forwarded-For` entry (only behind a
    /// trusted gateway; see `client`).
    pub trust_forwarded_for: bool,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub username: String,
    pub password: String,
    pub pool_size: usize,
    pub run_migrations: bool,
}

impl DatabaseSettings {
    /// URL of the server without a database selected (to create or drop databases).
    pub fn server_url(&self) -> String {
        let credentials = if self.password.is_empty() {
            encode(&self.username)
        } else {
            format!("{}:{}", encode(&self.username), encode(&self.password))
        };
        format!("mysql://{credentials}@{}:{}", self.host, self.port)
    }

    /// The database URL. `prefer_socket=false`: connect where DB_HOST/DB_PORT say, even
    /// on loopback (the driver would otherwise switch to the server's Unix socket).
    pub fn url(&self) -> String {
        format!(
            "{}/{}?prefer_socket=false",
            self.server_url(),
            self.database
        )
    }
}

/// Percent-encodes the characters that would break a URL's userinfo part.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// `single` (one server at host:port) or `cluster` (`cluster_nodes`).
    pub mode: RedisMode,
    /// Comma-separated `host:port` of cluster nodes (some are enough to find the rest).
    pub cluster_nodes: String,
    pub host: String,
    pub port: u16,
    pub password: String,
    pub db: i64,
    pub pool_size: usize,
    /// Prepended to every key, so that several deployments (or tests) share one server.
    pub key_prefix: String,
    /// A reply later than this fails the command (a write's outcome is then unknown and
    /// looked up before anyone is answered).
    pub response_timeout_ms: u64,
    /// How many replicas must have a sale (or a revocation, or an admin's stock change)
    /// before it is answered as done; unset: 1 on a cluster, 0 on a single server.
    pub min_replicas_acked: Option<u32>,
    /// How long one WAIT for those replicas may take before the write's fate is looked up.
    pub replica_ack_timeout_ms: u64,
}

/// A single Redis server, or a Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    Single,
    Cluster,
}

impl RedisMode {
    /// The value `REDIS_MODE` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            RedisMode::Single => "single",
            RedisMode::Cluster => "cluster",
        }
    }
}

impl RedisSettings {
    /// `REDIS_MIN_REPLICAS_ACKED`, or its default for the mode.
    pub fn replicas_to_ack(&self) -> u32 {
        self.min_replicas_acked.unwrap_or(match self.mode {
            RedisMode::Single => 0,
            RedisMode::Cluster => 1,
        })
    }

    /// The URL of one node (`host:port`), with the password.
    pub fn url_of(&self, address: &str) -> String {
        let auth = if self.password.is_empty() {
            String::new()
        } else {
            format!(":{}@", encode(&self.password))
        };
        format!("redis://{auth}{address}")
    }

    /// The URLs of every configured node: the server, or the listed cluster nodes.
    pub fn node_urls(&self) -> Vec<String> {
        match self.mode {
            RedisMode::Single => vec![self.url()],
            RedisMode::Cluster => self
                .cluster_nodes
                .split(',')
                .map(str::trim)
                .filter(|node| !node.is_empty())
                .map(|node| self.url_of(node))
                .collect(),
        }
    }

    pub fn url(&self) -> String {
        let auth = if self.password.is_empty() {
            String::new()
        } else {
            format!(":{}@", encode(&self.password))
        };
        format!("redis://{auth}{}:{}/{}", self.host, self.port, self.db)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct JwtSettings {
    pub public_key_path: PathBuf,
    pub private_key_path: PathBuf,
    pub ttl_minutes: u64,
    /// How long after `exp` an expired token may still be exchanged at `/auth/refresh`.
    pub refresh_ttl_minutes: u64,
    pub leeway_secs: u64,
    /// How many verified tokens each service remembers to skip re-checking their
    /// signature (0: verify every time).
    pub verified_cache_size: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LockSettings {
    pub max_retries: u32,
    pub retry_delay_min_us: u64,
    pub retry_delay_max_us: u64,
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RabbitMqSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// Prepended to the exchange and queue names (several deployments or tests on one broker).
    pub prefix: String,
    pub publish_timeout_ms: u64,
}

/// The AMQP frame size asked of the broker. Stock events are a few hundred bytes, and
/// lapin keeps 32 frames of send and of receive buffer per connection: at RabbitMQ's
/// default of 128 KiB that is 8 MiB resident per service, at 16 KiB it is 1 MiB.
const AMQP_FRAME_MAX: u32 = 16 * 1024;

impl RabbitMqSettings {
    pub fn url(&self) -> String {
        format!(
            "amqp://{}:{}@{}:{}/{}?frame_max={AMQP_FRAME_MAX}",
            encode(&self.user),
            encode(&self.password),
            self.host,
            self.port,
            encode(&self.vhost)
        )
    }
}

/// A service's own settings: the section(s) only it reads (`[auth]`, `[purchase]`,
/// `[writer]`), as a struct with that field, and the defaults it layers over the
/// shared base (its name and port among them).
pub trait OwnSettings: DeserializeOwned {
    const DEFAULTS: &'static str;
}

/// The sections every service has (each with defaults in base.toml).
#[derive(Debug, Clone, Deserialize)]
pub struct SharedSettings {
    pub app: AppSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub jwt: JwtSettings,
    pub lock: LockSettings,
    pub rabbitmq: RabbitMqSettings,
}

/// A service's settings: the shared sections and its own (`service`); the service's
/// own fields read through it as if they were the settings' own
/// (`settings.purchase.strategy`).
#[derive(Debug, Clone)]
pub struct Settings<Own> {
    pub app: AppSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub jwt: JwtSettings,
    pub lock: LockSettings,
    pub rabbitmq: RabbitMqSettings,
    pub service: Own,
}

impl<Own: OwnSettings> Settings<Own> {
    /// Loads the layers, later winning: the base, the service's defaults,
    /// `$APP_CONFIG_DIR/$APP_ENV.toml`, `.env`, then the environment variables.
    pub fn load() -> Result<Self, ConfigError> {
        let config = layered(Own::DEFAULTS)?;
        let shared: SharedSettings = config.clone().try_deserialize().map_err(name_the_env_var)?;
        Ok(Settings {
            app: shared.app,
            database: shared.database,
            redis: shared.redis,
            jwt: shared.jwt,
            lock: shared.lock,
            rabbitmq: shared.rabbitmq,
            service: config.try_deserialize().map_err(name_the_env_var)?,
        })
    }
}

impl<Own> std::ops::Deref for Settings<Own> {
    type Target = Own;

    fn deref(&self) -> &Own {
        &self.service
    }
}

impl<Own> std::ops::DerefMut for Settings<Own> {
    fn deref_mut(&mut self) -> &mut Own {
        &mut self.service
    }
}

fn layered(service_defaults: &str) -> Result<Config, ConfigError> {
    // A missing .env file is normal; a malformed one is reported by the values it sets.
    let _ = dotenvy::dotenv();
    let app_env = std::env::var("APP_ENV").unwrap_or_else(|_| "local".into());
    let config_dir = std::env::var("APP_CONFIG_DIR").unwrap_or_else(|_| "config".into());
    let environment_file = PathBuf::from(config_dir).join(format!("{app_env}.toml"));

    let mut builder = Config::builder()
        .add_source(File::from_str(BASE_DEFAULTS, FileFormat::Toml))
        .add_source(File::from_str(service_defaults, FileFormat::Toml))
        .add_source(File::from(environment_file).required(false));
    for var in ENV_VARS {
        builder = builder.set_override_option(var.key, std::env::var(var.name).ok())?;
    }
    builder.build().map_err(name_the_env_var)
}

/// Adds the environment variable's name to an error about a key, since that is the name
/// an operator set.
fn name_the_env_var(error: ConfigError) -> ConfigError {
    let message = error.to_string();
    let named = ENV_VARS
        .iter()
        .filter(|v| message.contains(v.key))
        .max_by_key(|v| v.key.len());
    match named {
        Some(v) => ConfigError::Message(format!(
            "configuration error: {message} (environment variable {})",
            v.name
        )),
        None => ConfigError::Message(format!("configuration error: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(overrides: &[(&str, &str)]) -> Result<SharedSettings, ConfigError> {
        let mut builder = Config::builder()
            .add_source(File::from_str(BASE_DEFAULTS, FileFormat::Toml))
            .add_source(File::from_str("[app]\nport = 9000", FileFormat::Toml));
        for (key, value) in overrides {
            builder = builder.set_override(*key, *value)?;
        }
        builder.build()?.try_deserialize().map_err(name_the_env_var)
    }

    #[test]
    fn service_defaults_override_the_base() {
        let settings = build(&[]).expect("defaults load");
        assert_eq!(settings.app.port, 9000);
        assert_eq!(settings.lock.max_retries, 5);
    }

    #[test]
    fn string_overrides_are_parsed_into_their_types() {
        let settings = build(&[("lock.max_retries", "7"), ("app.env", "production")]).unwrap();
        assert_eq!(settings.lock.max_retries, 7);
        assert!(settings.app.env.is_production());
    }

    #[test]
    fn a_malformed_value_names_the_environment_variable() {
        let error = build(&[("lock.max_retries", "many")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("LOCK_MAX_RETRIES"), "{error}");
    }

    #[test]
    fn every_env_var_targets_a_distinct_key() {
        let mut keys: Vec<_> = ENV_VARS.iter().map(|v| v.key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), ENV_VARS.len());
    }

    #[test]
    fn database_url_escapes_credentials() {
        let settings = build(&[("database.password", "p@ss/w rd")]).unwrap();
        assert_eq!(
            settings.database.url(),
            "mysql://root:p%40ss%2Fw%20rd@127.0.0.1:3306/flash_sale?prefer_socket=false"
        );
    }
}
