//! A private RabbitMQ node for the chaos drill, so that restarting "the broker" never
//! touches the machine's own RabbitMQ (other tests run against it). The node
//! `flash-chaos@localhost` listens on 127.0.0.1:5679 (distribution on 127.0.0.1:25679)
//! and keeps everything under one directory: its data (`RABBITMQ_MNESIA_BASE`), logs,
//! configuration, an empty plugin list (no management listener to collide with), an
//! env file of its own (the machine's `rabbitmq-env.conf` names the machine's node) and
//! a HOME with its own Erlang cookie, so its `rabbitmqctl` cannot reach the machine's
//! node even by mistake.
//!
//! The scripts are run from RabbitMQ's own directory when there is one
//! (`/usr/lib/rabbitmq/bin` on Debian): the `/usr/sbin` wrappers switch to the
//! `rabbitmq` user and its HOME, cookie and working directory.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const NODE: &str = "flash-chaos@localhost";
pub const PORT: u16 = 5679;
const DIST_PORT: u16 = 25679;
const SCRIPT_DIRS: [&str; 1] = ["/usr/lib/rabbitmq/bin"];
/// RabbitMQ takes a few seconds to start, more on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct PrivateRabbit {
    dir: PathBuf,
}

impl PrivateRabbit {
    /// Starts the node afresh under `dir` (a node left over by an interrupted drill is
    /// stopped first) and waits until it takes connections.
    pub async fn start(dir: PathBuf) -> anyhow::Result<Self> {
        let node = PrivateRabbit { dir };
        // A leftover node's cookie is in its HOME; without one the CLI cannot even start.
        if node.dir.join("home").is_dir() && node.is_up() {
            node.stop()?;
        }
        let _ = std::fs::remove_dir_all(&node.dir);
        for sub in ["mnesia", "log", "home"] {
            std::fs::create_dir_all(node.dir.join(sub))?;
        }
        std::fs::write(
            node.dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{PORT}\n"),
        )?;
        std::fs::write(node.dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(node.dir.join("rabbitmq-env.conf"), "")?;
        let status = node
            .command("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODE_PORT", PORT.to_string())
            .env("RABBITMQ_DIST_PORT", DIST_PORT.to_string())
            .env("RABBITMQ_MNESIA_BASE", node.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", node.dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", node.dir.join("rabbitmq.conf"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                node.dir.join("enabled_plugins"),
            )
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .stdout(Stdio::null())
            .status()
            .context("running rabbitmq-server (is RabbitMQ installed?)")?;
        if !status.success() {
            bail!("rabbitmq-server -detached failed ({status})");
        }
        node.wait_started().await?;
        Ok(node)
    }

    /// Where the node's logs are.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// A RabbitMQ script with the node's environment.
    fn command(&self, script: &str) -> Command {
        let program = SCRIPT_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(script))
            .find(|path| path.is_file())
            .unwrap_or_else(|| PathBuf::from(script));
        let mut command = Command::new(program);
        command
            .env("HOME", self.dir.join("home"))
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_NODENAME", NODE)
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_CRASH_DUMP", self.dir.join("erl_crash.dump"));
        command
    }

    /// `rabbitmqctl -q -n flash-chaos@localhost ARGS`.
    fn ctl(&self, args: &[&str]) -> Command {
        let mut command = self.command("rabbitmqctl");
        command
            .args(["-q", "-n", NODE])
            .args(args)
            .stdout(Stdio::null());
        command
    }

    fn run_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let output = self
            .ctl(args)
            .output()
            .with_context(|| format!("running rabbitmqctl {}", args.join(" ")))?;
        if !output.status.success() {
            bail!(
                "rabbitmqctl -n {NODE} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn is_up(&self) -> bool {
        self.ctl(&["ping"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    async fn wait_started(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        // `await_startup` needs the node registered first; until then only ping waits.
        while !self.is_up() {
            if Instant::now() > deadline {
                bail!(
                    "the private RabbitMQ node {NODE} did not start (logs in {})",
                    self.log_dir().display()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.run_ctl(&["await_startup"])
    }

    /// The broker fault: stops the node's RabbitMQ application and starts it again
    /// (its connections drop, its queues recover from disk).
    pub fn restart(&self) -> anyhow::Result<()> {
        self.run_ctl(&["stop_app"])?;
        self.run_ctl(&["start_app"])
    }

    /// Stops the node (and its Erlang VM).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.run_ctl(&["stop"])
    }
}
