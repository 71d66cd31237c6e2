//! What running purchase-service as N instances costs: in the same bench run, the hot
//! item and the 1,000-unit flash sale through the gateway with one purchase-service
//! instance and then with two, nothing else changed (the same environment, admission off
//! so that per-buyer rate limits are not what is measured, the same concurrency and
//! buyers, the gateway re-rendered from `run/instances` with the one upstream list that
//! differs). For each: purchases/s, p50/p99 of the 200s, the CPU every process of the
//! stack spent per purchase (every instance's summed), 5xx and oversold; and the ratios
//! two instances / one of the throughput and of the CPU per purchase. The services are
//! back as they were afterwards. Written to `instances.json`, as `instances_*` keys of
//! `summary.json` and as a section of `report.md`.

use super::sale::{SALE_BUYERS, SALE_STOCKS};
use super::{Bench, HOT_STOCK, USERS, report};
use crate::native::NativeStack;
use crate::{metrics, process, step};
use anyhow::{Context, bail};
use devstack::{ServiceEnv, probe};
use loadgen::{Latency, Summary as Load};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

const SERVICE: &str = "purchase-service";
/// The instance counts compared, in the order they run.
pub const COUNTS: [usize; 2] = [1, 2];
/// How long the live instances may take to see each other (three heartbeats and more).
const MEMBERSHIP_LIMIT: Duration = Duration::from_secs(15);
/// How long the gateway's previous workers may take to finish after a reload: above
/// the gateway's `proxy_read_timeout` (30 s), the longest a request waits.
const GATEWAY_RELOAD_LIMIT: Duration = Duration::from_secs(40);
/// The process whose CPU is the load generator's, not the stack's.
const LOADGEN: &str = "loadgen";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    HotItem,
    /// The sale of [`SALE_STOCKS`]`[0]` units to [`SALE_BUYERS`] buyers.
    FlashSale,
}

impl Scenario {
    pub const ALL: [Scenario; 2] = [Scenario::HotItem, Scenario::FlashSale];

    /// Its name in `summary.json` keys.
    fn key(self) -> String {
        match self {
            Scenario::HotItem => "hot_item".into(),
            Scenario::FlashSale => format!("flash_sale_{}k", SALE_STOCKS[0] / 1000),
        }
    }

    fn title(self) -> String {
        match self {
            Scenario::HotItem => "hot item".into(),
            Scenario::FlashSale => format!("flash sale, {} units", SALE_STOCKS[0]),
        }
    }
}

/// One scenario with one instance count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRun {
    pub scenario: Scenario,
    pub instances: usize,
    pub load: Load,
    /// CPU each process spent per purchase during the load, µs, largest first;
    /// `purchase-service` is every instance's together, `loadgen` this process's.
    pub cpu_us_per_purchase: Vec<(String, f64)>,
    pub oversold: u64,
}

impl InstanceRun {
    /// Successful purchases a second: over the load for the hot item, until the last
    /// unit went for the sale.
    pub fn ok_per_s(&self) -> f64 {
        self.load
            .sale
            .as_ref()
            .map_or(self.load.ok_per_s, |sale| sale.ok_per_s)
    }

    /// Latency of the successful purchases.
    pub fn latency(&self) -> Latency {
        self.load
            .sale
            .as_ref()
            .map_or(self.load.latency_ms, |sale| sale.ok_latency_ms)
    }

    /// The CPU the stack spent per purchase: every process but the load generator.
    pub fn stack_cpu_us_per_purchase(&self) -> f64 {
        self.cpu_us_per_purchase
            .iter()
            .filter(|(name, _)| name != LOADGEN)
            .map(|(_, us)| us)
            .sum()
    }

    /// purchase-service's part of it, every instance together.
    pub fn service_cpu_us_per_purchase(&self) -> f64 {
        self.cpu_us_per_purchase
            .iter()
            .filter(|(name, _)| name == SERVICE)
            .map(|(_, us)| us)
            .sum()
    }

    /// Answers 5xx and requests without an answer.
    pub fn server_errors(&self) -> u64 {
        server_errors(&self.load)
    }
}

/// A load's answers 5xx and requests that got none (status 0).
pub fn server_errors(load: &Load) -> u64 {
    load.statuses
        .iter()
        .filter(|(status, _)| **status == 0 || **status >= 500)
        .map(|(_, n)| n)
        .sum()
}

