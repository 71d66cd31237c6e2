//! A whole stack per test: the four service binaries (built by this workspace, started
//! as processes) behind a real nginx rendered from `deploy/nginx/*.template`, sharing a
//! fresh database, Redis key prefix and queue names. Dropping it kills every process.
//! The parts it shares with `cargo xtask`'s native stack (service list, environment,
//! gateway rendering, readiness, the conservation check) live in `devstack`.

use crate::{SERVICES, StockAccount, workspace_root};
use devstack::{Gateway, ServiceEnv, probe};
use diesel_async::{AsyncConnection, AsyncMysqlConnection};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use testkit::{Client, TestDatabase, TestRabbit, TestRedis};

/// The directory holding the service binaries, built (or refreshed) once per test run
/// so the tests never drive stale binaries.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(workspace_root())
            .arg("build")
            .arg("--quiet");
        for service in SERVICES {
            build.args(["-p", service]);
        }
        let status = build
            .status()
            .expect("run cargo build for the service binaries");
        assert!(status.success(), "building the service binaries failed");
        let exe = std::env::current_exe().expect("test executable");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf()
    })
}

/// A service's binary, built by this workspace (see [`bin_dir`]), to run it as an
/// operator would.
pub fn service_binary(service: &str) -> PathBuf {
    bin_dir().join(service)
}

/// A loopback port nothing listens on just now (a server started on it may still lose
/// it to another; callers retry on another port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Where gateways listen: below the ephemeral range (Linux's starts at 32768), so no
/// service binding port 0 and no outgoing connection takes one of these. That matters
/// because nginx listens with `reuseport` and the services with `SO_REUSEPORT`: had a
/// gateway been started on a port another test's service got meanwhile, the kernel would
/// have let both listen and split the gateway's connections between them.
const GATEWAY_PORTS: std::ops::Range<u16> = 20_000..25_000;

