//! Configuration loading shared by every service.
//!
//! Values are layered, later layers winning: the defaults compiled into the binary
//! (`crates/common/config/base.toml`, then the service's own defaults), the optional
//! environment file `$APP_CONFIG_DIR/$APP_ENV.toml` (default `config/local.toml`), a
//! `.env` file in the working directory, and finally environment variables with the names
//! users of the Laravel reference know (`DB_HOST`, `LOCK_MAX_RETRIES`, ...), listed in
//! [`ENV_VARS`] (`config/env-vars.toml`). A missing or malformed value fails at start
//! with the key named.

pub use ::config::{Config, ConfigError};
use ::config::{File, FileFormat};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;

pub(crate) const BASE_DEFAULTS: &str = include_str!("../config/base.toml");

/// One environment variable and the configuration key it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub key: String,
}

/// Every environment variable any service reads (`config/env-vars.toml`, read at first
/// use). docs/configuration.md documents them (`config_docs` checks its table) and a test
/// in crates/e2e checks docker-compose.yaml against them.
pub static ENV_VARS: LazyLock<Vec<EnvVar>> = LazyLock::new(|| {
    parse_env_vars(include_str!("../config/env-vars.toml"))
        .expect("config/env-vars.toml: a table of `key = \"VARIABLE\"` per section")
});

/// The variables of an env-vars file: each section's `key = "VARIABLE"`.
fn parse_env_vars(text: &str) -> Result<Vec<EnvVar>, ConfigError> {
    let sections: BTreeMap<String, BTreeMap<String, String>> = Config::builder()
        .add_source(File::from_str(text, FileFormat::Toml))
        .build()?
        .try_deserialize()?;
    Ok(sections
        .into_iter()
        .flat_map(|(section, fields)| {
            fields.into_iter().map(move |(field, name)| EnvVar {
                name,
                key: format!("{section}.{field}"),
            })
        })
        .collect())
}

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
    /// trusted gateway; see `client`), and only on requests from `trusted_proxies`.
    pub trust_forwarded_for: bool,
    /// The peers (the gateway's address) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: crate::client::TrustedProxies,
    pub shutdown_timeout_secs: u64,
    /// On SIGTERM, how long the service keeps serving while `/readyz` answers 503
    /// (`draining`) before it stops taking connections.
    pub shutdown_drain_secs: u64,
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
    /// before it is answered as done.
    pub min_replicas_acked: ReplicasAcked,
    /// How long one WAIT for those replicas may take before the write's fate is looked up.
    pub replica_ack_timeout_ms: u64,
}

/// `REDIS_MIN_REPLICAS_ACKED`: a number of replicas, or `auto`: 1 on a cluster, 0 on a
/// single server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicasAcked {
    Auto,
    Exactly(u32),
}

impl<'de> Deserialize<'de> for ReplicasAcked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ReplicasAcked::Exactly(n)),
            Raw::Text(text) if text == "auto" => Ok(ReplicasAcked::Auto),
            Raw::Text(text) => text.parse().map(ReplicasAcked::Exactly).map_err(|_| {
                serde::de::Error::custom(format!(
                    "expected a number of replicas or `auto`, not {text:?}"
                ))
            }),
        }
    }
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
        match (self.min_replicas_acked, self.mode) {
            (ReplicasAcked::Exactly(n), _) => n,
            (ReplicasAcked::Auto, RedisMode::Single) => 0,
            (ReplicasAcked::Auto, RedisMode::Cluster) => 1,
        }
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
    /// How stale an instance's revocation feed may be and still answer checks without
    /// a Redis call; also the bound on how late a revocation takes effect on the other
    /// instances (0: no feed, every check looks the revocation up).
    pub revocation_feed_max_lag_ms: u64,
    /// How many revocations an instance's feed holds at most; past that it looks them
    /// up until it has room again.
    pub revocation_feed_max_entries: usize,
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

    /// The secrets among them, each with the variable that sets it, for the production
    /// check ([`weak_secret`]).
    fn secrets(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }
}

/// Values this repository documents or used to default to for development
/// (deploy/local.env, the tests, docs/, the examples, compose's former defaults): with
/// `APP_ENV=production` no secret may be one of them.
pub const DEVELOPMENT_SECRETS: [&str; 9] = [
    "whsec_local_development_only",
    "whsec_e2e_secret",
    "secret",
    "change-me",
    "changeme",
    "guest",
    "flash",
    "admin",
    "password",
];

/// The fewest bytes a production secret may have (`openssl rand -hex 32` gives 64).
pub const MIN_SECRET_BYTES: usize = 32;

