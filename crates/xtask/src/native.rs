//! The native stack: the four release binaries and an nginx gateway on this machine's
//! loopback, on the native ports (8081-8084, the gateway on 8080 or `GATEWAY_PORT`),
//! against the machine's MariaDB, Redis and RabbitMQ. Each service runs as N instances
//! (`--instances N` or `INSTANCES`), the k-th on its native port + 100·k; the gateway
//! balances over all of them. Everything it writes lives under `run/` (`RUN_DIR`): keys,
//! logs and pid files per instance, the ports each service's instances listen on
//! (`run/instances/<service>`, what the gateway is rendered from), the gateway's
//! configuration. The services are detached processes in process groups of their own, so
//! they outlive `stack up` and a Ctrl-C of a benchmark; `stack down` stops what `up`
//! started, never the machine's servers.

use crate::process;
use crate::step;
use anyhow::{Context, bail};
use common::config::OwnSettings;
use devstack::{GATEWAY_NATIVE_PORT, Gateway, SERVICES, ServiceEnv, native_port, probe};
use serde::Deserialize;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a service may take to become ready after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The k-th instance of a service listens on its native port + k × this.
const INSTANCE_PORT_STEP: u16 = 100;
/// At most this many instances of one service (and spare ports for a rolling restart).
const MAX_INSTANCES: u16 = 20;

/// The tools read only the shared sections of the services' configuration, loaded the
/// way every service loads it (defaults, `config/$APP_ENV.toml`, `.env`, the
/// environment).
#[derive(Debug, Clone, Deserialize)]
pub struct Tools {}

impl OwnSettings for Tools {
    const DEFAULTS: &'static str = "";
}

pub type Settings = common::config::Settings<Tools>;

pub struct NativeStack {
    pub root: PathBuf,
    pub run_dir: PathBuf,
    bin_dir: PathBuf,
    pub gateway_port: u16,
    /// How many instances of each service `up` starts (`--instances`, `INSTANCES`).
    pub instances: usize,
    /// What every service gets: deploy/local.env with the caller's values.
    env: ServiceEnv,
    pub settings: Settings,
}

impl NativeStack {
    /// The stack of the repository at `root` with `env` (already exported into this
    /// process, so that `settings` see it too).
    pub fn new(root: PathBuf, env: ServiceEnv) -> anyhow::Result<Self> {
        let settings = Settings::load().context("reading the stack's configuration")?;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let gateway_port = match var("GATEWAY_PORT") {
            Some(port) => port.parse().context("GATEWAY_PORT must be a port number")?,
            None => GATEWAY_NATIVE_PORT,
        };
        let instances = match var("INSTANCES") {
            Some(n) => n.parse().context("INSTANCES must be a number")?,
            None => 1,
        };
        let run_dir = var("RUN_DIR").map_or_else(|| root.join("run"), PathBuf::from);
        let bin_dir = var("BIN_DIR").map_or_else(
            || {
                root.join("target")
                    .join(var("PROFILE").unwrap_or_else(|| "release".into()))
            },
            PathBuf::from,
        );
        Ok(NativeStack {
            root,
            run_dir,
            bin_dir,
            gateway_port,
            instances,
            env,
            settings,
        })
    }

    /// The native port of a service: its first instance's.
    pub fn port(service: &str) -> u16 {
        native_port(service).unwrap_or_default()
    }

    /// The ports `count` instances of a service get: the native one, then 100 above each.
    pub fn instance_ports(service: &str, count: usize) -> Vec<u16> {
        (0..MAX_INSTANCES)
            .take(count)
            .map(|k| Self::port(service) + k * INSTANCE_PORT_STEP)
            .collect()
    }

    /// An instance's name, for its log and pid files: the service's own for the one on
    /// the native port, `<service>-<port>` for the others.
    pub fn instance_name(service: &str, port: u16) -> String {
        if port == Self::port(service) {
            service.to_owned()
        } else {
            format!("{service}-{port}")
        }
    }

    fn ports_file(&self, service: &str) -> PathBuf {
        self.run_dir.join("instances").join(service)
    }