/// `after / before`, none when `before` is not positive.
pub fn ratio(after: f64, before: f64) -> Option<f64> {
    (before > 0.0).then(|| after / before)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRuns {
    pub concurrency: usize,
    pub runs: Vec<InstanceRun>,
}

impl InstanceRuns {
    fn run(&self, scenario: Scenario, instances: usize) -> Option<&InstanceRun> {
        self.runs
            .iter()
            .find(|run| run.scenario == scenario && run.instances == instances)
    }

    /// Two instances over one of a figure of a scenario.
    fn two_over_one(
        &self,
        scenario: Scenario,
        figure: impl Fn(&InstanceRun) -> f64,
    ) -> Option<f64> {
        let one = self.run(scenario, COUNTS[0])?;
        let two = self.run(scenario, COUNTS[1])?;
        ratio(figure(two), figure(one))
    }

    pub fn throughput_ratio(&self, scenario: Scenario) -> Option<f64> {
        self.two_over_one(scenario, InstanceRun::ok_per_s)
    }

    pub fn cpu_ratio(&self, scenario: Scenario) -> Option<f64> {
        self.two_over_one(scenario, InstanceRun::stack_cpu_us_per_purchase)
    }

    /// The figures for `summary.json`: `instances_<scenario>_<N>_<figure>` for each run,
    /// then `instances_<scenario>_{ok_per_s,cpu_us_per_purchase}_2_over_1`.
    pub fn summary_figures(&self) -> Vec<(String, Option<f64>)> {
        let mut figures = Vec::new();
        for run in &self.runs {
            let key = format!("instances_{}_{}", run.scenario.key(), run.instances);
            let latency = run.latency();
            figures.extend(
                [
                    ("ok_per_s", run.ok_per_s()),
                    ("ok_p50_ms", latency.p50),
                    ("ok_p99_ms", latency.p99),
                    ("cpu_us_per_purchase", run.stack_cpu_us_per_purchase()),
                    (
                        "purchase_service_cpu_us_per_purchase",
                        run.service_cpu_us_per_purchase(),
                    ),
                    ("5xx", run.server_errors() as f64),
                    ("oversold", run.oversold as f64),
                ]
                .into_iter()
                .map(|(figure, value)| (format!("{key}_{figure}"), Some(value))),
            );
        }
        for scenario in Scenario::ALL {
            let key = format!("instances_{}", scenario.key());
            figures.push((
                format!("{key}_ok_per_s_2_over_1"),
                self.throughput_ratio(scenario),
            ));
            figures.push((
                format!("{key}_cpu_us_per_purchase_2_over_1"),
                self.cpu_ratio(scenario),
            ));
        }
        figures
    }

    /// The section of `report.md`.
    pub fn markdown(&self) -> String {
        let shown =
            |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
        let mut lines = vec![
            String::new(),
            "## purchase-service instances".to_owned(),
            String::new(),
            format!(
                "The hot item ({USERS} buyers) and the sale of {} units ({SALE_BUYERS} buyers) through the gateway at concurrency {}, with {} purchase-service instance and then {}, one after the other in this run. Nothing else changed: the same environment (`PURCHASE_RATE_PER_USER=0`, so no buyer is turned away by their rate), the same loads, the gateway re-rendered with the instances' ports as its only change, and the instances seeing each other before each load. CPU per purchase: what every process of the stack (each instance, nginx, Redis, RabbitMQ, MariaDB, the other services) spent during the load over the purchases answered 200, the load generator left out. In the sale it includes answering the late buyers for the sale's tail, the cores busy throughout, so the sale's CPU ratio says little; the hot item's is the cost of N.",
                SALE_STOCKS[0],
                self.concurrency,
                COUNTS[0],
                COUNTS[1]
            ),
            String::new(),
            "| scenario | instances | purchases/s | p50 ms (200s) | p99 ms (200s) | CPU µs per purchase | of which purchase-service | 5xx | oversold |".into(),
            "|---|---|---|---|---|---|---|---|---|".into(),
        ];
        for run in &self.runs {
            let latency = run.latency();
            lines.push(format!(
                "| {} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {} | {} |",
                run.scenario.title(),
                run.instances,
                run.ok_per_s(),
                latency.p50,
                latency.p99,
                run.stack_cpu_us_per_purchase(),
                run.service_cpu_us_per_purchase(),
                run.server_errors(),
                run.oversold
            ));
        }
        lines.push(String::new());
        for scenario in Scenario::ALL {
            lines.push(format!(
                "- {}, {} instances / {}: purchases/s **{}**, CPU per purchase **{}**",
                scenario.title(),
                COUNTS[1],
                COUNTS[0],
                shown(self.throughput_ratio(scenario)),
                shown(self.cpu_ratio(scenario))
            ));
        }
        lines.push(format!(
            "- on this machine's {} CPUs a second instance shares the cores the first one had: the throughput ratio is what N costs (0.9 or more is the aim), not what it could add",
            std::thread::available_parallelism().map_or(1, usize::from)
        ));
        lines.join("\n") + "\n"
    }
}

impl Bench<'_> {
    /// Every instance run; purchase-service is back on the instances and environment it
    /// had afterwards.
    pub(super) async fn instances(&mut self) -> anyhow::Result<InstanceRuns> {
        let original = self.stack.ports(SERVICE);
        // The lua runs' environment, with admission pinned off.
        let env = ServiceEnv::new()
            .with("PURCHASE_STRATEGY", "lua")
            .with("PURCHASE_RATE_PER_USER", "0");
        step("purchase-service with PURCHASE_RATE_PER_USER=0 for the instance runs");
        self.stack.restart_service(SERVICE, &env).await?;
        let concurrency = self.plan.top();
        let mut runs = Vec::new();
        let outcome = async {
            for count in COUNTS {
                self.scale(&NativeStack::instance_ports(SERVICE, count), &env)
                    .await?;
                runs.push(self.instance_hot_item(count).await?);
                runs.push(self.instance_sale(count).await?);
            }
            anyhow::Ok(())
        }
        .await;
        step(format!(
            "purchase-service back on {} instance(s) as before",
            original.len()
        ));
        let back = self.scale(&original, &env).await;
        let lua = ServiceEnv::new().with("PURCHASE_STRATEGY", "lua");
        self.stack.restart_service(SERVICE, &lua).await?;
        outcome?;
        back?;
        Ok(InstanceRuns { concurrency, runs })
    }

    async fn instance_hot_item(&mut self, instances: usize) -> anyhow::Result<InstanceRun> {
        let top = self.plan.top();
        let label = format!("instances{instances}-hot-lua-c{top}");
        let item = self.new_item(HOT_STOCK).await?;
        let before = self.cpu_ticks();
        let load = self
            .load(
                &label,
                self.stack.gateway_port,
                vec![item],
                top,
                self.plan.duration,
            )
            .await?;
        let after = self.cpu_ticks();
        self.drain(&[item]).await?;
        let oversold = self.check(&label, item, HOT_STOCK).await?;
        Ok(InstanceRun {
            scenario: Scenario::HotItem,
            instances,
            cpu_us_per_purchase: per_purchase(&before, &after, load.ok),
            load,
            oversold,
        })
    }

    async fn instance_sale(&mut self, instances: usize) -> anyhow::Result<InstanceRun> {
        let stock = SALE_STOCKS[0];
        let label = format!("instances{instances}-flash-sale-{stock}");
        let before = self.cpu_ticks();
        let (item, load, _) = self.sell_out(stock, &label).await?;
        let after = self.cpu_ticks();
        self.drain(&[item]).await?;
        let oversold = self.check(&label, item, stock).await?;
        let sold = load.ok;
        Ok(InstanceRun {
            scenario: Scenario::FlashSale,
            instances,
            cpu_us_per_purchase: per_purchase(&before, &after, sold),
            load,
            oversold,
        })
    }

    /// Runs purchase-service on exactly `ports`: starts the missing instances with `env`
    /// and waits until they are ready, has the gateway balance over `ports`, then stops
    /// the instances left out; returns once every instance counts the others live.
    async fn scale(&self, ports: &[u16], env: &ServiceEnv) -> anyhow::Result<()> {
        let current = self.stack.ports(SERVICE);
        step(format!(
            "purchase-service on {} instance(s): ports {ports:?}",
            ports.len()
        ));
        for &port in ports.iter().filter(|port| !current.contains(port)) {
            self.stack.start_instance(SERVICE, port, env)?;
            self.stack
                .wait_instance_ready(SERVICE, port, Instant::now() + Duration::from_secs(60))
                .await?;
        }
        self.stack.write_ports(SERVICE, ports)?;
        reload_gateway(self.stack)?;
        let grace = Duration::from_secs(
            self.stack.settings.app.shutdown_drain_secs
                + self.stack.settings.app.shutdown_timeout_secs
                + 5,
        );
        for &port in current.iter().filter(|port| !ports.contains(port)) {
            self.stack
                .stop_instance(SERVICE, port, libc::SIGTERM, grace);
        }
        wait_for_membership(ports).await
    }
}

