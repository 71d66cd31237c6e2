//! With `APP_ENV=production` a service binary refuses to start on a secret a deployment
//! could fall into: a development value this repository documents (deploy/local.env's
//! webhook secret, compose's former `secret` database password) or one too short to be
//! a secret. Each case runs the real binary as an operator would, with only the
//! environment given here, and sees it exit non-zero naming the variable.

use e2e::{SERVICES, service_binary, workspace_root};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// 64 hex digits, as `openssl rand -hex 32` makes.
const STRONG: &str = "3f9a0c4e7b1d52a86c0e9f3b7a1d4c6e8b2f0a5c7e9d1b3f5a7c9e0b2d4f6a8c";

/// Runs `service` with exactly `env` (plus PATH) in an empty directory (no `.env` to
/// pick up) and waits for it to exit; a service still running after 30 s started, which
/// is a failure here.
fn run_in_production(service: &str, env: &[(&str, &str)]) -> Output {
    let dir = std::env::temp_dir().join(format!("production-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("an empty working directory");
    let keys = testkit::keys();
    let mut child = Command::new(service_binary(service))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "production")
        .env("APP_PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("JWT_PUBLIC_KEY_PATH", &keys.public_path)
        .env("JWT_PRIVATE_KEY_PATH", &keys.private_path)
        .envs(env.iter().copied())
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the service binary");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("poll the service").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("its output");
            let _ = std::fs::remove_dir_all(&dir);
            panic!(
                "{service} started in production with {env:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("its output");
    let _ = std::fs::remove_dir_all(&dir);
    output
}

fn refused(output: &Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "exited 0; stderr: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    stderr
}

/// deploy/local.env's value of `name`, the development value the docs print.
fn local_env(name: &str) -> String {
    let text = std::fs::read_to_string(workspace_root().join("deploy/local.env"))
        .expect("deploy/local.env");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("deploy/local.env sets {name}"))
        .to_owned()
}

#[test]
fn purchase_service_refuses_the_development_webhook_secret_in_production() {
    let development = local_env("PAYMENT_WEBHOOK_SECRET");
    let output = run_in_production(
        "purchase-service",
        &[
            ("DB_PASSWORD", STRONG),
            ("RABBITMQ_PASSWORD", STRONG),
            ("PAYMENT_WEBHOOK_SECRET", &development),
        ],
    );
    let stderr = refused(
        &output,
        "PAYMENT_WEBHOOK_SECRET is a development value documented in this repository",
    );
    assert!(
        !stderr.contains(&development),
        "the secret is not echoed: {stderr}"
    );

    let output = run_in_production(
        "purchase-service",
        &[
            ("DB_PASSWORD", STRONG),
            ("RABBITMQ_PASSWORD", STRONG),
            ("PAYMENT_WEBHOOK_SECRET", "whsec_0123456789"),
        ],
    );
    refused(&output, "PAYMENT_WEBHOOK_SECRET is 16 bytes, too short");
}

#[test]
fn every_service_refuses_development_or_short_passwords_in_production() {
    for service in SERVICES {
        let output = run_in_production(
            service,
            &[
                ("DB_PASSWORD", "secret"),
                ("RABBITMQ_PASSWORD", "short-password"),
                ("PAYMENT_WEBHOOK_SECRET", STRONG),
            ],
        );
        let stderr = refused(&output, "DB_PASSWORD is a development value");
        assert!(
            stderr.contains("RABBITMQ_PASSWORD is 14 bytes, too short"),
            "{service}: {stderr}"
        );
    }
}