/// Why `value`, the secret `variable` sets, cannot serve in production: unset, a
/// documented development value, or too short to be a secret. `None` when it can.
pub fn weak_secret(variable: &str, value: &str) -> Option<String> {
    let advice = format!(
        "APP_ENV=production needs a secret of its own, at least {MIN_SECRET_BYTES} bytes \
         (e.g. `openssl rand -hex 32`)"
    );
    let folded = value.trim().to_ascii_lowercase();
    if folded.is_empty() {
        return Some(format!("{variable} is not set: {advice}"));
    }
    let development = DEVELOPMENT_SECRETS
        .iter()
        .any(|known| folded == *known || (known.starts_with("whsec_") && folded.contains(known)));
    if development {
        return Some(format!(
            "{variable} is a development value documented in this repository: {advice}"
        ));
    }
    if value.len() < MIN_SECRET_BYTES {
        return Some(format!(
            "{variable} is {} bytes, too short to be a secret: {advice}",
            value.len()
        ));
    }
    None
}

/// A service's settings: the sections every service has (each with defaults in
/// base.toml) and its own (`service`); the service's own fields read through it as if
/// they were the settings' own (`settings.purchase.strategy`).
#[derive(Debug, Clone, Deserialize)]
pub struct Settings<Own> {
    pub app: AppSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub jwt: JwtSettings,
    pub lock: LockSettings,
    pub rabbitmq: RabbitMqSettings,
    /// Read apart from the shared sections (see [`Settings::load`]).
    #[serde(skip)]
    pub service: Own,
}

impl<Own: OwnSettings> Settings<Own> {
    /// Loads the layers, later winning: the base, the service's defaults,
    /// `$APP_CONFIG_DIR/$APP_ENV.toml`, `.env`, then the environment variables.
    pub fn load() -> Result<Self, ConfigError> {
        let settings = Self::from_config(layered(Own::DEFAULTS)?)?;
        settings.refuse_weak_secrets()?;
        Ok(settings)
    }

    /// With `APP_ENV=production`, refuses to go on with a secret that is unset, a
    /// documented development value or too short ([`weak_secret`]): the database and
    /// broker passwords, the Redis password when one is set (a Redis without one must be
    /// reachable by the services alone), and the service's own secrets. Every refused
    /// variable is named.
    pub fn refuse_weak_secrets(&self) -> Result<(), ConfigError> {
        if !self.app.env.is_production() {
            return Ok(());
        }
        let mut secrets = vec![
            ("DB_PASSWORD", self.database.password.as_str()),
            ("RABBITMQ_PASSWORD", self.rabbitmq.password.as_str()),
        ];
        if !self.redis.password.is_empty() {
            secrets.push(("REDIS_PASSWORD", self.redis.password.as_str()));
        }
        secrets.extend(self.service.secrets());
        let refused: Vec<String> = secrets
            .into_iter()
            .filter_map(|(variable, value)| weak_secret(variable, value))
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Message(format!(
                "refusing to start: {}",
                refused.join("; ")
            )))
        }
    }
}

impl<Own: OwnSettings> Settings<Own> {
    /// The compiled-in defaults alone (no file, no environment): what a deployment runs
    /// with unless it says otherwise.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_config(
            Config::builder()
                .add_source(File::from_str(BASE_DEFAULTS, FileFormat::Toml))
                .add_source(File::from_str(Own::DEFAULTS, FileFormat::Toml))
                .build()?,
        )
    }
}

impl<Own: DeserializeOwned> Settings<Own> {
    /// Reads the shared sections, then the service's own, from the layered
    /// configuration, naming the environment variable of a malformed value.
    fn from_config(config: Config) -> Result<Self, ConfigError> {
        let shared: Settings<IgnoredAny> =
            config.clone().try_deserialize().map_err(name_the_env_var)?;
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
    for var in ENV_VARS.iter() {
        builder = builder.set_override_option(&var.key, std::env::var(&var.name).ok())?;
    }
    builder.build().map_err(name_the_env_var)
}

/// Adds the environment variable's name to an error about a key, since that is the name
/// an operator set.
fn name_the_env_var(error: ConfigError) -> ConfigError {
    let message = error.to_string();
    let named = ENV_VARS
        .iter()
        .filter(|v| message.contains(&v.key))
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

    /// A service that reads only the shared sections.
    #[derive(Debug, Clone, Deserialize)]
    struct NoOwn {}

    impl OwnSettings for NoOwn {
        const DEFAULTS: &'static str = "";
    }

    fn build(overrides: &[(&str, &str)]) -> Result<Settings<NoOwn>, ConfigError> {
        let mut builder = Config::builder()
            .add_source(File::from_str(BASE_DEFAULTS, FileFormat::Toml))
            .add_source(File::from_str("[app]\nport = 9000", FileFormat::Toml));
        for (key, value) in overrides {
            builder = builder.set_override(*key, *value)?;
        }
        Settings::from_config(builder.build()?)
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
        let mut keys: Vec<_> = ENV_VARS.iter().map(|v| &v.key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), ENV_VARS.len());
        let mut names: Vec<_> = ENV_VARS.iter().map(|v| &v.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ENV_VARS.len());
    }

