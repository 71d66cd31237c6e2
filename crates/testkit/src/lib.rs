//! Test support shared by the services' integration tests: a fresh MySQL database and a
//! private Redis key prefix per test (so tests run in parallel against the machine's
//! real servers and leave nothing behind), a per-process JWT key pair, token forging
//! for negative tests, and a small JSON HTTP client.

mod chaosproxy;
mod http;
mod rabbit;
mod redis_server;

pub use chaosproxy::ChaosProxy;
pub use http::{Client, Response};
pub use rabbit::{Message, TestRabbit, rabbit_url};
pub use redis_server::RedisServer;

use common::config::{DatabaseSettings, JwtSettings, RedisSettings};
use common::jwt::{Claims, KeyPair, Role, generate_key_pair, now_secs};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The MySQL server tests use: `TEST_DB_URL`, default root on 127.0.0.1:3306.
pub fn server_url() -> String {
    std::env::var("TEST_DB_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

/// A database of its own, migrated, dropped when the value is dropped (even on panic).
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    pub async fn new() -> Self {
        let name = format!("test_{}", unique_suffix());
        db::create_database(&server_url(), &name)
            .await
            .expect("create the test database (is MariaDB up? scripts/test starts it)");
        let database = TestDatabase { name };
        db::run_migrations(&database.url())
            .await
            .expect("migrate the test database");
        database
    }

    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name)
    }

    /// Points service settings at this database.
    pub fn apply(&self, settings: &mut DatabaseSettings) {
        let url = server_url();
        let rest = url.trim_start_matches("mysql://");
        let (credentials, address) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (username, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (host, port) = address.rsplit_once(':').unwrap_or((address, "3306"));
        settings.host = host.to_owned();
        settings.port = port.parse().expect("TEST_DB_URL port");
        settings.username = username.to_owned();
        settings.password = password.to_owned();
        settings.database = self.name.clone();
        settings.run_migrations = false;
        settings.pool_size = 8;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside an async runtime, which cannot be blocked on: use a thread.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(db::drop_database(&server_url(), &name)))
        })
        .join();
        if !matches!(dropped, Ok(Ok(Ok(())))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A Redis key prefix of its own; its keys are deleted when the value is dropped.
pub struct TestRedis {
    pub prefix: String,
}

impl TestRedis {
    pub fn new() -> Self {
        TestRedis {
            prefix: format!("test:{}:", unique_suffix()),
        }
    }

    pub fn apply(&self, settings: &mut RedisSettings) {
        settings.key_prefix = self.prefix.clone();
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis (is it up? scripts/test starts it)")
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let _ = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(redis_url())?.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
            }
            Ok(())
        })
        .join();
    }
}

/// One Ed25519 key pair per test process, written to a temporary directory.
pub struct TestKeys {
    pub pair: KeyPair,
    pub private_path: PathBuf,
    pub public_path: PathBuf,
}

pub fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pair = generate_key_pair().expect("generate test keys");
        let dir = std::env::temp_dir().join(format!("flash-sale-test-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("key dir");
        let private_path = dir.join("jwt_private.pem");
        let public_path = dir.join("jwt_public.pem");
        std::fs::write(&private_path, &pair.private_pem).expect("write private key");
        std::fs::write(&public_path, &pair.public_pem).expect("write public key");
        TestKeys {
            pair,
            private_path,
            public_path,
        }
    })
}

impl TestKeys {
    pub fn apply(&self, settings: &mut JwtSettings) {
        settings.private_key_path = self.private_path.clone();
        settings.public_key_path = self.public_path.clone();
        settings.leeway_secs = 0;
    }

    /// Signs arbitrary claims with the test key, for tokens the service would never issue.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let key = EncodingKey::from_ed_pem(self.pair.private_pem.as_bytes()).expect("key");
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).expect("sign")
    }

    /// A valid token for a user id and role, as auth-service would issue it.
    pub fn token_for(&self, user_id: u64, role: Role) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + 3600,
            jti: unique_suffix(),
            role,
        };
        self.sign(&serde_json::to_value(claims).expect("claims"))
    }
}

/// Polls `check` every 50 ms until it returns true or `seconds` pass; panics with
/// `what` on time-out. For waiting on asynchronous effects (a drained queue).
pub async fn eventually<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out after {seconds}s waiting for: {what}");
}
