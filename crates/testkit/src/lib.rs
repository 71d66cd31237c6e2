//! Test support shared by the services' integration tests: a fresh MySQL database and a
//! private Redis key prefix per test (so tests run in parallel against the machine's
//! real servers and leave nothing behind), a per-process JWT key pair, token forging
//! for negative tests, a small JSON HTTP client, and services started as their binaries
//! start them.

mod chaosproxy;
mod command;
mod database;
mod env;
mod http;
mod rabbit;
mod redis_server;
mod service;
mod test_redis;

pub use chaosproxy::ChaosProxy;
pub use command::succeeded;
pub use database::{TestDatabase, TestItem, server_url};
pub use env::TestEnv;
pub use http::{Client, Response, assert_envelope, error_fields, reserved_order_id};
pub use rabbit::{Message, TestRabbit, events_of, rabbit_url};
pub use redis_server::RedisServer;
pub use service::serve;
pub use test_redis::{TestRedis, needs_single_redis, redis_mode, redis_url};

use common::config::JwtSettings;
use common::jwt::{Claims, KeyPair, Role, generate_key_pair, now_secs};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::PathBuf;
use std::sync::OnceLock;

fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
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
        sign_with(self.pair.private_pem.as_bytes(), claims).expect("sign")
    }

    /// A valid token for a user id and role, as auth-service would issue it.
    pub fn token_for(&self, user_id: u64, role: Role) -> String {
        token_signed_with(self.pair.private_pem.as_bytes(), user_id, role).expect("sign")
    }
}

/// A token for a user id and role, valid for an hour, as auth-service would issue it
/// with the private key `private_pem` (Ed25519, PEM).
pub fn token_signed_with(private_pem: &[u8], user_id: u64, role: Role) -> anyhow::Result<String> {
    let now = now_secs();
    let claims = Claims {
        sub: user_id.to_string(),
        iat: now,
        exp: now + 3600,
        jti: unique_suffix(),
        role,
    };
    sign_with(private_pem, &serde_json::to_value(claims)?)
}

fn sign_with(private_pem: &[u8], claims: &serde_json::Value) -> anyhow::Result<String> {
    let key = EncodingKey::from_ed_pem(private_pem)?;
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        claims,
        &key,
    )?)
}

/// Says, past the test harness's capture, that a check was skipped and why (one write,
/// so that it stays on a line of its own).
pub fn note(message: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("\nnote: {message}\n").as_bytes());
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