    #[test]
    fn every_env_var_sets_a_key_the_defaults_have_or_a_services_own_section() {
        let base = Config::builder()
            .add_source(File::from_str(BASE_DEFAULTS, FileFormat::Toml))
            .build()
            .unwrap();
        assert_eq!(ENV_VARS.len(), 78, "every variable of the file");
        for var in ENV_VARS.iter() {
            let (section, _) = var.key.split_once('.').expect("section.field");
            if ["auth", "purchase", "writer"].contains(&section) {
                continue;
            }
            assert!(
                base.get::<::config::Value>(&var.key).is_ok(),
                "{} sets {}, which has no default in base.toml",
                var.name,
                var.key
            );
        }
        let named = |name: &str| ENV_VARS.iter().find(|v| v.name == name).map(|v| &v.key);
        assert_eq!(
            named("LOCK_MAX_RETRIES").map(String::as_str),
            Some("lock.max_retries")
        );
        assert_eq!(
            named("LOGIN_MAX_ATTEMPTS_PER_ADDRESS").map(String::as_str),
            Some("auth.login_max_attempts_per_address")
        );
    }

    #[test]
    fn an_env_vars_file_names_each_key_by_its_section() {
        let vars = parse_env_vars(
            "[app]\nport = \"APP_PORT\"\n[writer]\nbatch_max = \"WRITER_BATCH_MAX\"\n",
        )
        .unwrap();
        assert_eq!(
            vars,
            [
                EnvVar {
                    name: "APP_PORT".into(),
                    key: "app.port".into()
                },
                EnvVar {
                    name: "WRITER_BATCH_MAX".into(),
                    key: "writer.batch_max".into()
                },
            ]
        );
    }

    #[test]
    fn replicas_to_ack_is_a_number_or_auto_by_mode() {
        let load = |mode: &str, acked: &str| {
            Config::builder()
                .add_source(File::from_str(BASE_DEFAULTS, FileFormat::Toml))
                .set_override("redis.mode", mode)
                .and_then(|c| c.set_override("redis.min_replicas_acked", acked))
                .and_then(|c| c.build())
                .and_then(|c| c.get::<RedisSettings>("redis"))
        };
        let acks = |mode, acked| load(mode, acked).map(|r| r.replicas_to_ack());
        assert_eq!(acks("cluster", "auto").unwrap(), 1);
        assert_eq!(acks("single", "auto").unwrap(), 0);
        assert_eq!(acks("single", "2").unwrap(), 2);
        assert_eq!(acks("cluster", "0").unwrap(), 0);
        let refused = load("cluster", "some").unwrap_err().to_string();
        assert!(
            refused.contains("a number of replicas or `auto`"),
            "{refused}"
        );
    }

    #[test]
    fn production_refuses_unset_development_and_short_secrets() {
        assert!(weak_secret("S", &"x".repeat(MIN_SECRET_BYTES)).is_none());
        let refused = |value: &str| weak_secret("PAYMENT_WEBHOOK_SECRET", value).unwrap();
        assert!(refused("").contains("PAYMENT_WEBHOOK_SECRET is not set"));
        for development in [
            "whsec_local_development_only",
            " Secret ",
            "guest",
            "whsec_local_development_only_but_made_long_enough",
        ] {
            assert!(
                refused(development).contains("a development value"),
                "{development:?}"
            );
        }
        assert!(refused("0123456789abcdef").contains("16 bytes, too short"));
    }

    #[test]
    fn only_production_checks_the_secrets_and_names_each_refused_one() {
        let local = build(&[("database.password", "secret")]).unwrap();
        assert!(local.refuse_weak_secrets().is_ok());
        let strong = "9f1c2e7a5b3d4f6e8a0b1c2d3e4f5a6b";
        let production = build(&[
            ("app.env", "production"),
            ("database.password", "secret"),
            ("rabbitmq.password", strong),
        ])
        .unwrap();
        let error = production.refuse_weak_secrets().unwrap_err().to_string();
        assert!(
            error.contains("DB_PASSWORD is a development value"),
            "{error}"
        );
        assert!(!error.contains("RABBITMQ_PASSWORD"), "{error}");
        assert!(
            !error.contains("REDIS_PASSWORD"),
            "unset is allowed: {error}"
        );
        let production = build(&[
            ("app.env", "production"),
            ("database.password", strong),
            ("rabbitmq.password", strong),
            ("redis.password", "short"),
        ])
        .unwrap();
        let error = production.refuse_weak_secrets().unwrap_err().to_string();
        assert!(error.contains("REDIS_PASSWORD is 5 bytes"), "{error}");
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
