//! A Redis key prefix of its own per test, on the single server (`TEST_REDIS_URL`) or,
//! with `TEST_REDIS_MODE=cluster`, on the local Redis Cluster (`TEST_REDIS_CLUSTER_NODES`,
//! the one `scripts/test` starts), so the same suites prove both modes; a test whose
//! premise is one server skips itself on the cluster ([`needs_single_redis`]).

use common::config::{RedisMode, RedisSettings, ReplicasAcked};
use common::redis::SharedConnection;

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// The mode the tests run Redis in (`TEST_REDIS_MODE`, single by default).
pub fn redis_mode() -> RedisMode {
    match std::env::var("TEST_REDIS_MODE").as_deref() {
        Ok("cluster") => RedisMode::Cluster,
        Ok("single") | Err(_) => RedisMode::Single,
        Ok(other) => panic!("TEST_REDIS_MODE is single or cluster, not {other}"),
    }
}

/// Skips a test whose premise is one Redis server (a chaos proxy in front of it, a server
/// the test starts) when the tests run on a Redis Cluster (`TEST_REDIS_MODE=cluster`);
/// says so, with `why`, past the harness's capture. Call it first:
/// `if testkit::needs_single_redis("why") { return; }`.
pub fn needs_single_redis(why: &str) -> bool {
    match redis_mode() {
        RedisMode::Single => false,
        RedisMode::Cluster => {
            // The harness runs each test on a thread named after it.
            let thread = std::thread::current();
            let test = thread
                .name()
                .filter(|name| *name != "main")
                .unwrap_or("a test");
            crate::note(&format!(
                "TEST_REDIS_MODE=cluster: skipped {test}: it needs one Redis server: {why}"
            ));
            true
        }
    }
}

fn cluster_nodes() -> String {
    std::env::var("TEST_REDIS_CLUSTER_NODES").unwrap_or_else(|_| {
        (7001..=7006)
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// A Redis key prefix of its own; its keys are deleted when the value is dropped.
pub struct TestRedis {
    pub prefix: String,
}

impl TestRedis {
    pub fn new() -> Self {
        Self::default()
    }

    /// Points settings at the test Redis under this prefix.
    pub fn apply(&self, settings: &mut RedisSettings) {
        let address = crate::chaosproxy::address_of(&redis_url(), 6379);
        settings.mode = redis_mode();
        settings.cluster_nodes = cluster_nodes();
        settings.host = address.ip().to_string();
        settings.port = address.port();
        settings.key_prefix = self.prefix.clone();
    }

    /// Settings for the test Redis under this prefix, for code below the services.
    pub fn settings(&self) -> RedisSettings {
        let mut settings = RedisSettings {
            mode: RedisMode::Single,
            cluster_nodes: String::new(),
            host: String::new(),
            port: 0,
            password: String::new(),
            db: 0,
            pool_size: 4,
            key_prefix: String::new(),
            response_timeout_ms: 2000,
            min_replicas_acked: ReplicasAcked::Auto,
            replica_ack_timeout_ms: 1000,
        };
        self.apply(&mut settings);
        settings
    }

    /// A connection to look at (or stage) keys, routed by slot on a cluster.
    pub async fn connection(&self) -> SharedConnection {
        common::redis::client(&self.settings())
            .expect("redis settings")
            .get()
            .await
            .expect("connect to Redis (is it up? scripts/test starts it)")
    }
}

impl TestRedis {
    /// Every key under this prefix, sorted (a cluster lists each master's share).
    pub async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut self.connection().await)
            .await
            .expect("KEYS");
        keys.sort();
        keys
    }
}

impl Default for TestRedis {
    /// A prefix of its own.
    fn default() -> Self {
        TestRedis {
            prefix: format!("test:{}:", crate::unique_suffix()),
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let nodes = self.settings().node_urls();
        let _ = std::thread::spawn(move || {
            for node in nodes {
                // On a cluster each master holds its share of the keys (a replica
                // refuses the deletes, its master does them); one key per DEL, since
                // the keys of one node still hash to different slots.
                let _ = delete_matching(&node, &pattern);
            }
        })
        .join();
    }
}

fn delete_matching(node: &str, pattern: &str) -> redis::RedisResult<()> {
    let mut conn = redis::Client::open(node)?.get_connection()?;
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut conn)?;
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.del(key).ignore();
    }
    pipe.query::<()>(&mut conn)
}
