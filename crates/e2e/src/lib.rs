//! The stack the end-to-end tests run against, through its gateway.
//!
//! By default a test starts its own ([`LocalStack`]): the four service binaries behind a
//! real nginx, on a fresh database, Redis key prefix and queue names. With
//! `E2E_BASE_URL` set, [`Stack::start`] starts nothing and the journeys run against that
//! gateway: a stack someone else started (`docker compose up`, `scripts/stack up`). What
//! a journey checks past the gateway it then reaches only through further variables
//! ([`Access`]); a check whose variable is not set is skipped with a note saying which
//! variable it needs, and so is a check no variable can make possible (killing a
//! service). Without `E2E_BASE_URL` nothing is skipped.

pub mod api;
mod local;

pub use devstack::{SERVICES, StockAccount, workspace_root};
pub use local::{LocalStack, free_port, service_binary};

use common::jwt::Role;
use common::redis::{Keyspace, SharedConnection};
use diesel_async::{AsyncConnection, AsyncMysqlConnection};
use std::path::PathBuf;
use std::process::{Command, Output};
use testkit::{Client, Response, note};

/// The variable naming the gateway of a stack to run against instead of starting one.
pub const BASE_URL: &str = "E2E_BASE_URL";

/// What a check needs past the gateway. A stack a test starts has all of it; a stack at
/// `E2E_BASE_URL` has what the variables named here say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The stack's MySQL: `E2E_DB_URL`.
    Mysql,
    /// The stack's Redis: `E2E_REDIS_URL`, and `E2E_REDIS_KEY_PREFIX` when the stack sets
    /// `REDIS_KEY_PREFIX`.
    Redis,
    /// A service's CLI: `E2E_CLI`, a command in which `{service}` stands for the
    /// service's name.
    Cli,
    /// The services' logs: `E2E_LOG_DIR`, holding `<service>.log`.
    Logs,
    /// A service's own port (its operational endpoints): `E2E_<SERVICE>_URL`, e.g.
    /// `E2E_CATALOG_SERVICE_URL`.
    Service(&'static str),
    /// The service processes themselves (to kill one): only a stack the test started.
    Processes,
    /// The payment provider's signing secret, to send webhooks:
    /// `E2E_PAYMENT_WEBHOOK_SECRET` (the stack's `PAYMENT_WEBHOOK_SECRET`).
    WebhookSecret,
}

/// The webhook signing secret of a stack a test starts.
pub const LOCAL_WEBHOOK_SECRET: &str = "whsec_e2e_secret";

impl Access {
    /// The variables that grant this access to a stack at `E2E_BASE_URL`, as a note
    /// names them.
    fn needs(self) -> String {
        match self {
            Access::Mysql => {
                "E2E_DB_URL (e.g. mysql://root@127.0.0.1:3306/flash_sale?prefer_socket=false)"
                    .into()
            }
            Access::Redis => "E2E_REDIS_URL (e.g. redis://127.0.0.1:6379/0)".into(),
            Access::Cli => "E2E_CLI (e.g. 'target/release/{service}' or \
                 'docker compose run --rm -T {service}')"
                .into(),
            Access::Logs => "E2E_LOG_DIR (e.g. run/logs)".into(),
            Access::Service(service) => service_url_variable(service),
            Access::Processes => {
                "a stack the test starts itself (run it without E2E_BASE_URL)".into()
            }
            Access::WebhookSecret => {
                "E2E_PAYMENT_WEBHOOK_SECRET (the stack's PAYMENT_WEBHOOK_SECRET)".into()
            }
        }
    }

    /// Whether a stack at `E2E_BASE_URL` grants it.
    fn granted(self) -> bool {
        match self {
            Access::Mysql => var("E2E_DB_URL").is_some(),
            Access::Redis => var("E2E_REDIS_URL").is_some(),
            Access::Cli => var("E2E_CLI").is_some(),
            Access::Logs => var("E2E_LOG_DIR").is_some(),
            Access::Service(service) => var(&service_url_variable(service)).is_some(),
            Access::Processes => false,
            Access::WebhookSecret => var("E2E_PAYMENT_WEBHOOK_SECRET").is_some(),
        }
    }
}

/// `E2E_CATALOG_SERVICE_URL` for `catalog-service`.
fn service_url_variable(service: &str) -> String {
    format!("E2E_{}_URL", service.to_uppercase().replace('-', "_"))
}

/// A variable that is set and not empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// A variable an access was granted by (see [`Stack::reaches`]).
fn granted_var(name: &str) -> String {
    var(name).unwrap_or_else(|| panic!("{name} is not set; ask Stack::reaches first"))
}