/// CPU µs per purchase of each process (see [`report::cpu_us_per_purchase`]).
fn per_purchase(
    before: &[(String, u64)],
    after: &[(String, u64)],
    purchases: u64,
) -> Vec<(String, f64)> {
    report::cpu_us_per_purchase(before, after, process::ticks_per_second(), purchases)
}

/// Waits until every instance on `ports` counts exactly that many live instances
/// (`purchase_instances_live`), so that each holds its share before a load starts.
async fn wait_for_membership(ports: &[u16]) -> anyhow::Result<()> {
    let deadline = Instant::now() + MEMBERSHIP_LIMIT;
    loop {
        let mut seen = Vec::with_capacity(ports.len());
        for &port in ports {
            let live = probe::get(port, "/metrics")
                .await
                .and_then(|answer| metrics::counter(&answer.body, "purchase_instances_live"));
            seen.push(live);
        }
        if seen.iter().all(|live| *live == Some(ports.len() as f64)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "purchase-service instances on {ports:?} count {seen:?} live instances after {MEMBERSHIP_LIMIT:?}, not {}",
                ports.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Renders the gateway for the ports `run/instances` lists now, has nginx load it and
/// waits until the workers of the previous configuration have exited, so that no request
/// reaches an instance the new configuration leaves out. A private stand-in for the
/// stack's own reload (`NativeStack::reload_gateway`), which is not on main yet.
fn reload_gateway(stack: &NativeStack) -> anyhow::Result<()> {
    let gateway = stack.gateway();
    let master = process::running(&gateway.pid_file()).context("the gateway does not run")?;
    gateway.render(&stack.root, |service| stack.ports(service))?;
    let previous_workers = children(master);
    let status = gateway
        .nginx(&["-s", "reload"])
        .status()
        .context("running nginx -s reload")?;
    if !status.success() {
        bail!(
            "nginx -s reload failed ({status}; see {})",
            gateway.error_log().display()
        );
    }
    let deadline = Instant::now() + GATEWAY_RELOAD_LIMIT;
    while previous_workers.iter().any(|pid| process::alive(*pid)) {
        if Instant::now() >= deadline {
            bail!(
                "the gateway's previous workers still run after {GATEWAY_RELOAD_LIMIT:?} (see {})",
                gateway.error_log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The processes whose parent is `pid` (an nginx master's workers).
fn children(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| parent_of_stat(&stat))
                == Some(pid)
        })
        .collect()
}

/// The parent pid (field 4) of a `/proc/<pid>/stat` line, whose command name may hold
/// spaces and parentheses.
fn parent_of_stat(stat: &str) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::load;
    use super::*;

    fn sale_load(ok_per_s: f64, p99: f64, statuses: serde_json::Value) -> Load {
        serde_json::from_value(serde_json::json!({
            "label": "sale", "url": "http://x", "items": [1], "concurrency": 64,
            "mode": "closed", "duration_s": 4.0, "requests": 20000, "ok": 1000,
            "ok_per_s": 250.0, "requests_per_s": 5000.0,
            "statuses": statuses,
            "error_codes": {"INSUFFICIENT_STOCK": 19000},
            "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0, "mean": 1.5},
            "sale": {"sold_out_after_s": 0.5, "ok_per_s": ok_per_s,
                     "ok_latency_ms": {"p50": 5.0, "p95": 8.0, "p99": p99, "max": 12.0, "mean": 6.0},
                     "rejected_after": 19000, "rejected_per_s": 6000.0, "server_errors": 0}
        }))
        .unwrap()
    }

    fn run(scenario: Scenario, instances: usize, load: Load, service_us: f64) -> InstanceRun {
        InstanceRun {
            scenario,
            instances,
            load,
            cpu_us_per_purchase: vec![
                ("purchase-service".into(), service_us),
                ("redis-server".into(), 30.0),
                ("loadgen".into(), 40.0),
                ("nginx".into(), 20.0),
            ],
            oversold: 0,
        }
    }

    fn runs() -> InstanceRuns {
        InstanceRuns {
            concurrency: 64,
            runs: vec![
                run(Scenario::HotItem, 1, load("hot", 3000.0, 40.0, 0), 100.0),
                run(
                    Scenario::FlashSale,
                    1,
                    sale_load(2000.0, 9.0, serde_json::json!({"200": 1000, "409": 19000})),
                    150.0,
                ),
                run(Scenario::HotItem, 2, load("hot", 2850.0, 44.0, 0), 130.0),
                run(
                    Scenario::FlashSale,
                    2,
                    sale_load(
                        1500.0,
                        12.0,
                        serde_json::json!({"0": 1, "200": 1000, "409": 18997, "502": 2}),
                    ),
                    200.0,
                ),
            ],
        }
    }

    #[test]
    fn a_ratio_needs_a_positive_denominator() {
        assert_eq!(ratio(2850.0, 3000.0), Some(0.95));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(1.0, -1.0), None);
    }

    #[test]
    fn server_errors_are_5xx_and_the_unanswered() {
        let runs = runs();
        assert_eq!(runs.runs[0].server_errors(), 0);
        assert_eq!(runs.runs[3].server_errors(), 3);
    }

    #[test]
    fn a_sale_counts_its_purchases_until_the_sell_out_and_the_stack_leaves_loadgen_out() {
        let runs = runs();
        let hot = &runs.runs[0];
        assert_eq!(hot.ok_per_s(), 3000.0);
        assert_eq!(hot.latency().p99, 40.0);
        assert_eq!(hot.stack_cpu_us_per_purchase(), 150.0);
        assert_eq!(hot.service_cpu_us_per_purchase(), 100.0);
        let sale = &runs.runs[1];
        assert_eq!(sale.ok_per_s(), 2000.0);
        assert_eq!(sale.latency().p99, 9.0);
    }

    #[test]
    fn the_ratios_are_two_instances_over_one() {
        let runs = runs();
        assert_eq!(runs.throughput_ratio(Scenario::HotItem), Some(0.95));
        assert_eq!(runs.cpu_ratio(Scenario::HotItem), Some(180.0 / 150.0));
        assert_eq!(runs.throughput_ratio(Scenario::FlashSale), Some(0.75));
        assert_eq!(runs.cpu_ratio(Scenario::FlashSale), Some(250.0 / 200.0));
        let mut one_only = runs.clone();
        one_only.runs.retain(|run| run.instances == 1);
        assert_eq!(one_only.throughput_ratio(Scenario::HotItem), None);
    }

    #[test]
    fn the_summary_and_the_report_carry_every_run_and_ratio() {
        let runs = runs();
        let figures = runs.summary_figures();
        assert_eq!(figures.len(), 4 * 7 + 4);
        assert_eq!(
            figures[0],
            ("instances_hot_item_1_ok_per_s".to_owned(), Some(3000.0))
        );
        assert!(figures.contains(&("instances_flash_sale_1k_2_5xx".into(), Some(3.0))));
        assert!(figures.contains(&("instances_hot_item_ok_per_s_2_over_1".into(), Some(0.95))));
        assert!(figures.contains(&(
            "instances_flash_sale_1k_cpu_us_per_purchase_2_over_1".into(),
            Some(1.25)
        )));

        let markdown = runs.markdown();
        assert!(markdown.starts_with("\n## purchase-service instances\n"));
        assert!(markdown.contains("\n| hot item | 1 | 3000 | 10.0 | 40.0 | 150 | 100 | 0 | 0 |\n"));
        assert!(markdown.contains(
            "\n| flash sale, 1000 units | 2 | 1500 | 5.0 | 12.0 | 250 | 200 | 3 | 0 |\n"
        ));
        assert!(markdown.contains(
            "- hot item, 2 instances / 1: purchases/s **0.95**, CPU per purchase **1.20**"
        ));
        assert!(markdown.contains(
            "- flash sale, 1000 units, 2 instances / 1: purchases/s **0.75**, CPU per purchase **1.25**"
        ));
    }

    #[test]
    fn the_summary_json_has_the_instance_keys_and_null_for_a_missing_ratio() {
        let mut runs = runs();
        runs.runs.retain(|run| run.instances == 1);
        let summary = report::Summary::new(&report::tests::measurements())
            .unwrap()
            .with_instances(&runs.summary_figures());
        let json = serde_json::to_value(summary).unwrap();
        assert_eq!(json["instances_hot_item_1_ok_per_s"], 3000.0);
        assert_eq!(
            json["instances_hot_item_ok_per_s_2_over_1"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn the_parent_is_the_field_after_the_state_even_with_spaces_in_the_name() {
        assert_eq!(
            parent_of_stat("4242 (nginx: worker (x)) S 4200 4200 4200 0 -1"),
            Some(4200)
        );
        assert_eq!(parent_of_stat("garbage"), None);
        let own: i32 = std::process::id().try_into().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid: i32 = child.id().try_into().unwrap();
        assert!(children(own).contains(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