/// A gateway port no other test on this machine holds, claimed by a lock on a file (in
/// the system's temporary directory) for as long as the returned file stays open.
fn claim_gateway_port() -> (u16, std::fs::File) {
    use std::os::fd::AsRawFd;
    let dir = std::env::temp_dir().join("flash-sale-e2e-gateway-ports");
    std::fs::create_dir_all(&dir).expect("the gateway ports' lock directory");
    for _ in 0..1000 {
        let random = uuid::Uuid::new_v4().as_u128();
        let span = u128::from(GATEWAY_PORTS.end - GATEWAY_PORTS.start);
        let port = GATEWAY_PORTS.start + u16::try_from(random % span).expect("within the span");
        let claim = std::fs::File::create(dir.join(port.to_string())).expect("a port's lock file");
        // SAFETY: flock(2) on a descriptor this function owns.
        let locked = unsafe { libc::flock(claim.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        // A claimed port can still be in use by something else: a plain bind says so.
        if locked && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return (port, claim);
        }
    }
    panic!("no free gateway port in {GATEWAY_PORTS:?}");
}

pub struct LocalStack {
    pub gateway: Client,
    pub database: TestDatabase,
    pub redis: TestRedis,
    pub rabbit: TestRabbit,
    pub ports: Vec<(&'static str, u16)>,
    pub gateway_port: u16,
    pub dir: PathBuf,
    env: ServiceEnv,
    children: Vec<(String, Child)>,
    /// Keeps `gateway_port` this stack's (see [`claim_gateway_port`]).
    gateway_port_claim: Option<std::fs::File>,
}

impl LocalStack {
    pub async fn start() -> LocalStack {
        Self::start_with(&[]).await
    }

    /// Starts the stack; `extra_env` overrides the environment of every service.
    pub async fn start_with(extra_env: &[(&str, &str)]) -> LocalStack {
        Self::start_with_instances(extra_env, &[]).await
    }

    /// Starts the stack with `instances` of the services it names (one of the others),
    /// each on a port of its own, the gateway balancing over all of them.
    pub async fn start_with_instances(
        extra_env: &[(&str, &str)],
        instances: &[(&str, usize)],
    ) -> LocalStack {
        bin_dir();
        let (database, redis, rabbit) = (
            TestDatabase::new().await,
            TestRedis::new(),
            TestRabbit::new(),
        );
        let dir = std::env::temp_dir().join(format!(
            "e2e-{}",
            redis.prefix.trim_matches(|c| c == ':').replace(':', "-")
        ));
        std::fs::create_dir_all(dir.join("nginx/tmp")).expect("stack dir");
        let keys = testkit::keys();
        let mut settings = common::config::DatabaseSettings {
            host: String::new(),
            port: 0,
            database: String::new(),
            username: String::new(),
            password: String::new(),
            pool_size: 0,
            run_migrations: false,
        };
        database.apply(&mut settings);
        let redis_settings = redis.settings();
        let mut env = ServiceEnv::new()
            .with("APP_ENV", "testing")
            .with("LOG_FORMAT", "json")
            .with("LOG_LEVEL", "info")
            .with("TRUST_FORWARDED_FOR", "true")
            .with(
                "TRUSTED_PROXIES",
                format!("{}/32", devstack::gateway::PROXY_BIND),
            )
            .with("BCRYPT_ROUNDS", "4")
            .with("DB_POOL_SIZE", "8")
            .with("OUTBOX_RELAY_INTERVAL_MS", "200")
            .with("OUTBOX_RELAY_AFTER_MS", "1000")
            .with("PAYMENT_WEBHOOK_SECRET", crate::LOCAL_WEBHOOK_SECRET)
            .with("DB_HOST", settings.host)
            .with("DB_PORT", settings.port.to_string())
            .with("DB_USERNAME", settings.username)
            .with("DB_PASSWORD", settings.password)
            .with("DB_DATABASE", settings.database)
            .with("REDIS_MODE", redis_settings.mode.as_str())
            .with("REDIS_CLUSTER_NODES", redis_settings.cluster_nodes)
            .with("REDIS_HOST", redis_settings.host)
            .with("REDIS_PORT", redis_settings.port.to_string())
            .with("REDIS_KEY_PREFIX", redis.prefix.clone())
            .with("RABBITMQ_PREFIX", rabbit.prefix.clone())
            .with(
                "JWT_PUBLIC_KEY_PATH",
                keys.public_path.display().to_string(),
            )
            .with(
                "JWT_PRIVATE_KEY_PATH",
                keys.private_path.display().to_string(),
            );
        for (name, value) in extra_env {
            env.set(*name, *value);
        }
        // Port 0: each service binds a free port itself and logs it (a port picked here
        // and bound later could be taken meanwhile by a test running in parallel).
        let count = |service: &str| {
            instances
                .iter()
                .find(|(s, _)| *s == service)
                .map_or(1, |(_, n)| *n)
        };
        // The gateway's port is picked when it starts (see `start_gateway`).
        let gateway_port = 0;
        let mut stack = LocalStack {
            gateway: Client::new("http://127.0.0.1:0"),
            database,
            redis,
            rabbit,
            ports: Vec::new(),
            gateway_port,
            dir,
            env,
            children: Vec::new(),
            gateway_port_claim: None,
        };
        for service in SERVICES {
            for instance in 0..count(service) {
                let name = instance_name(service, instance);
                stack.spawn(&name, service, 0);
                let port = stack.bound_port(&name).await;
                stack.ports.push((service, port));
            }
        }
        stack.wait_ready().await;
        stack.start_gateway().await;
        stack
    }

    /// The ports of the service's instances, the first instance's first.
    pub fn ports_of(&self, service: &str) -> Vec<u16> {
        self.ports
            .iter()
            .filter(|(s, _)| *s == service)
            .map(|(_, p)| *p)
            .collect()
    }

    pub fn port(&self, service: &str) -> u16 {
        self.ports
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, p)| *p)
            .expect("known service")
    }

    /// Runs a service binary's CLI subcommand with the stack's environment.
    pub fn run_cli(
        &self,
        service: &str,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> std::process::Output {
        let mut command = self.env.command(&bin_dir().join(service));
        command
            .args(args)
            .envs(extra_env.iter().copied())
            .env("LOG_LEVEL", "warn");
        command.output().expect("run service CLI")
    }

    /// Creates an admin with auth-service's `create-admin`, as an operator does.
    pub fn create_admin(&self, email: &str, password: &str) {
        let created = self.run_cli(
            "auth-service",
            &["create-admin", "--email", email],
            &[("ADMIN_PASSWORD", password)],
        );
        testkit::succeeded(&created);
    }

    /// Starts a service (its first instance) again on its known port.
    pub fn start_service(&mut self, service: &str) {
        self.spawn(service, service, self.port(service));
    }

    /// Starts an instance named `name` (its log is `<name>.log`) of `service` on `port`
    /// (0: a port of its own choosing, see [`Self::bound_port`]).
    fn spawn(&mut self, name: &str, service: &str, port: u16) -> u32 {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .expect("log file");
        let child = self
            .env
            .service_command(bin_dir(), service, port)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start service");
        let pid = child.id();
        self.children.push((name.to_owned(), child));
        pid
    }

    /// Replaces the service's `instance`-th instance as a rolling restart does: a new
    /// one on the same port (they share it), then, once the new one answers `/readyz`
    /// under its own pid, SIGTERM to the old one, which must exit by itself within
    /// `SHUTDOWN_DRAIN_SECS` + `SHUTDOWN_TIMEOUT_SECS` and a margin (`within`).
    pub async fn replace_instance(&mut self, service: &str, instance: usize, within: Duration) {
        let port = self.ports_of(service)[instance];
        let name = instance_name(service, instance);
        let old = self
            .children
            .iter()
            .position(|(n, _)| *n == name)
            .expect("the instance runs");
        let (_, mut old) = self.children.remove(old);
        let new_pid = self.spawn(&name, service, port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = probe::get(port, "/readyz").await;
            let ready_as_new = answer.is_some_and(|answer| {
                answer.status == 200
                    && serde_json::from_str::<serde_json::Value>(&answer.body)
                        .is_ok_and(|body| body["pid"].as_u64() == Some(u64::from(new_pid)))
            });
            if ready_as_new {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replacement of {name} never became ready; log: {}",
                self.log(&name)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let terminated = Command::new("kill")
            .args(["-TERM", &old.id().to_string()])
            .status()
            .expect("run kill");
        assert!(terminated.success(), "SIGTERM to the old {name}");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = old.try_wait().expect("wait for the old instance") {
                assert!(status.success(), "the old {name} exited with {status}");
                return;
            }
            if Instant::now() >= deadline {
                let _ = old.kill();
                panic!(
                    "the old {name} did not exit within {within:?}; log: {}",
                    self.log(&name)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills a service (SIGKILL), as a crash would.
    pub fn kill_service(&mut self, service: &str) {
        if let Some(index) = self.children.iter().position(|(name, _)| name == service) {
            let (_, mut child) = self.children.remove(index);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops a service (SIGSTOP) without ending it, and returns once every thread of it
    /// has stopped: from then on connections to it are still accepted and what is sent
    /// on them waits, unread, in the kernel. [`Self::kill_service`] ends it.
    pub async fn pause_service(&self, service: &str) {
        let (_, child) = self
            .children
            .iter()
            .find(|(name, _)| name == service)
            .expect("a running service");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) on the pid of a child this stack started and has not reaped.
        let signalled = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(signalled, 0, "SIGSTOP {service}");
        // kill(2) returns before the process stops: the signal wakes one thread, which
        // then stops the others, and until they have stopped they still accept and read.
        testkit::eventually(10, &format!("{service} stopped by SIGSTOP"), || async {
            all_threads_stopped(pid)
        })
        .await;
    }

    /// The port a service started with `APP_PORT=0` bound, read from its `listening` log
    /// line.
    async fn bound_port(&self, service: &str) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let port = self.log(service).lines().find_map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).ok()?;
                (line["message"] == "listening")
                    .then(|| line["port"].as_u64())??
                    .try_into()
                    .ok()
            });
            if let Some(port) = port {
                return port;
            }
            assert!(
                Instant::now() < deadline,
                "{service} never said where it listens; log: {}",
                self.log(service)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn gateway_config(&self) -> Gateway {
        Gateway {
            port: self.gateway_port,
            dir: self.dir.join("nginx"),
            access_log: self.dir.join("gateway.log"),
        }
    }

    /// Starts nginx on a port claimed for it, and again on another one if it could not
    /// listen there (something outside the tests took the port meanwhile).
    async fn start_gateway(&mut self) {
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            let (port, claim) = claim_gateway_port();
            self.gateway_port = port;
            self.gateway_port_claim = Some(claim);
            self.gateway = Client::new(format!("http://127.0.0.1:{}", self.gateway_port));
            let gateway = self.gateway_config();
            gateway
                .render(&workspace_root(), |service| self.ports_of(service))
                .expect("render the gateway config");
            // A process group of its own, which `Drop` kills whole: nginx's workers
            // outlive a killed master and would go on listening.
            let mut child = gateway
                .nginx(&["-g", "daemon off;"])
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx (scripts/test installs it)");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if probe::wait_until_ok(self.gateway_port, "/healthz", Instant::now()).await {
                    self.children.push(("gateway".into(), child));
                    return;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(gateway.error_log()).unwrap_or_default();
                    assert!(
                        attempt < ATTEMPTS,
                        "nginx exited ({status}) {ATTEMPTS} times; its error log: {log}"
                    );
                    eprintln!(
                        "note: nginx exited ({status}) on port {}; trying another port: {log}",
                        self.gateway_port
                    );
                    break;
                }
                if Instant::now() >= deadline {
                    kill_process_group(&mut child);
                    panic!(
                        "the gateway never answered; its error log: {}",
                        std::fs::read_to_string(gateway.error_log()).unwrap_or_default()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for (service, port) in &self.ports {
            assert!(
                probe::wait_until_ok(*port, "/readyz", deadline).await,
                "{service} never became ready; log: {}",
                self.log(service)
            );
        }
    }

    /// The Redis key prefix the stack's services use.
    pub fn keyspace(&self) -> common::redis::Keyspace {
        common::redis::Keyspace::new(self.redis.prefix.clone())
    }

    /// The item's stock in MySQL and Redis, for the conservation check.
    pub async fn stock_account(&self, item_id: u64, initial: u64) -> StockAccount {
        let mut mysql = AsyncMysqlConnection::establish(&self.database.url())
            .await
            .expect("connect to the test database");
        let mut redis = self.redis.connection().await;
        StockAccount::measure(&mut mysql, &mut redis, &self.keyspace(), item_id, initial)
            .await
            .expect("read the item's stock")
    }

    /// A service's log so far, for failure messages.
    pub fn log(&self, service: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{service}.log"))).unwrap_or_default()
    }

    /// The gateway's error and access logs so far, for failure messages (the access log
    /// is written at least once a second).
    pub fn gateway_logs(&self) -> String {
        let gateway = self.gateway_config();
        let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        format!(
            "gateway error log:\n{}\ngateway access log:\n{}",
            read(gateway.error_log()),
            read(gateway.access_log)
        )
    }
}

/// Kills the process group `leader` leads (nginx's master and its workers, see
/// `start_gateway`) and reaps the leader.
fn kill_process_group(leader: &mut Child) {
    if let Ok(group) = libc::pid_t::try_from(leader.id()) {
        // SAFETY: kill(2) on the group of a child this stack started and has not reaped.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    let _ = leader.wait();
}

/// Whether every thread of process `pid` is stopped (state `T` in
/// `/proc/<pid>/task/<tid>/stat`, the field after the parenthesised name).
fn all_threads_stopped(pid: libc::pid_t) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.flatten().all(|thread| {
        std::fs::read_to_string(thread.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        })
    })
}

/// The name of a service's instance: its logs and its entry among the processes.
fn instance_name(service: &str, instance: usize) -> String {
    if instance == 0 {
        service.to_owned()
    } else {
        format!("{service}-{instance}")
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for (name, child) in &mut self.children {
            if name == "gateway" {
                kill_process_group(child);
            } else {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
