//! The monitoring configuration (deploy/prometheus, deploy/grafana) checked against the
//! running code: every metric the alert rules and the Grafana dashboards use must be one
//! the services export, or an alert would never fire and a panel would stay empty, and
//! nobody would notice until the sale it was meant for. Also: Prometheus scrapes every
//! service and loads every rules file, and the dashboards query the provisioned data
//! source. (`promtool check config` / `check rules` in scripts/test check the syntax.)

use e2e::{Access, SERVICES, Stack, api, workspace_root};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use yaml_rust2::{Yaml, YamlLoader};

/// The metrics Prometheus makes itself rather than scrapes.
const PROMETHEUS_OWN: [&str; 1] = ["up"];

/// Words of PromQL that are neither metrics nor followed by a parenthesis: binary and
/// set operators, modifiers, aggregations written `sum by (l) (...)`, and the numbers
/// spelled with letters. The [`LABEL_LISTS`] keywords are such words as well.
const KEYWORDS: [&str; 21] = [
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "inf",
    "nan",
];

/// Keywords whose parenthesis holds label names, not expressions.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The index just past the bracket that closes the one at `open` (`{...}`, `[...]`,
/// `(...)`), quoted strings inside left alone.
fn past_closing(chars: &[char], open: usize) -> usize {
    let (opening, closing) = match chars[open] {
        '{' => ('{', '}'),
        '[' => ('[', ']'),
        _ => ('(', ')'),
    };
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = past_string(chars, i);
                continue;
            }
            c if c == opening => depth += 1,
            c if c == closing => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// The index just past the string that starts at `open` (backslash escapes honoured