/// Skips a test that needs a stack of its own when `E2E_BASE_URL` names another; says so.
pub fn needs_own_stack(test: &str) -> bool {
    match var(BASE_URL) {
        Some(url) => {
            note(&format!(
                "{BASE_URL}={url}: skipped {test}: it needs a stack the test starts itself \
                 (run it without {BASE_URL})"
            ));
            true
        }
        None => false,
    }
}

enum Target {
    Local(Box<LocalStack>),
    /// The stack at this `E2E_BASE_URL`.
    External(String),
}

/// The stack a journey runs against, through `gateway`.
pub struct Stack {
    pub gateway: Client,
    /// Sets this test's accounts and request ids apart from every other test's and run's
    /// on a stack they share.
    tag: String,
    target: Target,
}

impl Stack {
    /// The stack at `E2E_BASE_URL` when it is set, else a fresh one of the test's own.
    pub async fn start() -> Stack {
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        match var(BASE_URL) {
            Some(url) => Stack {
                gateway: Client::new(url.trim_end_matches('/')),
                tag,
                target: Target::External(url),
            },
            None => {
                let local = LocalStack::start().await;
                Stack {
                    gateway: local.gateway.clone(),
                    tag,
                    target: Target::Local(Box::new(local)),
                }
            }
        }
    }

    /// An email of this test's own, `name-<tag>@example.com`.
    pub fn email(&self, name: &str) -> String {
        format!("{name}-{}@example.com", self.tag)
    }

    /// A value of this test's own, `name-<tag>` (a request id, an idempotency key).
    pub fn unique(&self, name: &str) -> String {
        format!("{name}-{}", self.tag)
    }

    /// Whether the stack grants every access `check` needs. A stack the test started
    /// does; for one at `E2E_BASE_URL`, a note says which variables the check needs when
    /// some are not set.
    pub fn reaches(&self, check: &str, needs: &[Access]) -> bool {
        let Target::External(url) = &self.target else {
            return true;
        };
        let missing: Vec<String> = needs
            .iter()
            .filter(|access| !access.granted())
            .map(|access| access.needs())
            .collect();
        if !missing.is_empty() {
            note(&format!(
                "{BASE_URL}={url}: skipped {check}: it needs {}",
                missing.join(" and ")
            ));
        }
        missing.is_empty()
    }

    fn local(&self) -> Option<&LocalStack> {
        match &self.target {
            Target::Local(local) => Some(local),
            Target::External(_) => None,
        }
    }

    pub async fn register(&self, name: &str, email: &str, password: &str) -> Response {
        api::register(&self.gateway, name, email, password).await
    }

    /// The payment provider's webhook paying `order_id`, signed now (ask
    /// [`Stack::reaches`] for [`Access::WebhookSecret`] first).
    pub async fn pay(&self, order_id: &str, payment_id: &str, amount: u64) -> Response {
        let secret = match &self.target {
            Target::Local(_) => LOCAL_WEBHOOK_SECRET.to_owned(),
            Target::External(_) => granted_var("E2E_PAYMENT_WEBHOOK_SECRET"),
        };
        crate::api::pay(&self.gateway, &secret, order_id, payment_id, amount).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        api::login(&self.gateway, email, password).await
    }

    /// An admin's token: of an admin created with the CLI on a stack the test started;
    /// on one at `E2E_BASE_URL`, of `E2E_ADMIN_EMAIL` / `E2E_ADMIN_PASSWORD`'s login, or
    /// signed with `E2E_JWT_PRIVATE_KEY_PATH`. `None` (with a note) when neither is set.
    pub async fn admin_token(&self, check: &str) -> Option<String> {
        let (email, password) = match (self.local(), var("E2E_ADMIN_EMAIL")) {
            (Some(local), _) => {
                let email = self.email("admin");
                local.create_admin(&email, "admin-password");
                (email, "admin-password".to_owned())
            }
            (None, Some(email)) => (email, var("E2E_ADMIN_PASSWORD").unwrap_or_default()),
            (None, None) => {
                if let Some(path) = var("E2E_JWT_PRIVATE_KEY_PATH") {
                    let pem = std::fs::read(workspace_root().join(&path))
                        .unwrap_or_else(|e| panic!("E2E_JWT_PRIVATE_KEY_PATH={path}: {e}"));
                    // No account has this id; admin operations only look at the role.
                    let token = testkit::token_signed_with(&pem, 999_999_999, Role::Admin);
                    return Some(token.expect("sign with E2E_JWT_PRIVATE_KEY_PATH"));
                }
                if let Target::External(url) = &self.target {
                    note(&format!(
                        "{BASE_URL}={url}: skipped {check}: it needs an admin, E2E_ADMIN_EMAIL \
                         and E2E_ADMIN_PASSWORD (e.g. the demo admin@example.com / password) \
                         or E2E_JWT_PRIVATE_KEY_PATH (e.g. run/keys/jwt_private.pem)"
                    ));
                }
                return None;
            }
        };
        let login = self.login(&email, &password).await;
        assert_eq!(login.status, 200, "the admin's login: {}", login.body);
        login.body["access_token"].as_str().map(str::to_owned)
    }

