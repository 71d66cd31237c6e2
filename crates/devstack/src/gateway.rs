//! The gateway: nginx configured from `deploy/nginx/*.template`, the same templates the
//! nginx image renders in docker-compose. Only the templates' own `${NAME}` variables are
//! replaced (as `envsubst` with a variable list does), so nginx's `$variables` stay.
//! Everything nginx writes lives under one directory (`nginx -p`), so several gateways
//! run side by side.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The templates, relative to the repository root, and the files they become.
pub const TEMPLATES: [(&str, &str); 2] = [
    ("deploy/nginx/gateway.conf.template", "gateway.conf"),
    ("deploy/nginx/nginx.conf.template", "nginx.conf"),
];

/// The gateway's upstream variables and the service whose instances each lists.
pub const UPSTREAMS: [(&str, &str); 3] = [
    ("AUTH_SERVERS", "auth-service"),
    ("CATALOG_SERVERS", "catalog-service"),
    ("PURCHASE_SERVERS", "purchase-service"),
];

/// An upstream's `server` lines for instances on 127.0.0.1 at `ports`.
pub fn server_lines(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|port| format!("server 127.0.0.1:{port};"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The buyer's page the gateway serves at `/` (`GATEWAY_WEB_ROOT`), relative to the
/// repository root.
pub const WEB_DIR: &str = "deploy/web";

/// The address the native and test gateways connect to the services from
/// (`proxy_bind`): the one peer the services' `TRUSTED_PROXIES` names. Every 127/8
/// address is this machine's loopback, so a local process that reaches a service's port
/// directly comes from 127.0.0.1 and its `X-Forwarded-For` is not believed.
pub const PROXY_BIND: &str = "127.0.0.2";

/// One gateway: where it listens, where it keeps its files, where it logs requests.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub port: u16,
    /// nginx's prefix directory: configuration, pid file, error log, temporary files.
    pub dir: PathBuf,
    /// The JSON access log.
    pub access_log: PathBuf,
}

impl Gateway {
    /// The templates' variables for upstreams on 127.0.0.1, each listing every port of
    /// `ports_of(service)` (the service's instances), and the buyer's page from the
    /// repository at `root`.
    pub fn variables(
        &self,
        root: &Path,
        ports_of: impl Fn(&str) -> Vec<u16>,
    ) -> Vec<(&'static str, String)> {
        let mut variables = vec![
            ("GATEWAY_PORT", self.port.to_string()),
            ("GATEWAY_RUN_DIR", self.dir.display().to_string()),
            ("GATEWAY_ACCESS_LOG", self.access_log.display().to_string()),
            ("GATEWAY_PROXY_BIND", PROXY_BIND.to_owned()),
            ("GATEWAY_WEB_ROOT", root.join(WEB_DIR).display().to_string()),
            // Loopback, where the native and test clients come from, is exempt already.
            ("GATEWAY_UNLIMITED", String::new()),
        ];
        variables.extend(
            UPSTREAMS
                .iter()
                .map(|(name, service)| (*name, server_lines(&ports_of(service)))),
        );
        variables
    }

    /// Writes `nginx.conf` and `gateway.conf` into [`Self::dir`] from the templates
    /// under `root`, each upstream listing the ports of `ports_of(service)`.
    pub fn render(&self, root: &Path, ports_of: impl Fn(&str) -> Vec<u16>) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir.join("tmp"))?;
        if let Some(logs) = self.access_log.parent() {
            std::fs::create_dir_all(logs)?;
        }
        let variables = self.variables(root, ports_of);
        for (template, output) in TEMPLATES {
            let text = std::fs::read_to_string(root.join(template))
                .map_err(|e| std::io::Error::new(e.kind(), format!("reading {template}: {e}")))?;
            std::fs::write(self.dir.join(output), render_template(&text, &variables))?;
        }
        Ok(())
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.join("nginx.conf")
    }

    /// Written by nginx's master process once it runs.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("nginx.pid")
    }

    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    /// `nginx -p <dir> -c <dir>/nginx.conf` and then `args` (`-s reload`, `-g ...`).
    pub fn nginx(&self, args: &[&str]) -> Command {
        let mut command = Command::new(nginx_binary());
        command
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.config_file())
            .args(args);
        command
    }
}

/// Replaces each `${NAME}` of `variables` in `text`; anything else is left as written.
pub fn render_template(text: &str, variables: &[(&str, String)]) -> String {
    variables
        .iter()
        .fold(text.to_owned(), |text, (name, value)| {
            text.replace(&format!("${{{name}}}"), value)
        })
}

