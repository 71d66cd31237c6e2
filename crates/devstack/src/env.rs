//! The environment a service process is started with, on top of the one it inherits.
//! The native stack's comes from `deploy/local.env`, where a variable the caller already
//! set wins (`PURCHASE_STRATEGY=lock scripts/stack up`); an end-to-end test's names its
//! own database, key prefix and queue names. Either way the process is built here.

use std::path::Path;
use std::process::Command;

/// The file the native stack's environment comes from, relative to the repository root.
pub const NATIVE_ENV_FILE: &str = "deploy/local.env";

/// Variables holding paths, made absolute so that the services find their keys whatever
/// their working directory.
const PATH_VARIABLES: [&str; 2] = ["JWT_PUBLIC_KEY_PATH", "JWT_PRIVATE_KEY_PATH"];

/// Variables in order; setting one again replaces it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEnv {
    vars: Vec<(String, String)>,
}

impl ServiceEnv {
    pub fn new() -> Self {
        Self::default()
    }

    /// The native stack's environment: `deploy/local.env` under `root`, each variable
    /// taking the caller's value when `caller` has one, key paths made absolute.
    pub fn native(root: &Path, caller: impl Fn(&str) -> Option<String>) -> std::io::Result<Self> {
        let path = root.join(NATIVE_ENV_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))
        })?;
        Ok(Self::from_file_text(&text, caller).with_absolute_paths(root))
    }

    /// The variables of an env file's text, each taking the caller's value when
    /// `caller` has one.
    pub fn from_file_text(text: &str, caller: impl Fn(&str) -> Option<String>) -> Self {
        let mut env = Self::new();
        for (name, value) in parse_env_file(text) {
            let value = caller(&name).unwrap_or(value);
            env.set(name, value);
        }
        env
    }

    fn with_absolute_paths(mut self, root: &Path) -> Self {
        for name in PATH_VARIABLES {
            if let Some(value) = self.get(name) {
                let absolute = root.join(value).display().to_string();
                self.set(name, absolute);
            }
        }
        self
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value.into()));
        self
    }

    /// This environment with one variable set (or replaced).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The command that runs a service binary with this environment (a subcommand
    /// with `args`, or the server when there are none).
    pub fn command(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        command.envs(self.vars());
        command
    }

    /// The command that serves `service` from `bin_dir` on `port` (0: a free port the
    /// service picks and logs).
    pub fn service_command(&self, bin_dir: &Path, service: &str, port: u16) -> Command {
        let mut command = self.command(&bin_dir.join(service));
        command.env("APP_PORT", port.to_string());
        command
    }
}

/// `NAME=value` lines; blank lines and `#` comments are skipped, the value is taken as
/// written (as the shell's `export "NAME=value"` does).
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| {
            let line = line.trim_start();
            !line.is_empty() && !line.starts_with('#')
        })
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n\nAPP_ENV=local\nDB_PASSWORD=\nPURCHASE_STRATEGY=lua\n  # indented comment\nJWT_PRIVATE_KEY_PATH=run/keys/jwt_private.pem\n";

    #[test]
    fn the_caller_wins_over_the_file() {
        let env = ServiceEnv::from_file_text(FILE, |name| {
            (name == "PURCHASE_STRATEGY").then(|| "lock".to_owned())
        });
        assert_eq!(env.get("PURCHASE_STRATEGY"), Some("lock"));
        assert_eq!(env.get("APP_ENV"), Some("local"));
        assert_eq!(env.get("DB_PASSWORD"), Some(""));
        assert_eq!(
            env.vars().count(),
            4,
            "comments and blank lines are no variables"
        );
    }

    #[test]
    fn key_paths_become_absolute_and_absolute_ones_stay() {
        let root = Path::new("/repo");
        let env = ServiceEnv::from_file_text(FILE, |_| None).with_absolute_paths(root);
        assert_eq!(
            env.get("JWT_PRIVATE_KEY_PATH"),
            Some("/repo/run/keys/jwt_private.pem")
        );
        let env = ServiceEnv::from_file_text(FILE, |name| {
            (name == "JWT_PRIVATE_KEY_PATH").then(|| "/keys/private.pem".to_owned())
        })
        .with_absolute_paths(root);
        assert_eq!(env.get("JWT_PRIVATE_KEY_PATH"), Some("/keys/private.pem"));
    }

    #[test]
    fn setting_a_variable_again_replaces_it() {
        let env = ServiceEnv::new()
            .with("RABBITMQ_PORT", "5672")
            .with("A", "1")
            .with("RABBITMQ_PORT", "5679");
        assert_eq!(
            env.vars().collect::<Vec<_>>(),
            [("A", "1"), ("RABBITMQ_PORT", "5679")]
        );
    }

    #[test]
    fn a_service_command_carries_the_environment_and_its_port() {
        let command = ServiceEnv::new()
            .with("APP_ENV", "testing")
            .service_command(Path::new("/bin"), "auth-service", 8081);
        assert_eq!(command.get_program(), "/bin/auth-service");
        let envs: Vec<_> = command
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        assert!(envs.contains(&("APP_ENV".into(), Some("testing".into()))));
        assert!(envs.contains(&("APP_PORT".into(), Some("8081".into()))));
    }

    #[test]
    fn the_repository_env_file_parses() {
        let env = ServiceEnv::native(&crate::workspace_root(), |_| None).expect("local.env");
        assert_eq!(env.get("APP_ENV"), Some("local"));
        assert!(
            env.get("JWT_PUBLIC_KEY_PATH")
                .is_some_and(|p| Path::new(p).is_absolute())
        );
    }
}