/// except in raw backquoted strings).
fn past_string(chars: &[char], open: usize) -> usize {
    let quote = chars[open];
    let mut i = open + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names a PromQL expression selects: every name that is not a function (it
/// is followed by a parenthesis), a keyword, a label (inside `{...}` or a `by (...)`-like
/// list), a duration or range (`[...]`, `5m`), a number, a string or a Grafana variable
/// (`$__rate_interval`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = past_string(&chars, i);
        } else if c == '{' || c == '[' {
            i = past_closing(&chars, i);
        } else if c.is_ascii_digit() || c == '.' || c == '$' {
            // A number, a duration (5m, 1e3, 0x1f) or a variable: one word.
            i += 1;
            while i < chars.len() && (is_name_char(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if is_name_start(c) {
            let start = i;
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let lower = word.to_ascii_lowercase();
            let parenthesis = chars.get(next) == Some(&'(');
            let label_list = LABEL_LISTS.contains(&lower.as_str());
            if parenthesis && label_list {
                i = past_closing(&chars, next);
            } else if !parenthesis && !label_list && !KEYWORDS.contains(&lower.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The sample names an exposition offers: from its `# TYPE` lines (with the `_total`
/// of a counter, the `_bucket`, `_sum` and `_count` of a histogram) and its samples.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    assert!(!docs.is_empty(), "{} is empty", path.display());
    docs.swap_remove(0)
}

/// The files of `dir` (under the workspace) whose name passes `wanted`, sorted.
fn files(dir: &str, wanted: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let dir = workspace_root().join(dir);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(&wanted)
        })
        .collect();
    found.sort();
    found
}

fn rules_files() -> Vec<PathBuf> {
    let found = files("deploy/prometheus", |name| {
        name.contains("rules") && (name.ends_with(".yml") || name.ends_with(".yaml"))
    });
    assert!(!found.is_empty(), "deploy/prometheus has no *rules*.yml");
    found
}

fn dashboards() -> Vec<PathBuf> {
    let found = files("deploy/grafana/dashboards", |name| name.ends_with(".json"));
    assert!(
        !found.is_empty(),
        "deploy/grafana/dashboards has no dashboard"
    );
    found
}

/// Every `expr` of the rules files: (where, expression).
fn rule_exprs() -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    for path in rules_files() {
        let doc = yaml(&path);
        let groups = doc["groups"].as_vec().cloned().unwrap_or_default();
        assert!(!groups.is_empty(), "{} has no rule groups", path.display());
        for group in groups {
            for rule in group["rules"].as_vec().cloned().unwrap_or_default() {
                let name = rule["alert"].as_str().or(rule["record"].as_str());
                let name =
                    name.unwrap_or_else(|| panic!("{}: a rule without a name", path.display()));
                let expr = rule["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: rule {name} has no expr", path.display()));
                exprs.push((format!("{} rule {name}", path.display()), expr.to_owned()));
            }
        }
    }
    exprs
}

/// Every string under a key `key`, anywhere in `value`, with the JSON pointer to it.
fn strings_under(value: &Value, key: &str, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (name, inner) in map {
                let here = format!("{at}/{name}");
                match inner {
                    Value::String(text) if name == key => found.push((here, text.clone())),
                    _ => strings_under(inner, key, &here, found),
                }
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                strings_under(inner, key, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

fn dashboard(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every `expr` of the dashboards' queries: (where, expression).
fn dashboard_exprs() -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    for path in dashboards() {
        let mut found = Vec::new();
        strings_under(&dashboard(&path), "expr", "", &mut found);
        assert!(!found.is_empty(), "{} has no query", path.display());
        exprs.extend(
            found
                .into_iter()
                .map(|(at, expr)| (format!("{} {at}", path.display()), expr)),
        );
    }
    exprs
}

/// Every metric the rules and dashboards use, each with the first place that uses it.
/// An expression that names no metric is a scanner's blind spot, or a mistake: it fails.
fn used_metrics() -> Vec<(String, String)> {
    let mut used: Vec<(String, String)> = Vec::new();
    for (place, expr) in rule_exprs().into_iter().chain(dashboard_exprs()) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{place}: no metric found in `{expr}`");
        for name in names {
            if !used.iter().any(|(known, _)| *known == name) {
                used.push((name, place.clone()));
            }
        }
    }
    used
}

#[test]
fn the_scanner_finds_the_metrics_of_an_expression_and_nothing_else() {
    let cases: [(&str, &[&str]); 9] = [
        (
            r#"rate(http_requests_total{status=~"5..",route!="/readyz"}[5m])"#,
            &["http_requests_total"],
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(writer_lag_seconds_bucket[$__rate_interval])))",
            &["writer_lag_seconds_bucket"],
        ),
        (
            "max by (item_id) (item_stock) and on (item_id) (max by (item_id) (changes(item_stock[15m])) > 0)",
            &["item_stock"],
        ),
        (
            "sum(rate(a_total[1m])) by (service) / ignoring(x) group_left(y) sum without (instance) (b) offset 5m",
            &["a_total", "b"],
        ),
        (
            r#"up{job="flash-sale"} == bool 0 unless 1e3 < Inf"#,
            &["up"],
        ),
        (
            r#"label_replace(foo, "dst", "$1 and bar", "src", "(.*)")"#,
            &["foo"],
        ),
        (
            r#"topk(5, level:metric:rate5m) or count_values("v", y) * on() group_left z"#,
            &["level:metric:rate5m", "y", "z"],
        ),
        ("sum by(service)(rate(x[${interval}]))", &["x"]),
        ("vector(1) + time()", &[]),
    ];
    for (expr, expected) in cases {
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(metric_names(expr), expected, "{expr}");
    }
}

#[test]
fn the_exported_names_come_from_the_type_lines_and_the_samples() {
    let exposition = "# HELP http_requests HTTP requests served.\n\
        # TYPE http_requests counter\n\
        http_requests_total{service=\"s\",status=\"200\"} 3\n\
        # TYPE writer_lag_seconds histogram\n\
        writer_lag_seconds_bucket{le=\"+Inf\"} 0\n\
        # TYPE outbox_pending_orders gauge\n\
        outbox_pending_orders 0\n\
        # EOF\n";
    let expected: BTreeSet<String> = [
        "http_requests_total",
        "writer_lag_seconds_bucket",
        "writer_lag_seconds_sum",
        "writer_lag_seconds_count",
        "outbox_pending_orders",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(exported_names(exposition), expected);
}

#[test]
fn prometheus_scrapes_every_service_and_loads_every_rules_file() {
    let path = workspace_root().join("deploy/prometheus/prometheus.yml");
    let config = yaml(&path);
    let targets: BTreeSet<String> = config["scrape_configs"]
        .as_vec()
        .expect("scrape_configs")
        .iter()
        .flat_map(|job| job["static_configs"].as_vec().cloned().unwrap_or_default())
        .flat_map(|targets| targets["targets"].as_vec().cloned().unwrap_or_default())
        .filter_map(|target| target.as_str().map(str::to_owned))
        .collect();
    // Compose gives each service the port the native stack does.
    for service in devstack::STACK {
        let target = format!("{}:{}", service.name, service.native_port);
        assert!(
            targets.contains(&target),
            "{} does not scrape {target}",
            path.display()
        );
    }
    let loaded: BTreeSet<PathBuf> = config["rule_files"]
        .as_vec()
        .expect("rule_files")
        .iter()
        .filter_map(Yaml::as_str)
        .map(|file| workspace_root().join("deploy/prometheus").join(file))
        .collect();
    for file in rules_files() {
        assert!(
            loaded.contains(&file),
            "{} is not in rule_files",
            file.display()
        );
    }
    let compose = read(&workspace_root().join("docker-compose.yaml"));
    for mounted in [
        "./deploy/prometheus:/etc/prometheus",
        "./deploy/grafana/provisioning:/etc/grafana/provisioning",
        "./deploy/grafana/dashboards:",
    ] {
        assert!(
            compose.contains(mounted),
            "compose does not mount {mounted}"
        );
    }
}

#[test]
fn the_dashboards_query_the_provisioned_prometheus() {
    let datasources =
        yaml(&workspace_root().join("deploy/grafana/provisioning/datasources/prometheus.yml"));
    let uids: Vec<&str> = datasources["datasources"]
        .as_vec()
        .expect("datasources")
        .iter()
        .filter(|source| source["type"].as_str() == Some("prometheus"))
        .filter_map(|source| source["uid"].as_str())
        .collect();
    assert_eq!(uids.len(), 1, "one provisioned Prometheus, with a uid");
    for path in dashboards() {
        let mut used = Vec::new();
        strings_under(&dashboard(&path), "uid", "", &mut used);
        let sources: Vec<_> = used
            .into_iter()
            .filter(|(at, _)| at.ends_with("/datasource/uid"))
            .collect();
        assert!(
            !sources.is_empty(),
            "{}: no data source named",
            path.display()
        );
        for (at, uid) in sources {
            assert_eq!(uid, uids[0], "{} {at}", path.display());
        }
    }
}

/// Every sample name the services export right now.
async fn scrape(stack: &Stack) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for service in SERVICES {
        let metrics = stack.service(service).get("/metrics", None).await;
        assert_eq!(metrics.status, 200, "{service} /metrics");
        names.extend(exported_names(&String::from_utf8_lossy(&metrics.raw)));
    }
    names
}

/// One purchase through a waiting room, so that the series a sale creates (outcomes,
/// the room's answers, per-item stock) exist.
async fn buy_one(stack: &Stack) {
    let Some(admin) = stack.admin_token("a purchase before the scrape").await else {
        return;
    };
    let lamp = json!({ "name": "Metered Lamp", "price": 100, "stock": 5, "waiting_room": true });
    let item = api::create_item(&stack.gateway, &admin, &lamp).await;
    let email = stack.email("metered-buyer");
    let registered = stack.register("Buyer", &email, "buyer-password").await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let token = api::token_of(&stack.login(&email, "buyer-password").await);
    let joined = api::join_queue(&stack.gateway, &token, item).await;
    assert_eq!(joined.body["state"], "admitted", "{}", joined.body);
    let bought = api::purchase(&stack.gateway, &token, item, 1).await;
    assert_eq!(bought.status, 200, "{}", bought.body);
}

#[actix_web::test]
async fn every_metric_the_alerts_and_the_dashboards_use_is_one_the_services_export() {
    let used = used_metrics();
    let stack = Stack::start().await;
    let ports: Vec<Access> = SERVICES.into_iter().map(Access::Service).collect();
    if !stack.reaches("the metrics the alerts and dashboards use", &ports) {
        return;
    }
    buy_one(&stack).await;
    // stock-writer reads its gauges every 5 s: give the sale's series that long to show.
    let deadline = Instant::now() + Duration::from_secs(20);
    let missing = loop {
        let exported = scrape(&stack).await;
        let missing: Vec<String> = used
            .iter()
            .filter(|(name, _)| {
                !exported.contains(name.as_str()) && !PROMETHEUS_OWN.contains(&name.as_str())
            })
            .map(|(name, place)| format!("{name} (used by {place})"))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        missing.is_empty(),
        "no service exports these metrics:\n  {}",
        missing.join("\n  ")
    );
}