    /// The stack's MySQL database URL ([`Access::Mysql`]).
    pub fn mysql_url(&self) -> String {
        match self.local() {
            Some(local) => local.database.url(),
            None => granted_var("E2E_DB_URL"),
        }
    }

    pub async fn mysql(&self) -> AsyncMysqlConnection {
        AsyncMysqlConnection::establish(&self.mysql_url())
            .await
            .expect("connect to the stack's MySQL")
    }

    /// A connection to the stack's Redis ([`Access::Redis`]).
    pub async fn redis(&self) -> SharedConnection {
        match self.local() {
            Some(local) => local.redis.connection().await,
            None => SharedConnection::Single(
                redis::aio::ConnectionManager::new(
                    redis::Client::open(granted_var("E2E_REDIS_URL")).expect("E2E_REDIS_URL"),
                )
                .await
                .expect("connect to the stack's Redis"),
            ),
        }
    }

    /// The Redis key prefix the stack's services use.
    pub fn keyspace(&self) -> Keyspace {
        match self.local() {
            Some(local) => local.keyspace(),
            None => Keyspace::new(var("E2E_REDIS_KEY_PREFIX").unwrap_or_default()),
        }
    }

    /// The item's stock in MySQL and Redis, for the conservation check
    /// ([`Access::Mysql`] and [`Access::Redis`]).
    pub async fn stock_account(&self, item_id: u64, initial: u64) -> StockAccount {
        let (mut mysql, mut redis) = (self.mysql().await, self.redis().await);
        StockAccount::measure(&mut mysql, &mut redis, &self.keyspace(), item_id, initial)
            .await
            .expect("read the item's stock")
    }

    /// Runs a service's CLI subcommand with the stack's environment ([`Access::Cli`]).
    pub fn run_cli(&self, service: &str, args: &[&str]) -> Output {
        if let Some(local) = self.local() {
            return local.run_cli(service, args, &[]);
        }
        let template = granted_var("E2E_CLI");
        let mut words = template
            .split_whitespace()
            .map(|w| w.replace("{service}", service));
        let program = words.next().expect("E2E_CLI names a command");
        Command::new(program)
            .args(words)
            .args(args)
            .current_dir(workspace_root())
            .env("LOG_LEVEL", "warn")
            .output()
            .unwrap_or_else(|e| panic!("run E2E_CLI={template}: {e}"))
    }

    /// A service's log so far ([`Access::Logs`]).
    pub fn log(&self, service: &str) -> String {
        match self.local() {
            Some(local) => local.log(service),
            None => {
                let path = PathBuf::from(granted_var("E2E_LOG_DIR")).join(format!("{service}.log"));
                std::fs::read_to_string(workspace_root().join(&path))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            }
        }
    }

    /// A client for a service's own port ([`Access::Service`]).
    pub fn service(&self, service: &'static str) -> Client {
        match self.local() {
            Some(local) => Client::new(format!("http://127.0.0.1:{}", local.port(service))),
            None => Client::new(granted_var(&service_url_variable(service))),
        }
    }

    /// Kills a service (SIGKILL), as a crash would ([`Access::Processes`]).
    pub fn kill_service(&mut self, service: &str) {
        match &mut self.target {
            Target::Local(local) => local.kill_service(service),
            Target::External(_) => panic!("ask Stack::reaches first"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_url_variable_is_named_after_the_service() {
        assert_eq!(
            service_url_variable("catalog-service"),
            "E2E_CATALOG_SERVICE_URL"
        );
        assert_eq!(service_url_variable("stock-writer"), "E2E_STOCK_WRITER_URL");
    }

    #[test]
    fn every_access_but_the_processes_names_the_variable_that_grants_it() {
        for (access, variable) in [
            (Access::Mysql, "E2E_DB_URL"),
            (Access::Redis, "E2E_REDIS_URL"),
            (Access::Cli, "E2E_CLI"),
            (Access::Logs, "E2E_LOG_DIR"),
            (
                Access::Service("catalog-service"),
                "E2E_CATALOG_SERVICE_URL",
            ),
        ] {
            assert!(access.needs().starts_with(variable), "{access:?}");
        }
        assert!(!Access::Processes.granted());
    }
}
