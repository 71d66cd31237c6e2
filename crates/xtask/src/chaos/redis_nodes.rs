//! Private Redis servers for the Redis drill, so that killing "the master" never
//! touches the machine's Redis or the test cluster (tests may run meanwhile): a 3-master,
//! 3-replica cluster on 127.0.0.1:7101-7106 and a single server on 127.0.0.1:7199, each
//! node under a directory of its own with AOF on, as production would run them.

use anyhow::{Context, bail};
use redis::aio::MultiplexedConnection;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const CLUSTER_PORTS: [u16; 6] = [7101, 7102, 7103, 7104, 7105, 7106];
pub const SINGLE_PORT: u16 = 7199;
/// `cluster-node-timeout`: a master unreachable this long is failed over.
const NODE_TIMEOUT_MS: u64 = 2_000;
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// One redis-server process started here.
pub struct RedisNode {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl RedisNode {
    fn new(port: u16, dir: &Path, extra: &[String]) -> Self {
        let dir = dir.join(port.to_string());
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--maxmemory-policy",
            "noeviction",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(
            [
                "--dir".to_owned(),
                dir.display().to_string(),
                "--pidfile".to_owned(),
                dir.join("redis.pid").display().to_string(),
                "--logfile".to_owned(),
                dir.join("redis.log").display().to_string(),
            ]
            .into_iter()
            .chain(extra.iter().cloned()),
        );
        RedisNode { port, dir, args }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again, from what it left on disk).
    pub fn start(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let status = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .status()
            .context("running redis-server (apt-get install -y redis-server)")?;
        if !status.success() {
            bail!(
                "redis-server on port {} did not start ({status})",
                self.port
            );
        }
        Ok(())
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("redis.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// kill -9: a crash, with whatever was not yet on disk or on a replica lost.
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
        let _ = std::fs::remove_file(self.dir.join("redis.pid"));
    }

    /// SIGSTOP, then SIGCONT: a node that stalls (a replica falling behind its master,
    /// as across a slow network) and comes back.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) with a pid read from the node's own pid file.
            unsafe { libc::kill(pid, signal) };
        }
    }

    pub async fn connection(&self) -> anyhow::Result<MultiplexedConnection> {
        Ok(redis::Client::open(format!("redis://{}", self.address()))?
            .get_multiplexed_async_connection()
            .await?)
    }

