//! A whole stack per test: the four service binaries (built by this workspace, started
//! as processes) behind a real nginx rendered from `deploy/nginx/*.template`, sharing a
//! fresh database, Redis key prefix and queue names. Dropping it kills every process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use testkit::{Client, TestDatabase, TestRabbit, TestRedis};

pub const SERVICES: [&str; 4] = [
    "auth-service",
    "catalog-service",
    "purchase-service",
    "stock-writer",
];

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub struct Stack {
    pub gateway: Client,
    pub database: TestDatabase,
    pub redis: TestRedis,
    pub rabbit: TestRabbit,
    pub ports: Vec<(&'static str, u16)>,
    pub gateway_port: u16,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    children: Vec<(String, Child)>,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(&[]).await
    }

    /// Starts the stack; `extra_env` overrides the environment of every service.
    pub async fn start_with(extra_env: &[(&str, &str)]) -> Stack {
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
        let mut env: Vec<(String, String)> = [
            ("APP_ENV", "testing"),
            ("LOG_FORMAT", "json"),
            ("LOG_LEVEL", "info"),
            ("TRUST_FORWARDED_FOR", "true"),
            ("BCRYPT_ROUNDS", "4"),
            ("DB_POOL_SIZE", "8"),
            ("OUTBOX_RELAY_INTERVAL_MS", "200"),
            ("OUTBOX_RELAY_AFTER_MS", "1000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend([
            ("DB_HOST".into(), settings.host),
            ("DB_PORT".into(), settings.port.to_string()),
            ("DB_USERNAME".into(), settings.username),
            ("DB_PASSWORD".into(), settings.password),
            ("DB_DATABASE".into(), settings.database),
            ("REDIS_KEY_PREFIX".into(), redis.prefix.clone()),
            ("RABBITMQ_PREFIX".into(), rabbit.prefix.clone()),
            (
                "JWT_PUBLIC_KEY_PATH".into(),
                keys.public_path.display().to_string(),
            ),
            (
                "JWT_PRIVATE_KEY_PATH".into(),
                keys.private_path.display().to_string(),
            ),
        ]);
        for (k, v) in extra_env {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        // Port 0: each service binds a free port itself and logs it (a port picked here
        // and bound later could be taken meanwhile by a test running in parallel).
        let ports: Vec<(&'static str, u16)> = SERVICES.iter().map(|s| (*s, 0)).collect();
        let gateway_port = free_port();
        let mut stack = Stack {
            gateway: Client::new(format!("http://127.0.0.1:{gateway_port}")),
            database,
            redis,
            rabbit,
            ports,
            gateway_port,
            dir,
            env,
            children: Vec::new(),
        };
        for service in SERVICES {
            stack.start_service(service);
        }
        for service in SERVICES {
            let port = stack.bound_port(service).await;
            if let Some(entry) = stack.ports.iter_mut().find(|(s, _)| *s == service) {
                entry.1 = port;
            }
        }
        stack.start_gateway();
        stack.wait_ready().await;
        stack
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
        let mut command = Command::new(bin_dir().join(service));
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
            .envs(extra_env.iter().copied())
            .env("LOG_LEVEL", "warn");
        command.output().expect("run service CLI")
    }

    /// Starts a service on its known port, or on a port of its own choosing the first
    /// time (see [`Self::bound_port`]).
    pub fn start_service(&mut self, service: &str) {
        let log = std::fs::File::create(self.dir.join(format!("{service}.log"))).expect("log file");
        let child = Command::new(bin_dir().join(service))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("APP_PORT", self.port(service).to_string())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start service");
        self.children.push((service.to_owned(), child));
    }

    /// Kills a service (SIGKILL), as a crash would.
    pub fn kill_service(&mut self, service: &str) {
        if let Some(index) = self.children.iter().position(|(name, _)| name == service) {
            let (_, mut child) = self.children.remove(index);
            let _ = child.kill();
            let _ = child.wait();
        }
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

    fn start_gateway(&mut self) {
        let root = workspace_root();
        let nginx_dir = self.dir.join("nginx");
        let variables = [
            ("GATEWAY_PORT", self.gateway_port.to_string()),
            ("GATEWAY_RUN_DIR", nginx_dir.display().to_string()),
            (
                "GATEWAY_ACCESS_LOG",
                self.dir.join("gateway.log").display().to_string(),
            ),
            (
                "AUTH_UPSTREAM",
                format!("127.0.0.1:{}", self.port("auth-service")),
            ),
            (
                "CATALOG_UPSTREAM",
                format!("127.0.0.1:{}", self.port("catalog-service")),
            ),
            (
                "PURCHASE_UPSTREAM",
                format!("127.0.0.1:{}", self.port("purchase-service")),
            ),
        ];
        for (template, output) in [
            ("gateway.conf.template", "gateway.conf"),
            ("nginx.conf.template", "nginx.conf"),
        ] {
            let mut text = std::fs::read_to_string(root.join("deploy/nginx").join(template))
                .expect("gateway template");
            for (name, value) in &variables {
                text = text.replace(&format!("${{{name}}}"), value);
            }
            std::fs::write(nginx_dir.join(output), text).expect("render gateway config");
        }
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&nginx_dir)
            .arg("-c")
            .arg(nginx_dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (scripts/test installs it)");
        self.children.push(("gateway".into(), child));
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for (service, port) in &self.ports {
            let client = Client::new(format!("http://127.0.0.1:{port}"));
            loop {
                if let Some(status) = client.try_get_status("/readyz").await
                    && status == 200
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{service} never became ready; log: {}",
                    self.log(service)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        loop {
            if self.gateway.try_get_status("/healthz").await == Some(200) {
                break;
            }
            assert!(Instant::now() < deadline, "the gateway never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A service's log so far, for failure messages.
    pub fn log(&self, service: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{service}.log"))).unwrap_or_default()
    }
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