    /// The ports the service's instances listen on: what `up` (or the last rolling
    /// restart) wrote, else the first [`Self::instances`] instance ports.
    pub fn ports(&self, service: &str) -> Vec<u16> {
        let written: Vec<u16> = std::fs::read_to_string(self.ports_file(service))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect();
        if written.is_empty() {
            Self::instance_ports(service, self.instances)
        } else {
            written
        }
    }

    pub fn write_ports(&self, service: &str, ports: &[u16]) -> anyhow::Result<()> {
        let file = self.ports_file(service);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let lines: String = ports.iter().map(|port| format!("{port}\n")).collect();
        std::fs::write(&file, lines).with_context(|| format!("writing {}", file.display()))
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.run_dir.join("pids").join(format!("{name}.pid"))
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.run_dir.join("logs").join(format!("{name}.log"))
    }

    pub fn gateway(&self) -> Gateway {
        Gateway {
            port: self.gateway_port,
            dir: self.run_dir.join("nginx"),
            access_log: self.log_file("gateway"),
        }
    }

    /// The pid of a service's first running instance.
    pub fn pid(&self, service: &str) -> Option<i32> {
        self.ports(service)
            .into_iter()
            .find_map(|port| self.instance_pid(service, port))
    }

    /// The pid of the service's instance on `port`, if it runs.
    pub fn instance_pid(&self, service: &str, port: u16) -> Option<i32> {
        process::running(&self.pid_file(&Self::instance_name(service, port)))
    }

    /// How long a stopping instance gets before it is killed: the bound it exits within
    /// (`SHUTDOWN_DRAIN_SECS` + `SHUTDOWN_TIMEOUT_SECS`) and a margin.
    pub fn stop_grace(&self) -> Duration {
        let app = &self.settings.app;
        Duration::from_secs(app.shutdown_drain_secs + app.shutdown_timeout_secs + 5)
    }

    /// Builds the release binaries (unless `SKIP_BUILD` is set).
    pub fn build(&self) -> anyhow::Result<()> {
        if std::env::var_os("SKIP_BUILD").is_some_and(|v| !v.is_empty()) {
            return Ok(());
        }
        step("building release binaries");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(&self.root)
            .args(["build", "--release", "--locked"]);
        for service in SERVICES {
            build.args(["-p", service]);
        }
        check(build.status(), "cargo build")
    }

    /// Runs a service binary's subcommand (keygen, migrate, seed) to its end.
    fn run_cli(&self, service: &str, args: &[&str]) -> anyhow::Result<()> {
        self.run_cli_with(service, args, &ServiceEnv::new())
    }

    /// Runs a service binary's subcommand to its end, with `overrides` on top of the
    /// stack's environment.
    pub fn run_cli_with(
        &self,
        service: &str,
        args: &[&str],
        overrides: &ServiceEnv,
    ) -> anyhow::Result<()> {
        let mut env = self.env.clone();
        for (name, value) in overrides.vars() {
            env.set(name, value);
        }
        let status = env
            .command(&self.bin_dir.join(service))
            .current_dir(&self.root)
            .args(args)
            .status();
        check(status, &format!("{service} {}", args.join(" ")))
    }

    /// Builds, prepares (keys, migrations, demo data) and starts whatever is not
    /// running; returns the API's base URL once everything is ready.
    pub async fn up(&self) -> anyhow::Result<String> {
        if !(1..=usize::from(MAX_INSTANCES)).contains(&self.instances) {
            bail!("the number of instances must be 1 to {MAX_INSTANCES}");
        }
        self.build()?;
        std::fs::create_dir_all(self.run_dir.join("keys"))?;
        if !self.settings.jwt.private_key_path.exists() {
            step(format!(
                "creating a JWT key pair in {}",
                self.run_dir.join("keys").display()
            ));
            self.run_cli("auth-service", &["keygen"])?;
        }
        step(format!("migrating {}", self.settings.database.database));
        self.run_cli("auth-service", &["migrate"])?;
        let seeding = !self.settings.app.env.is_production();
        if seeding {
            step("seeding demo data");
            self.run_cli("auth-service", &["seed"])?;
        }
        for service in SERVICES {
            if self.pid(service).is_none() {
                self.write_ports(service, &Self::instance_ports(service, self.instances))?;
            }
            self.start_service(service, &ServiceEnv::new())?;
        }
        if seeding {
            let deadline = Instant::now() + READY_TIMEOUT;
            self.wait_service_ready("catalog-service", deadline).await?;
            self.run_cli("catalog-service", &["seed"])?;
        }
        self.start_gateway()?;
        self.wait_ready().await?;
        let strategy = std::env::var("PURCHASE_STRATEGY").unwrap_or_default();
        let url = format!("http://127.0.0.1:{}/api/v1", self.gateway_port);
        step(format!("stack is up: {url} (PURCHASE_STRATEGY={strategy})"));
        Ok(url)
    }