    async fn up(&self) -> bool {
        match self.connection().await {
            Ok(mut conn) => redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Whether this node is a replica whose link to its master is up.
    async fn replica_in_sync(&self) -> bool {
        let Ok(mut conn) = self.connection().await else {
            return false;
        };
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        info.contains("role:slave") && info.contains("master_link_status:up")
    }

    pub async fn wait_up(&self) -> anyhow::Result<()> {
        wait_until(&format!("Redis on port {}", self.port), async || {
            self.up().await
        })
        .await
    }
}

/// Polls `check` every 100 ms until it holds; fails after a minute.
async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < WAIT_LIMIT {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what}: still not there after {WAIT_LIMIT:?}")
}

/// A single server with AOF at the given `appendfsync` (`everysec` or `always`).
pub async fn start_single(dir: &Path, appendfsync: &str) -> anyhow::Result<RedisNode> {
    let node = RedisNode::new(
        SINGLE_PORT,
        &dir.join(format!("single-{appendfsync}")),
        &["--appendfsync".into(), appendfsync.into()],
    );
    node.kill();
    let _ = std::fs::remove_dir_all(&node.dir);
    node.start()?;
    node.wait_up().await?;
    Ok(node)
}

/// The drill's cluster.
pub struct RedisCluster {
    pub nodes: Vec<RedisNode>,
}

impl RedisCluster {
    /// Starts six fresh nodes and makes them a cluster with one replica per master.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let extra = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &NODE_TIMEOUT_MS.to_string(),
            "--appendfsync",
            "everysec",
        ]
        .map(str::to_owned);
        let cluster = RedisCluster {
            nodes: CLUSTER_PORTS
                .iter()
                .map(|port| RedisNode::new(*port, &dir.join("cluster"), &extra))
                .collect(),
        };
        cluster.stop();
        let _ = std::fs::remove_dir_all(dir.join("cluster"));
        for node in &cluster.nodes {
            node.start()?;
        }
        for node in &cluster.nodes {
            node.wait_up().await?;
        }
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(cluster.nodes.iter().map(RedisNode::address))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .context("running redis-cli --cluster create")?;
        if !status.success() {
            bail!("redis-cli --cluster create failed ({status})");
        }
        wait_until("the drill's Redis Cluster", async || cluster.all_ok().await).await?;
        // A replica still in its first sync acknowledges nothing.
        wait_until("every replica in sync", async || {
            let mut synced = 0;
            for node in &cluster.nodes {
                if node.replica_in_sync().await {
                    synced += 1;
                }
            }
            synced == cluster.nodes.len() / 2
        })
        .await?;
        Ok(cluster)
    }

    /// `REDIS_CLUSTER_NODES` for the services.
    pub fn nodes_setting(&self) -> String {
        self.nodes
            .iter()
            .map(RedisNode::address)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&self, port: u16) -> Option<&RedisNode> {
        self.nodes.iter().find(|n| n.port == port)
    }

    /// Whether every node that is up says the cluster is ok.
    async fn all_ok(&self) -> bool {
        for node in &self.nodes {
            if !node.up().await || self.info_of(node).await.as_deref() != Some("ok") {
                return false;
            }
        }
        true
    }

    async fn info_of(&self, node: &RedisNode) -> Option<String> {
        let mut conn = node.connection().await.ok()?;
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("cluster_state:"))
            .map(|s| s.trim().to_owned())
    }

    /// The port of the master serving `slot`, as the first reachable node sees it.
    pub async fn master_of(&self, slot: u16) -> anyhow::Result<u16> {
        for node in &self.nodes {
            let Ok(mut conn) = node.connection().await else {
                continue;
            };
            let Ok(redis::Value::Array(ranges)) = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<redis::Value>(&mut conn)
                .await
            else {
                continue;
            };
            // [[first, last, [host, port, id], replicas...], ...]
            for range in ranges {
                let redis::Value::Array(parts) = range else {
                    continue;
                };
                if let (
                    Some(redis::Value::Int(first)),
                    Some(redis::Value::Int(last)),
                    Some(redis::Value::Array(master)),
                ) = (parts.first(), parts.get(1), parts.get(2))
                    && (*first..=*last).contains(&i64::from(slot))
                    && let Some(redis::Value::Int(port)) = master.get(1)
                {
                    return Ok(u16::try_from(*port)?);
                }
            }
        }
        bail!("no node of the drill's cluster serves slot {slot}")
    }

    /// The replica of the master on `port`, as the master lists it.
    pub async fn replica_of(&self, port: u16) -> anyhow::Result<&RedisNode> {
        let master = self.node(port).context("no such node")?;
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut master.connection().await?)
            .await?;
        // slave0:ip=127.0.0.1,port=7104,state=online,offset=...,lag=0
        let replica = info
            .lines()
            .filter(|line| line.starts_with("slave"))
            .find_map(|line| line.split(',').find_map(|f| f.strip_prefix("port=")))
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the master on port {port} has no replica"))?;
        self.node(replica)
            .context("the replica is not a drill node")
    }

    /// Waits until a node other than `old` serves `slot` and the cluster is ok again.
    pub async fn wait_failover(&self, slot: u16, old: u16) -> anyhow::Result<()> {
        wait_until("the failover", async || {
            matches!(self.master_of(slot).await, Ok(port) if port != old)
                && self.surviving_ok(old).await
        })
        .await
    }

    async fn surviving_ok(&self, down: u16) -> bool {
        for node in self.nodes.iter().filter(|n| n.port != down) {
            if self.info_of(node).await.as_deref() != Some("ok") {
                return false;
            }
        }
        true
    }

    /// Waits until the node on `port` is a replica in sync with its master.
    pub async fn wait_replica(&self, port: u16) -> anyhow::Result<()> {
        let node = self.node(port).context("no such node")?;
        wait_until("the restarted node to rejoin as a replica", async || {
            node.replica_in_sync().await
        })
        .await?;
        wait_until("the cluster", async || self.all_ok().await).await
    }

    /// kill -9 every node (their files stay for a look afterwards).
    pub fn stop(&self) {
        for node in &self.nodes {
            node.kill();
        }
    }
}