/// nginx's binary: the usual install places first (root's PATH may lack sbin), then PATH.
pub fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Gateway {
        Gateway {
            port: 18080,
            dir: PathBuf::from("/run/x/nginx"),
            access_log: PathBuf::from("/run/x/logs/gateway.log"),
        }
    }

    #[test]
    fn only_the_named_variables_are_replaced() {
        let rendered = render_template(
            "listen ${GATEWAY_PORT}; set $a $http_x; ${OTHER}",
            &[("GATEWAY_PORT", "80".into())],
        );
        assert_eq!(rendered, "listen 80; set $a $http_x; ${OTHER}");
    }

    #[test]
    fn the_repository_templates_render_completely() {
        let root = crate::workspace_root();
        let variables = gateway().variables(&root, |service| match service {
            "auth-service" => vec![18081],
            "catalog-service" => vec![18082],
            _ => vec![18083, 18183],
        });
        for (template, _) in TEMPLATES {
            let text = std::fs::read_to_string(root.join(template)).expect("template");
            let rendered = render_template(&text, &variables);
            assert!(
                !rendered.contains("${"),
                "{template} left a variable: {rendered}"
            );
            assert!(rendered.contains("$http_x_request_id") || template.contains("nginx.conf"));
        }
        let gateway_conf = render_template(
            &std::fs::read_to_string(root.join(TEMPLATES[0].0)).expect("template"),
            &variables,
        );
        for expected in [
            "server 127.0.0.1:18081;",
            "server 127.0.0.1:18082;",
            "server 127.0.0.1:18083; server 127.0.0.1:18183;",
            "least_conn;",
            "listen 18080 ",
            "access_log /run/x/logs/gateway.log ",
            "proxy_bind 127.0.0.2;",
        ] {
            assert!(gateway_conf.contains(expected), "missing {expected:?}");
        }
    }

    #[test]
    fn the_buyer_page_is_served_from_the_repositorys_web_directory() {
        let root = PathBuf::from("/src/flash-sale");
        let variables = gateway().variables(&root, |_| vec![18081]);
        let web_root: Vec<&str> = variables
            .iter()
            .filter(|(name, _)| *name == "GATEWAY_WEB_ROOT")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(web_root, ["/src/flash-sale/deploy/web"]);
        let template = std::fs::read_to_string(crate::workspace_root().join(TEMPLATES[0].0))
            .expect("template");
        let rendered = render_template(&template, &variables);
        assert_eq!(
            rendered
                .matches(r#"root "/src/flash-sale/deploy/web";"#)
                .count(),
            4,
            "/, /app.js, /api.js and /style.css are served from it"
        );
        for file in ["index.html", "app.js", "api.js", "style.css"] {
            let path = crate::workspace_root().join(WEB_DIR).join(file);
            assert!(path.is_file(), "{} is missing", path.display());
        }
    }

    #[test]
    fn the_gateway_retries_only_what_never_reached_a_service() {
        let template = std::fs::read_to_string(crate::workspace_root().join(TEMPLATES[0].0))
            .expect("template");
        let directives: Vec<&str> = template
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with("proxy_next_upstream"))
            .collect();
        assert_eq!(
            directives,
            [
                "proxy_next_upstream error timeout;",
                "proxy_next_upstream_tries 3;",
                "proxy_next_upstream_timeout 5s;"
            ],
            "retries are bounded, and a sent POST/PATCH is never replayed (no non_idempotent)"
        );
    }

    #[test]
    fn a_write_that_may_have_happened_is_never_answered_try_again() {
        let template = std::fs::read_to_string(crate::workspace_root().join(TEMPLATES[0].0))
            .expect("template");
        let lines: Vec<&str> = template.lines().map(str::trim).collect();
        for status in [502, 504] {
            let directive = format!("error_page {status} = $gateway_{status}_page;");
            assert!(lines.contains(&directive.as_str()), "{directive}");
        }
        let page: Vec<&str> = lines
            .iter()
            .skip_while(|line| **line != "location = /_gateway/outcome-unknown {")
            .take_while(|line| **line != "}")
            .copied()
            .collect();
        let page = page.join("\n");
        assert!(page.contains(r#""error_code":"OUTCOME_UNKNOWN""#), "{page}");
        assert!(page.contains("return 503 "), "{page}");
        assert!(
            !page.contains("Retry-After") && !page.contains("order_id"),
            "no Retry-After, and no order id (the gateway does not know it): {page}"
        );
    }

    #[test]
    fn rendering_writes_both_files_under_the_gateway_directory() {
        let dir = std::env::temp_dir().join(format!("devstack-gateway-{}", std::process::id()));
        let gateway = Gateway {
            port: 18080,
            dir: dir.join("nginx"),
            access_log: dir.join("logs/gateway.log"),
        };
        gateway
            .render(&crate::workspace_root(), |_| vec![18081])
            .expect("render");
        let nginx_conf = std::fs::read_to_string(gateway.config_file()).expect("nginx.conf");
        assert!(nginx_conf.contains(&format!("pid {};", gateway.pid_file().display())));
        assert!(gateway.dir.join("gateway.conf").exists());
        assert!(gateway.dir.join("tmp").is_dir());
        let _ = std::fs::remove_dir_all(dir);
    }
}