    /// Starts each of the service's instances that does not run, with `overrides` on
    /// top of the stack's environment.
    pub fn start_service(&self, service: &str, overrides: &ServiceEnv) -> anyhow::Result<()> {
        for port in self.ports(service) {
            self.start_instance(service, port, overrides)?;
        }
        Ok(())
    }

    /// Starts the service's instance on `port` unless it runs, with `overrides` on top
    /// of the stack's environment, detached, its output appended to its log.
    pub fn start_instance(
        &self,
        service: &str,
        port: u16,
        overrides: &ServiceEnv,
    ) -> anyhow::Result<()> {
        if self.instance_pid(service, port).is_none() {
            self.spawn_instance(service, port, overrides)?;
        }
        Ok(())
    }

    /// Starts an instance of the service on `port` even if one runs there (they share the
    /// port: a rolling restart's replacement), detached, its output appended to the
    /// port's log; its pid, now also in the port's pid file.
    pub fn spawn_instance(
        &self,
        service: &str,
        port: u16,
        overrides: &ServiceEnv,
    ) -> anyhow::Result<i32> {
        let name = Self::instance_name(service, port);
        std::fs::create_dir_all(self.run_dir.join("pids"))?;
        std::fs::create_dir_all(self.run_dir.join("logs"))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file(&name))?;
        let mut env = self.env.clone();
        for (name, value) in overrides.vars() {
            env.set(name, value);
        }
        let mut child = env
            .service_command(&self.bin_dir, service, port)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Out of the terminal's process group: a Ctrl-C of the tool leaves it running.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", self.bin_dir.join(service).display()))?;
        let pid = i32::try_from(child.id())?;
        self.write_pid(service, port, pid)?;
        // Reaps it should it exit while this tool still runs (a zombie would look alive).
        std::thread::spawn(move || child.wait());
        Ok(pid)
    }

    /// Records `pid` as the service's instance on `port`.
    pub fn write_pid(&self, service: &str, port: u16, pid: i32) -> anyhow::Result<()> {
        let file = self.pid_file(&Self::instance_name(service, port));
        std::fs::write(&file, format!("{pid}\n"))
            .with_context(|| format!("writing {}", file.display()))
    }

    /// Stops every instance of a service with `signal` (SIGKILL for a crash), killing
    /// each after a grace period.
    pub fn stop_service(&self, service: &str, signal: libc::c_int) {
        for port in self.ports(service) {
            self.stop_instance(service, port, signal, self.stop_grace());
        }
    }

    /// Stops the service's instance on `port` with `signal`, killing it after `grace`;
    /// false if it had to be killed.
    pub fn stop_instance(
        &self,
        service: &str,
        port: u16,
        signal: libc::c_int,
        grace: Duration,
    ) -> bool {
        let pid_file = self.pid_file(&Self::instance_name(service, port));
        let exited =
            process::running(&pid_file).is_none_or(|pid| process::stop(pid, signal, grace));
        let _ = std::fs::remove_file(pid_file);
        exited
    }

    /// Stops and starts a service with `overrides`, and waits until it is ready.
    pub async fn restart_service(
        &self,
        service: &str,
        overrides: &ServiceEnv,
    ) -> anyhow::Result<()> {
        self.stop_service(service, libc::SIGTERM);
        self.start_service(service, overrides)?;
        self.wait_service_ready(service, Instant::now() + READY_TIMEOUT)
            .await
    }

    fn start_gateway(&self) -> anyhow::Result<()> {
        let gateway = self.gateway();
        gateway.render(&self.root, |service| self.ports(service))?;
        let running = process::running(&gateway.pid_file()).is_some();
        let status = if running {
            gateway.nginx(&["-s", "reload"]).status()
        } else {
            gateway.nginx(&[]).status()
        };
        check(status, "nginx").with_context(|| {
            format!(
                "nginx did not start (see {})",
                gateway.error_log().display()
            )
        })
    }

    fn stop_gateway(&self) {
        let gateway = self.gateway();
        if process::running(&gateway.pid_file()).is_some() {
            let _ = gateway
                .nginx(&["-s", "quit"])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while process::running(&gateway.pid_file()).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every instance of the service is ready.
    pub async fn wait_service_ready(&self, service: &str, deadline: Instant) -> anyhow::Result<()> {
        for port in self.ports(service) {
            self.wait_instance_ready(service, port, deadline).await?;
        }
        Ok(())
    }

    pub async fn wait_instance_ready(
        &self,
        service: &str,
        port: u16,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        if !probe::wait_until_ok(port, "/readyz", deadline).await {
            bail!(
                "{service} is not ready: curl http://127.0.0.1:{port}/readyz; logs in {}",
                self.log_file(&Self::instance_name(service, port)).display()
            );
        }
        Ok(())
    }

    /// Waits until every service is ready and the gateway answers.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        for service in SERVICES {
            self.wait_service_ready(service, Instant::now() + READY_TIMEOUT)
                .await?;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        if !probe::wait_until_ok(self.gateway_port, "/healthz", deadline).await {
            bail!(
                "the gateway does not answer on {} (see {})",
                self.gateway_port,
                self.gateway().error_log().display()
            );
        }
        Ok(())
    }

    /// Stops the gateway and the services (never the machine's servers).
    pub fn down(&self) {
        self.stop_gateway();
        for service in SERVICES.iter().rev() {
            self.stop_service(service, libc::SIGTERM);
            let _ = std::fs::remove_file(self.ports_file(service));
        }
        step("stack is down (MariaDB, Redis and RabbitMQ keep running)");
    }

    /// One line per service instance (pid and `/readyz`) and one for the gateway.
    pub async fn status(&self) -> String {
        let mut lines = Vec::new();
        for service in SERVICES {
            for port in self.ports(service) {
                let state = match self.instance_pid(service, port) {
                    Some(pid) => {
                        let readyz = probe::get(port, "/readyz")
                            .await
                            .map_or_else(|| "unreachable".to_owned(), |a| a.body);
                        format!("running (pid {pid}), readyz: {readyz}")
                    }
                    None => "stopped".to_owned(),
                };
                let name = Self::instance_name(service, port);
                lines.push(format!("{name:<22} :{port} {state}"));
            }
        }
        let gateway = if process::running(&self.gateway().pid_file()).is_some() {
            "running"
        } else {
            "stopped"
        };
        lines.push(format!(
            "{:<22} :{} {gateway}",
            "gateway", self.gateway_port
        ));
        lines.join("\n")
    }

    /// Follows the logs of one service's instances, one instance (`<service>-<port>`) or
    /// the gateway, or of everything; replaces this process with `tail -F`.
    pub fn follow_logs(&self, which: Option<&str>) -> anyhow::Error {
        let logs = self.run_dir.join("logs");
        let _ = std::fs::create_dir_all(&logs);
        let mut tail = Command::new("tail");
        match which {
            Some(service) if SERVICES.contains(&service) => {
                tail.args(["-n", "100", "-F"]).args(
                    self.ports(service)
                        .into_iter()
                        .map(|port| self.log_file(&Self::instance_name(service, port))),
                );
            }
            Some(name) if name == "gateway" || self.log_file(name).exists() => {
                tail.args(["-n", "100", "-F"]).arg(self.log_file(name));
            }
            Some(name) => {
                return anyhow::anyhow!(
                    "no log named {name}: one of {}, an instance (<service>-<port>) or gateway",
                    SERVICES.join(", ")
                );
            }
            None => {
                let files = log_files(&logs);
                if files.is_empty() {
                    return anyhow::anyhow!("no logs yet in {}", logs.display());
                }
                tail.args(["-n", "20", "-F"]).args(files);
            }
        }
        anyhow::Error::new(tail.exec()).context("running tail")
    }
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn check(status: std::io::Result<std::process::ExitStatus>, what: &str) -> anyhow::Result<()> {
    let status = status.with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
