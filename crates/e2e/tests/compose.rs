//! docker-compose.yaml and the native run (deploy/local.env) must configure the services
//! with the same variables, and only variables the code reads (common::config::ENV_VARS):
//! Docker does not run on the development machines, so this is what keeps the two from
//! drifting apart silently.

use e2e::{SERVICES, workspace_root};
use std::collections::BTreeSet;
use yaml_rust2::{Yaml, YamlLoader};

fn code_reads() -> BTreeSet<&'static str> {
    common::config::ENV_VARS
        .iter()
        .map(|v| v.name.as_str())
        .collect()
}

fn local_env() -> BTreeSet<String> {
    std::fs::read_to_string(workspace_root().join("deploy/local.env"))
        .expect("deploy/local.env")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('=').next().unwrap_or_default().to_owned())
        .collect()
}

/// A mapping with YAML merge keys (`<<: *anchor`) applied.
fn merged(mapping: &Yaml) -> Vec<(String, Yaml)> {
    let mut entries = Vec::new();
    if let Yaml::Hash(hash) = mapping {
        for (key, value) in hash {
            if key.as_str() == Some("<<") {
                let parents = match value {
                    Yaml::Array(list) => list.clone(),
                    other => vec![other.clone()],
                };
                for parent in parents {
                    entries.extend(merged(&parent));
                }
            } else if let Some(key) = key.as_str() {
                entries.retain(|(k, _)| k != key);
                entries.push((key.to_owned(), value.clone()));
            }
        }
    }
    entries
}

fn environment(service: &Yaml) -> BTreeSet<String> {
    let service: Vec<_> = merged(service);
    let Some((_, environment)) = service.iter().find(|(k, _)| k == "environment") else {
        return BTreeSet::new();
    };
    match environment {
        Yaml::Array(list) => list
            .iter()
            .filter_map(Yaml::as_str)
            .map(|entry| entry.split('=').next().unwrap_or_default().to_owned())
            .collect(),
        mapping => merged(mapping).into_iter().map(|(k, _)| k).collect(),
    }
}

#[test]
fn compose_and_the_native_run_set_the_same_variables_and_only_ones_the_code_reads() {
    let text = std::fs::read_to_string(workspace_root().join("docker-compose.yaml"))
        .expect("docker-compose.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("docker-compose.yaml is YAML");
    let services = &docs[0]["services"];
    let reads = code_reads();

    for name in local_env() {
        assert!(
            reads.contains(name.as_str()),
            "deploy/local.env sets {name}, which no service reads"
        );
    }
    let mut union = BTreeSet::new();
    for service in SERVICES {
        let definition = &services[service];
        assert!(
            !definition.is_badvalue(),
            "docker-compose.yaml has no service {service}"
        );
        let env = environment(definition);
        for name in &env {
            assert!(
                reads.contains(name.as_str()),
                "compose sets {name} for {service}, which the code never reads"
            );
        }
        for name in local_env() {
            let per_service = matches!(
                name.as_str(),
                "JWT_PRIVATE_KEY_PATH"
                    | "PURCHASE_STRATEGY"
                    | "PAYMENT_WEBHOOK_SECRET"
                    | "INSTANCE_HEARTBEAT_MS"
            );
            assert!(
                per_service || env.contains(&name),
                "{service} in compose lacks {name}, which the native run sets"
            );
        }
        assert!(
            env.contains("APP_PORT") && env.contains("APP_HOST"),
            "{service} must set APP_HOST and APP_PORT"
        );
        union.extend(env);
    }
    for name in local_env() {
        assert!(union.contains(&name), "no compose service sets {name}");
    }
    let auth = environment(&services["auth-service"]);
    assert!(
        auth.contains("JWT_PRIVATE_KEY_PATH"),
        "auth-service signs tokens"
    );
    for service in ["catalog-service", "purchase-service", "stock-writer"] {
        assert!(
            !environment(&services[service]).contains("JWT_PRIVATE_KEY_PATH"),
            "only auth-service holds the private key"
        );
    }
    let purchase = environment(&services["purchase-service"]);
    assert!(purchase.contains("PURCHASE_STRATEGY"));
}

#[test]
fn every_service_image_is_built_from_the_one_recipe_with_its_own_name() {
    let text = std::fs::read_to_string(workspace_root().join("docker-compose.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let recipe = "deploy/docker/service.Dockerfile";
    assert!(workspace_root().join(recipe).exists());
    for service in SERVICES {
        let build = &docs[0]["services"][service]["build"];
        assert_eq!(build["dockerfile"].as_str(), Some(recipe), "{service}");
        assert_eq!(
            build["args"]["SERVICE"].as_str(),
            Some(service),
            "{service}"
        );
    }
}

#[test]
fn the_gateway_in_compose_renders_the_same_template_as_the_native_run() {
    let text = std::fs::read_to_string(workspace_root().join("docker-compose.yaml")).unwrap();
    assert!(
        text.contains("deploy/nginx/gateway.conf.template"),
        "compose must mount the gateway template"
    );
    let template =
        std::fs::read_to_string(workspace_root().join("deploy/nginx/gateway.conf.template"))
            .unwrap();
    for variable in [
        "GATEWAY_PORT",
        "AUTH_SERVERS",
        "CATALOG_SERVERS",
        "PURCHASE_SERVERS",
        "GATEWAY_ACCESS_LOG",
        "GATEWAY_PROXY_BIND",
        "GATEWAY_WEB_ROOT",
        "GATEWAY_UNLIMITED",
    ] {
        assert!(
            template.contains(&format!("${{{variable}}}")),
            "template lacks {variable}"
        );
        assert!(
            text.contains(variable),
            "compose does not set {variable} for the gateway"
        );
    }
}

/// Every `${NAME...}` reference in `text`: the name and the whole expression.
fn references(text: &str) -> Vec<(String, String)> {
    text.match_indices("${")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            let end = rest.find('}')?;
            let expression = &rest[..end];
            let name_end = expression
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expression.len());
            Some((expression[..name_end].to_owned(), expression.to_owned()))
        })
        .collect()
}

