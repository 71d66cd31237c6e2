//! schemathesis, with every check, against the live gateway and proto-docs/openapi.json:
//! generated valid and invalid requests for every public operation, as an ordinary user,
//! another user and an admin (crates/e2e/schemathesis/). The contract holds when it
//! reports no failure. Its output is kept in `target/schemathesis/` and `scripts/test`
//! prints the summary, since cargo hides a passing test's output. It needs a stack of its
//! own, so under `E2E_BASE_URL` it is skipped with a note.

use e2e::{LocalStack, api, workspace_root};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The schemathesis executable: `SCHEMATHESIS`, else the virtualenv `scripts/test` makes.
fn schemathesis_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    let venv = cache.join("flash-sale/schemathesis-venv/bin/schemathesis");
    assert!(
        venv.exists(),
        "schemathesis is not installed: run scripts/test (it creates {}), or set SCHEMATHESIS \
         to a schemathesis executable",
        venv.display()
    );
    venv
}

/// `target/schemathesis/`, where the run's output and summary are kept.
fn report_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf();
    let dir = target.join("schemathesis");
    std::fs::create_dir_all(&dir).expect("report directory");
    dir
}

/// The accounts of crates/e2e/schemathesis/wfc-auth.json, an item on sale and an order
/// of each user, so that reads find something and peers have objects to hide.
async fn seed(stack: &LocalStack) {
    stack.create_admin("root@example.com", "root-password");
    let admin =
        api::token_of(&api::login(&stack.gateway, "root@example.com", "root-password").await);
    let ann = api::registered_token(
        &api::register(&stack.gateway, "Ann", "ann@example.com", "ann-password").await,
    );
    let bob = api::registered_token(
        &api::register(&stack.gateway, "Bob", "bob@example.com", "bob-password").await,
    );
    let lamp = json!({"name": "Lamp", "description": "bright", "price": 1500, "stock": 100000});
    let id = api::create_item(&stack.gateway, &admin, &lamp).await;
    for buyer in [&ann, &bob] {
        let bought = api::purchase(&stack.gateway, buyer, id, 1).await;
        assert_eq!(bought.status, 200, "{}", bought.body);
    }
}

/// The last lines of schemathesis's output, from its summary banner on.
fn summary_of(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines
        .iter()
        .rposition(|line| line.contains("SUMMARY"))
        .unwrap_or(lines.len().saturating_sub(30));
    lines[start..].join("\n")
}

struct Run {
    passed: bool,
    output: String,
    summary: String,
}

/// One `schemathesis run` of proto-docs/openapi.json against `url` with a config of
/// crates/e2e/schemathesis/; its output is kept as `target/schemathesis/<name>.txt`.
fn run_schemathesis(stack: &LocalStack, name: &str, config: &str, url: &str) -> Run {
    let binary = schemathesis_binary();
    let configs = workspace_root().join("crates/e2e/schemathesis");
    let reports = report_dir();
    let mut command = Command::new(&binary);
    command
        .current_dir(&stack.dir)
        .env("SCHEMATHESIS_WFC_AUTH", configs.join("wfc-auth.json"))
        .arg("--config-file")
        .arg(configs.join(config))
        .arg("--no-color")
        .arg("run")
        .arg(workspace_root().join("proto-docs/openapi.json"))
        .args(["--url", url])
        .arg("--report=junit")
        .arg("--report-junit-path")
        .arg(reports.join(format!("{name}.junit.xml")));
    let command_line = format!("{command:?}");
    let started = Instant::now();
    let output = command.output().unwrap_or_else(|error| {
        panic!(
            "could not run {} ({error}); run scripts/test to install schemathesis",
            binary.display()
        )
    });
    let elapsed = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(reports.join(format!("{name}.txt")), &text).expect("write output");
    let summary = format!(
        "schemathesis against {name} in {:.0} s: {command_line}\n{}",
        elapsed.as_secs_f64(),
        summary_of(&text)
    );
    Run {
        passed: output.status.success(),
        output: text,
        summary,
    }
}

#[actix_web::test]
async fn schemathesis_finds_no_failure_with_every_check() {
    // Its accounts are fixed (wfc-auth.json) and it fuzzes a service's own port too.
    if e2e::needs_own_stack("schemathesis") {
        return;
    }
    let version = Command::new(schemathesis_binary())
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    // The fuzzer fails hundreds of logins on purpose, from one address and with the
    // emails it has seen; the throttle would then refuse the accounts' own logins too.
    // It registers hundreds of accounts from that address as well.
    let stack = LocalStack::start_with(&[
        ("LOGIN_MAX_ATTEMPTS", "1000000"),
        ("LOGIN_MAX_ATTEMPTS_PER_ADDRESS", "1000000"),
        ("LOGIN_MAX_ATTEMPTS_PER_EMAIL", "1000000"),
        ("REGISTER_MAX_PER_ADDRESS", "1000000"),
    ])
    .await;
    seed(&stack).await;

    let gateway = format!("http://127.0.0.1:{}", stack.gateway_port);
    let service = format!("http://127.0.0.1:{}", stack.port("catalog-service"));
    let runs = [
        run_schemathesis(&stack, "gateway", "gateway.toml", &gateway),
        run_schemathesis(&stack, "catalog-service", "service.toml", &service),
    ];
    let summary = format!(
        "{version}\n{}\n",
        runs.iter()
            .map(|run| run.summary.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    std::fs::write(report_dir().join("summary.txt"), &summary).expect("write summary");
    for service in e2e::SERVICES {
        std::fs::write(
            report_dir().join(format!("{service}.log")),
            stack.log(service),
        )
        .expect("keep the service log");
    }
    eprintln!("{summary}");
    for run in &runs {
        assert!(
            run.passed,
            "schemathesis reported failures:\n{}",
            run.output
        );
    }
}