#[test]
fn the_gateway_in_compose_serves_the_buyer_page_from_the_mounted_web_directory() {
    let text = std::fs::read_to_string(workspace_root().join("docker-compose.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let gateway = &docs[0]["services"]["gateway"];
    let web_root = gateway["environment"]["GATEWAY_WEB_ROOT"]
        .as_str()
        .expect("the gateway sets GATEWAY_WEB_ROOT");
    let mounts: Vec<&str> = gateway["volumes"]
        .as_vec()
        .expect("the gateway's volumes")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let mount = format!("./{}:{web_root}:ro", devstack::gateway::WEB_DIR);
    assert!(
        mounts.contains(&mount.as_str()),
        "compose mounts {mount}: {mounts:?}"
    );
}

#[test]
fn no_secret_has_a_default_a_production_deployment_could_fall_into() {
    let text = std::fs::read_to_string(workspace_root().join("docker-compose.yaml")).unwrap();
    let example =
        std::fs::read_to_string(workspace_root().join("deploy/docker.env.example")).unwrap();
    let secret = |name: &str| name.ends_with("PASSWORD") || name.ends_with("SECRET");
    let mut secrets = BTreeSet::new();
    for (name, expression) in references(&text).into_iter().filter(|(n, _)| secret(n)) {
        let message = expression
            .strip_prefix(&format!("{name}:?"))
            .unwrap_or_else(|| panic!("compose gives ${{{expression}}} a default or none"));
        assert!(
            message.contains(&name) && message.contains("deploy/docker.env.example"),
            "the failure for {name} names it and where to set it: {message}"
        );
        secrets.insert(name);
    }
    for required in [
        "DB_PASSWORD",
        "RABBITMQ_PASSWORD",
        "PAYMENT_WEBHOOK_SECRET",
        "GRAFANA_ADMIN_PASSWORD",
    ] {
        assert!(
            secrets.contains(required),
            "compose does not require {required}"
        );
    }
    let example_values: Vec<(&str, &str)> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    for name in &secrets {
        let listed = example_values.iter().find(|(n, _)| n == name);
        assert_eq!(
            listed.map(|(_, value)| value.trim()),
            Some(""),
            "deploy/docker.env.example lists {name}, empty, so that compose stops until it is filled in"
        );
    }
    assert!(example_values.contains(&("APP_ENV", "production")));
    assert!(
        text.contains("APP_ENV: ${APP_ENV:-production}"),
        "a compose deployment is production unless its env file says otherwise"
    );
}

#[test]
fn the_services_believe_forwarded_headers_from_the_gateways_fixed_address_alone() {
    let text = std::fs::read_to_string(workspace_root().join("docker-compose.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let services = &docs[0]["services"];
    let address = services["gateway"]["networks"]["default"]["ipv4_address"]
        .as_str()
        .expect("the gateway has a fixed address");
    assert_eq!(
        services["gateway"]["environment"]["GATEWAY_PROXY_BIND"].as_str(),
        Some(address),
        "the gateway connects to the services from it"
    );
    for service in SERVICES {
        let env = merged(&services[service])
            .into_iter()
            .find(|(k, _)| k == "environment")
            .map(|(_, env)| merged(&env))
            .unwrap_or_default();
        let trusted = env
            .iter()
            .find(|(k, _)| k == "TRUSTED_PROXIES")
            .and_then(|(_, v)| v.as_str().map(str::to_owned));
        assert_eq!(
            trusted,
            Some(format!("{address}/32")),
            "{service} trusts only the gateway"
        );
    }
}

#[test]
fn the_services_scale_in_compose_and_the_gateway_balances_over_every_replica() {
    let text = std::fs::read_to_string(workspace_root().join("docker-compose.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("docker-compose.yaml is YAML");
    let services = &docs[0]["services"];
    for service in SERVICES {
        let definition = merged(&services[service]);
        for fixed in ["container_name", "ports"] {
            assert!(
                definition.iter().all(|(key, _)| key != fixed),
                "{service} sets {fixed}: `docker compose up --scale {service}=3` would clash"
            );
        }
    }
    let gateway = merged(&services["gateway"]);
    let environment = gateway
        .iter()
        .find(|(key, _)| key == "environment")
        .map(|(_, value)| merged(value))
        .expect("the gateway's environment");
    for (variable, service, port) in [
        ("AUTH_SERVERS", "auth-service", 8081),
        ("CATALOG_SERVERS", "catalog-service", 8082),
        ("PURCHASE_SERVERS", "purchase-service", 8083),
    ] {
        let value = environment
            .iter()
            .find(|(key, _)| key == variable)
            .and_then(|(_, value)| value.as_str())
            .unwrap_or_default();
        assert_eq!(
            value,
            format!("server {service}:{port};"),
            "{variable} names the service, which nginx resolves to every replica"
        );
    }
}
