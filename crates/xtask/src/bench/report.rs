//! The benchmark's report, built from what it measured ([`Measurements`]):
//! `summary.json` (one key per figure README and docs/benchmarks quote, keys that stay
//! stable from run to run) and `report.md` (the table and the notes under it; the charts are
//! [`super::figures`]). Building it is pure, so a fixed set of measurements always gives
//! the same report.

use super::sale::FlashSale;
use crate::metrics::LagP99;
use anyhow::Context;
use loadgen::{Latency, Summary as Load};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub platform: String,
}

impl Machine {
    /// This machine: its CPUs and `<os>-<kernel release>-<architecture>`.
    pub fn this() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            platform: format!(
                "{}-{}-{}",
                read("/proc/sys/kernel/ostype"),
                read("/proc/sys/kernel/osrelease"),
                std::env::consts::ARCH
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Lua,
    Lock,
}

impl Strategy {
    pub const ALL: [Strategy; 2] = [Strategy::Lua, Strategy::Lock];

    /// The `PURCHASE_STRATEGY` value.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Lua => "lua",
            Strategy::Lock => "lock",
        }
    }
}

/// What stock-writer did around one load: events applied from the load's start until
/// the outbox drained, and how long the drain took after the load stopped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WriterPace {
    pub applied: f64,
    pub seconds: f64,
    pub drain_s: f64,
}

/// The hot item through the gateway with one strategy at one concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotRun {
    pub strategy: Strategy,
    pub concurrency: usize,
    pub load: Load,
    pub writer: WriterPace,
}

/// stock-writer alone on a backlog built while it was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    pub backlog: u64,
    pub seconds: f64,
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    pub machine: Machine,
    pub quick: bool,
    /// The concurrencies of the hot-item loads; the last one is used for the rest.
    pub levels: Vec<usize>,
    pub hot: Vec<HotRun>,
    /// The hot item straight at purchase-service.
    pub direct: Load,
    /// CPU each process spent per purchase during the direct run, µs, largest first.
    pub direct_cpu_us_per_purchase: Vec<(String, f64)>,
    /// CPU each process spent per order from the direct run's start until stock-writer
    /// had persisted its every order, µs, largest first (what the order path costs:
    /// RabbitMQ, stock-writer, MariaDB).
    #[serde(default)]
    pub direct_cpu_us_per_order: Vec<(String, f64)>,
    pub backlog: Backlog,
    pub many_items: Load,
    pub redis_ceiling_rps: f64,
    /// Peak resident memory of each service, MiB.
    pub rss_mib: Vec<(String, f64)>,
    /// Units oversold over every scenario (a broken conservation counts at least 1).
    pub oversold: u64,
    pub writer_lag_p99: LagP99,
    #[serde(default)]
    pub flash_sales: Vec<FlashSale>,
}

impl Measurements {
    pub fn top(&self) -> usize {
        self.levels.last().copied().unwrap_or_default()
    }

    /// The direct run's CPU per purchase of `process` (0 when it spent none).
    fn cpu_per_purchase(&self, process: &str) -> f64 {
        figure(&self.direct_cpu_us_per_purchase, process).unwrap_or_default()
    }

    /// The CPU per order of these processes together, `None` when not measured.
    fn cpu_per_order(&self, processes: &[&str]) -> Option<f64> {
        if self.direct_cpu_us_per_order.is_empty() {
            return None;
        }
        let us = processes
            .iter()
            .filter_map(|p| figure(&self.direct_cpu_us_per_order, p))
            .sum();
        Some(us)
    }

    pub fn hot(&self, strategy: Strategy, concurrency: usize) -> anyhow::Result<&HotRun> {
        self.hot
            .iter()
            .find(|run| run.strategy == strategy && run.concurrency == concurrency)
            .with_context(|| format!("no {} run at concurrency {concurrency}", strategy.name()))
    }

    fn lua_runs(&self) -> impl Iterator<Item = &HotRun> {
        self.hot.iter().filter(|run| run.strategy == Strategy::Lua)
    }
}

/// CPU µs per purchase of each process from tick counts before and after a run
/// (`loadgen` is among them), largest first.
pub fn cpu_us_per_purchase(
    before: &[(String, u64)],
    after: &[(String, u64)],
    ticks_per_second: f64,
    purchases: u64,
) -> Vec<(String, f64)> {
    let tick_us = 1e6 / ticks_per_second;
    let purchases = purchases.max(1) as f64;
    let mut per_purchase: Vec<(String, f64)> = after
        .iter()
        .map(|(name, ticks)| {
            let earlier = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, t)| *t);
            let spent = ticks.saturating_sub(earlier) as f64;
            (name.clone(), spent * tick_us / purchases)
        })
        .collect();
    per_purchase.sort_by(|a, b| b.1.total_cmp(&a.1));
    per_purchase
}

fn figure(figures: &[(String, f64)], name: &str) -> Option<f64> {
    figures.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// A JSON object whose keys keep their order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `summary.json`: the headline figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub machine: Machine,
    pub quick: bool,
    pub concurrency: usize,
    pub hot_item_lua_rps: f64,
    pub hot_item_lock_rps: f64,
    pub lock_system_busy: u64,
    pub lua_system_busy: u64,
    pub gateway_lua_rps: f64,
    pub direct_lua_rps: f64,
    pub redis_ceiling_rps: f64,
    pub many_items_lua_rps: f64,
    /// stock-writer's pace during the lua load that applied most.
    pub writer_events_per_s: f64,
    pub writer_backlog_events_per_s: f64,
    pub writer_drain_after_load_s: f64,
    /// `null` when unknown or beyond the histogram's 10 s.
    pub writer_lag_p99_ms: Option<f64>,
    pub rss_mib: Ordered<f64>,
    pub direct_cpu_us_per_purchase: Ordered<f64>,
    pub oversold: u64,
    /// Per hot-item load, keyed `<strategy>-c<concurrency>`.
    pub latency_ms: Ordered<Latency>,
    pub lua_over_lock: f64,
    pub direct_over_ceiling: f64,
    /// The CPU every process spent per purchase in the direct run, summed.
    pub cpu_us_per_purchase_total: f64,
    /// Through the gateway / straight at purchase-service (hot item, lua, top
    /// concurrency).
    pub gateway_over_direct: f64,
    /// The direct run's CPU per purchase of every process but loadgen.
    pub stack_cpu_us_per_purchase: f64,
    /// That over redis-server's own CPU per purchase (`null` when Redis spent none).
    pub stack_cpu_over_redis: Option<f64>,
    /// purchase-service's CPU per purchase over redis-server's.
    pub purchase_service_cpu_over_redis: Option<f64>,
    /// MariaDB's and stock-writer's CPU per order, from the direct run's start until
    /// every order of it was in MySQL (`null` when not measured).
    pub mariadb_writer_cpu_us_per_order: Option<f64>,
    /// RabbitMQ's (beam.smp) CPU per order over the same span.
    pub rabbitmq_cpu_us_per_order: Option<f64>,
    /// The largest peak RSS of any service, MiB.
    pub rss_mib_max: f64,
    /// The profile's figures (`super::profile`): samples, the shares of malloc/free,
    /// the kernel, tokio, redis and actix, and the profiled load's rate over the
    /// unprofiled one; `null` without a profile.
    pub purchase_service_profile: Option<Ordered<f64>>,
    /// Each figure of issue 24's table against its aim, keyed by its own key.
    pub aims: Ordered<AimCheck>,
    /// Each flash sale's figures, `flash_sale[_cluster]_<stock>_<figure>`.
    #[serde(flatten)]
    pub flash_sale: Ordered<f64>,
    /// The instance runs' figures, `instances_<scenario>_…` (`null`: a ratio without
    /// its denominator).
    #[serde(flatten)]
    pub instances: Ordered<Option<f64>>,
    /// The waiting room's figures, `waiting_room_<figure>`.
    #[serde(flatten)]
    pub waiting_room: Ordered<f64>,
}

impl Summary {
    pub fn new(m: &Measurements) -> anyhow::Result<Self> {
        let top = m.top();
        let lua = &m.hot(Strategy::Lua, top)?.load;
        let lock = &m.hot(Strategy::Lock, top)?.load;
        let busiest_writer = m
            .lua_runs()
            .map(|run| run.writer)
            .reduce(|best, w| if w.applied > best.applied { w } else { best })
            .context("no lua run")?;
        let mut latency = Vec::new();
        for strategy in Strategy::ALL {
            for &c in &m.levels {
                let run = m.hot(strategy, c)?;
                latency.push((format!("{}-c{c}", strategy.name()), run.load.latency_ms));
            }
        }
        let stack_cpu: f64 = m
            .direct_cpu_us_per_purchase
            .iter()
            .filter(|(name, _)| name != "loadgen")
            .map(|(_, us)| us)
            .sum();
        let redis_cpu = m.cpu_per_purchase("redis-server");
        let over_redis = |us: f64| (redis_cpu > 0.0).then(|| us / redis_cpu);
        Ok(Summary {
            machine: m.machine.clone(),
            quick: m.quick,
            concurrency: top,
            hot_item_lua_rps: lua.ok_per_s,
            hot_item_lock_rps: lock.ok_per_s,
            lock_system_busy: lock.error_count("SYSTEM_BUSY"),
            lua_system_busy: lua.error_count("SYSTEM_BUSY"),
            gateway_lua_rps: lua.ok_per_s,
            direct_lua_rps: m.direct.ok_per_s,
            redis_ceiling_rps: m.redis_ceiling_rps,
            many_items_lua_rps: m.many_items.ok_per_s,
            writer_events_per_s: busiest_writer.applied / busiest_writer.seconds,
            writer_backlog_events_per_s: m.backlog.backlog as f64 / m.backlog.seconds,
            writer_drain_after_load_s: m
                .lua_runs()
                .map(|run| run.writer.drain_s)
                .fold(0.0, f64::max),
            writer_lag_p99_ms: m.writer_lag_p99.millis(),
            rss_mib: Ordered(m.rss_mib.clone()),
            direct_cpu_us_per_purchase: Ordered(m.direct_cpu_us_per_purchase.clone()),
            oversold: m.oversold,
            latency_ms: Ordered(latency),
            lua_over_lock: lua.ok_per_s / lock.ok_per_s.max(1e-9),
            direct_over_ceiling: m.direct.ok_per_s / m.redis_ceiling_rps,
            cpu_us_per_purchase_total: m.direct_cpu_us_per_purchase.iter().map(|(_, us)| us).sum(),
            gateway_over_direct: lua.ok_per_s / m.direct.ok_per_s.max(1e-9),
            stack_cpu_us_per_purchase: stack_cpu,
            stack_cpu_over_redis: over_redis(stack_cpu),
            purchase_service_cpu_over_redis: over_redis(m.cpu_per_purchase("purchase-service")),
            mariadb_writer_cpu_us_per_order: m.cpu_per_order(&["mariadbd", "stock-writer"]),
            rabbitmq_cpu_us_per_order: m.cpu_per_order(&["beam.smp"]),
            rss_mib_max: m.rss_mib.iter().map(|(_, mib)| *mib).fold(0.0, f64::max),
            purchase_service_profile: None,
            aims: Ordered(Vec::new()),
            flash_sale: Ordered(Vec::new()),
            instances: Ordered(Vec::new()),
            waiting_room: Ordered(Vec::new()),
        }
        .with_sales(&m.flash_sales)
        .with_aims())
    }

    /// With each figure of issue 24's table checked against its aim.
    fn with_aims(mut self) -> Self {
        let checks = AIMS
            .iter()
            .map(|aim| (aim.key.to_owned(), aim.check(self.value(aim.key))))
            .collect();
        self.aims = Ordered(checks);
        self
    }

    /// The figure an aim is about, by its key.
    fn value(&self, key: &str) -> Option<f64> {
        match key {
            "direct_over_ceiling" => Some(self.direct_over_ceiling),
            "gateway_over_direct" => Some(self.gateway_over_direct),
            "stack_cpu_over_redis" => self.stack_cpu_over_redis,
            "purchase_service_cpu_over_redis" => self.purchase_service_cpu_over_redis,
            "mariadb_writer_cpu_us_per_order" => self.mariadb_writer_cpu_us_per_order,
            "rabbitmq_cpu_us_per_order" => self.rabbitmq_cpu_us_per_order,
            "rss_mib_max" => Some(self.rss_mib_max),
            "lua_over_lock" => Some(self.lua_over_lock),
            "writer_lag_p99_ms" => self.writer_lag_p99_ms,
            "oversold" => Some(self.oversold as f64),
            _ => None,
        }
    }

    /// With the figures of the profile of purchase-service.
    pub fn with_profile(mut self, figures: Option<Ordered<f64>>) -> Self {
        self.purchase_service_profile = figures;
        self
    }

    /// With the figures of these flash sales (the cluster's too, measured later).
    pub fn with_sales(mut self, sales: &[FlashSale]) -> Self {
        self.flash_sale = Ordered(sales.iter().flat_map(FlashSale::summary_figures).collect());
        self
    }

    /// With the waiting room's figures.
    pub fn with_waiting_room(mut self, figures: Vec<(String, f64)>) -> Self {
        self.waiting_room = Ordered(figures);
        self
    }

    /// With the instance runs' figures (measured after the others).
    pub fn with_instances(mut self, figures: &[(String, Option<f64>)]) -> Self {
        self.instances = Ordered(figures.to_vec());
        self
    }
}

/// Whether a figure should be at least or at most its aim.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

/// One figure of issue 24's table: its `summary.json` key, what it is, its aim and how
/// many decimals the report shows it with.
struct Aim {
    key: &'static str,
    figure: &'static str,
    bound: Bound,
    decimals: usize,
}

const AIMS: [Aim; 10] = [
    Aim {
        key: "direct_over_ceiling",
        figure: "hot item straight at purchase-service / redis-benchmark ceiling",
        bound: Bound::AtLeast(0.45),
        decimals: 2,
    },
    Aim {
        key: "gateway_over_direct",
        figure: "through the gateway / straight",
        bound: Bound::AtLeast(0.90),
        decimals: 2,
    },
    Aim {
        key: "stack_cpu_over_redis",
        figure: "CPU per purchase, direct run, all processes but loadgen / Redis's own",
        bound: Bound::AtMost(3.0),
        decimals: 2,
    },
    Aim {
        key: "purchase_service_cpu_over_redis",
        figure: "purchase-service's CPU per purchase / Redis's",
        bound: Bound::AtMost(1.25),
        decimals: 2,
    },
    Aim {
        key: "mariadb_writer_cpu_us_per_order",
        figure: "MariaDB + stock-writer CPU per order, µs",
        bound: Bound::AtMost(15.0),
        decimals: 1,
    },
    Aim {
        key: "rabbitmq_cpu_us_per_order",
        figure: "RabbitMQ CPU per order, µs",
        bound: Bound::AtMost(6.0),
        decimals: 1,
    },
    Aim {
        key: "rss_mib_max",
        figure: "peak RSS of every service, MiB",
        bound: Bound::AtMost(32.0),
        decimals: 1,
    },
    Aim {
        key: "lua_over_lock",
        figure: "lua / lock",
        bound: Bound::AtLeast(10.0),
        decimals: 1,
    },
    Aim {
        key: "writer_lag_p99_ms",
        figure: "stock-writer lag p99, ms",
        bound: Bound::AtMost(1000.0),
        decimals: 0,
    },
    Aim {
        key: "oversold",
        figure: "oversold",
        bound: Bound::AtMost(0.0),
        decimals: 0,
    },
];

impl Aim {
    fn check(&self, value: Option<f64>) -> AimCheck {
        let (symbol, bound) = match self.bound {
            Bound::AtLeast(bound) => (">=", bound),
            Bound::AtMost(bound) => ("<=", bound),
        };
        AimCheck {
            figure: self.figure.to_owned(),
            value,
            aim: format!("{symbol} {bound}"),
            met: value.is_some_and(|v| match self.bound {
                Bound::AtLeast(bound) => v >= bound,
                Bound::AtMost(bound) => v <= bound,
            }),
        }
    }
}

/// A figure against its aim, as `summary.json`'s `aims` has it: `value` `null` when
/// unknown (never met).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AimCheck {
    pub figure: String,
    pub value: Option<f64>,
    /// `>= 0.45`, `<= 15`.
    pub aim: String,
    pub met: bool,
}

/// The report's table of the aims.
fn aims_table(s: &Summary) -> Vec<String> {
    let mut lines = vec![
        String::new(),
        format!(
            "## Aims (issue 24), at concurrency {}{}",
            s.concurrency,
            if s.quick {
                " (quick run: the aims are for 256 and 10 s loads)"
            } else {
                ""
            }
        ),
        String::new(),
        "| figure | `summary.json` key | value | aim | met |".into(),
        "|---|---|---|---|---|".into(),
    ];
    for (aim, (_, check)) in AIMS.iter().zip(&s.aims.0) {
        let value = check.value.map_or("n/a".into(), |v| {
            format!("{v:.decimals$}", decimals = aim.decimals)
        });
        lines.push(format!(
            "| {} | `{}` | {value} | {} | {} |",
            check.figure,
            aim.key,
            check.aim.replace(">=", "≥").replace("<=", "≤"),
            if check.met { "yes" } else { "**no**" }
        ));
    }
    let met = s.aims.0.iter().filter(|(_, check)| check.met).count();
    lines.extend([
        String::new(),
        format!("Aims met: {met} of {}.", s.aims.0.len()),
    ]);
    lines
}

fn table_row(label: &str, concurrency: usize, load: &Load) -> String {
    let l = &load.latency_ms;
    format!(
        "| {label} | {concurrency} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
        load.ok_per_s,
        l.p50,
        l.p95,
        l.p99,
        load.error_count("SYSTEM_BUSY")
    )
}

fn times(ratio: Option<f64>) -> String {
    ratio.map_or("n/a ×".into(), |r| format!("{r:.2}×"))
}

fn joined(figures: impl Iterator<Item = String>) -> String {
    figures.collect::<Vec<_>>().join(", ")
}

/// `report.md`.
pub fn markdown(m: &Measurements, s: &Summary) -> anyhow::Result<String> {
    let top = m.top();
    let lua_top = &m.hot(Strategy::Lua, top)?.load;
    let mut lines = vec![
        "# Benchmark report".to_owned(),
        String::new(),
        format!(
            "Machine: {} CPUs, {}. {}Each load ran {:.0}s, closed loop, loadgen and the whole stack on the same machine.",
            m.machine.cpus,
            m.machine.platform,
            if m.quick { "Quick run. " } else { "" },
            lua_top.duration_s
        ),
        String::new(),
        "| scenario | concurrency | purchases/s | p50 ms | p95 ms | p99 ms | SYSTEM_BUSY |".into(),
        "|---|---|---|---|---|---|---|".into(),
    ];
    for strategy in Strategy::ALL {
        for &c in &m.levels {
            let label = format!("hot item, {}, gateway", strategy.name());
            lines.push(table_row(&label, c, &m.hot(strategy, c)?.load));
        }
    }
    lines.push(table_row("hot item, lua, direct", top, &m.direct));
    lines.push(table_row("50 items, lua, gateway", top, &m.many_items));
    lines.push(format!(
        "| redis-benchmark, same script | {top} | {:.0} | | | | |",
        m.redis_ceiling_rps
    ));
    let cpu_total = s.cpu_us_per_purchase_total;
    let cpu_available = m.machine.cpus as f64 * 1e6 / m.direct.ok_per_s.max(1e-9);
    lines.extend([
        String::new(),
        format!(
            "- lua / lock: **{:.1}×**; direct / redis ceiling: **{:.2}**",
            s.lua_over_lock, s.direct_over_ceiling
        ),
        format!(
            "- stock-writer: {:.0} events/s applied; lag p99 during the loads {}; drained {:.2}s after the load stopped; alone, it drained a backlog of {} events in {:.1}s ({:.0} events/s)",
            s.writer_events_per_s,
            m.writer_lag_p99.text(),
            s.writer_drain_after_load_s,
            m.backlog.backlog,
            m.backlog.seconds,
            s.writer_backlog_events_per_s
        ),
        format!(
            "- peak RSS (MiB): {}",
            joined(m.rss_mib.iter().map(|(name, mib)| format!("{name} {mib:.1}")))
        ),
        format!(
            "- CPU per purchase during the direct run, µs (total {cpu_total:.0}, of {cpu_available:.0} available at that rate): {}",
            joined(
                m.direct_cpu_us_per_purchase
                    .iter()
                    .filter(|(_, us)| *us >= 0.5)
                    .map(|(name, us)| format!("{name} {us:.0}"))
            )
        ),
        format!("- oversold: **{}**", m.oversold),
    ]);
    if let (Some(store), Some(broker)) = (
        s.mariadb_writer_cpu_us_per_order,
        s.rabbitmq_cpu_us_per_order,
    ) {
        lines.push(format!(
            "- CPU per order from the direct run's start until MySQL held its every order, µs: MariaDB + stock-writer {store:.1}, RabbitMQ {broker:.1}"
        ));
    }
    lines.push(format!(
        "- the stack's CPU per purchase (loadgen left out) {:.0} µs: {} Redis's own, of which purchase-service {}",
        s.stack_cpu_us_per_purchase,
        times(s.stack_cpu_over_redis),
        times(s.purchase_service_cpu_over_redis)
    ));
    lines.extend(aims_table(s));
    Ok(lines.join("\n") + "\n")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use loadgen::Mode;
    use std::collections::BTreeMap;

    pub(in crate::bench) fn load(label: &str, ok_per_s: f64, p99: f64, busy: u64) -> Load {
        Load {
            label: label.into(),
            url: "http://127.0.0.1:8080".into(),
            items: vec![1],
            concurrency: 64,
            mode: Mode::Closed,
            duration_s: 3.004,
            requests: (ok_per_s * 3.0) as u64 + busy,
            ok: (ok_per_s * 3.0) as u64,
            ok_per_s,
            requests_per_s: ok_per_s,
            statuses: BTreeMap::from([(200, (ok_per_s * 3.0) as u64)]),
            error_codes: if busy > 0 {
                BTreeMap::from([("SYSTEM_BUSY".to_owned(), busy)])
            } else {
                BTreeMap::new()
            },
            latency_ms: Latency {
                p50: p99 / 4.0,
                p95: p99 / 2.0,
                p99,
                max: p99 * 2.0,
                mean: p99 / 3.0,
            },
            longest_gap_without_ok_s: 0.0,
            sale: None,
        }
    }

    fn hot(
        strategy: Strategy,
        concurrency: usize,
        ok_per_s: f64,
        p99: f64,
        busy: u64,
        applied: f64,
    ) -> HotRun {
        HotRun {
            strategy,
            concurrency,
            load: load("hot", ok_per_s, p99, busy),
            writer: WriterPace {
                applied,
                seconds: 4.0,
                drain_s: 0.25,
            },
        }
    }

    /// Two concurrencies with the same figures: the measurements the expected outputs
    /// below are of (first written by scripts/lib/bench_report.py, which this replaced).
    pub(in crate::bench) fn measurements() -> Measurements {
        Measurements {
            machine: Machine {
                cpus: 2,
                platform: "Linux-6.1.0-x86_64".into(),
            },
            quick: true,
            levels: vec![16, 64],
            hot: [16, 64]
                .into_iter()
                .flat_map(|c| {
                    [
                        hot(Strategy::Lua, c, 3700.0, 63.62, 0, 11100.0),
                        hot(Strategy::Lock, c, 560.0, 695.29, 472, 1680.0),
                    ]
                })
                .collect(),
            direct: load("direct", 7000.0, 83.14, 0),
            direct_cpu_us_per_purchase: vec![
                ("purchase-service".into(), 110.0),
                ("beam.smp".into(), 58.0),
                ("redis-server".into(), 40.0),
                ("loadgen".into(), 33.0),
                ("nginx".into(), 0.2),
            ],
            direct_cpu_us_per_order: vec![
                ("purchase-service".into(), 112.0),
                ("beam.smp".into(), 30.0),
                ("mariadbd".into(), 9.5),
                ("stock-writer".into(), 4.0),
            ],
            backlog: Backlog {
                backlog: 38130,
                seconds: 1.7,
            },
            many_items: load("many", 4629.0, 167.29, 0),
            redis_ceiling_rps: 28000.0,
            rss_mib: vec![
                ("auth-service".into(), 10.2),
                ("catalog-service".into(), 10.5),
                ("purchase-service".into(), 29.2),
                ("stock-writer".into(), 19.9),
            ],
            oversold: 0,
            writer_lag_p99: LagP99::Millis(1000.0),
            flash_sales: Vec::new(),
        }
    }

    /// The summary of [`measurements`], figure by figure, but the CPU total, the stack's
    /// CPU over Redis's and the aims (tested below).
    const EXPECTED_SUMMARY: &str = r##"{
  "machine": {
    "cpus": 2,
    "platform": "Linux-6.1.0-x86_64"
  },
  "quick": true,
  "concurrency": 64,
  "hot_item_lua_rps": 3700.0,
  "hot_item_lock_rps": 560.0,
  "lock_system_busy": 472,
  "lua_system_busy": 0,
  "gateway_lua_rps": 3700.0,
  "direct_lua_rps": 7000.0,
  "redis_ceiling_rps": 28000.0,
  "many_items_lua_rps": 4629.0,
  "writer_events_per_s": 2775.0,
  "writer_backlog_events_per_s": 22429.411764705885,
  "writer_drain_after_load_s": 0.25,
  "writer_lag_p99_ms": 1000.0,
  "rss_mib": {
    "auth-service": 10.2,
    "catalog-service": 10.5,
    "purchase-service": 29.2,
    "stock-writer": 19.9
  },
  "direct_cpu_us_per_purchase": {
    "purchase-service": 110.0,
    "beam.smp": 58.0,
    "redis-server": 40.0,
    "loadgen": 33.0,
    "nginx": 0.2
  },
  "oversold": 0,
  "latency_ms": {
    "lua-c16": {
      "p50": 15.905,
      "p95": 31.81,
      "p99": 63.62,
      "max": 127.24,
      "mean": 21.206666666666667
    },
    "lua-c64": {
      "p50": 15.905,
      "p95": 31.81,
      "p99": 63.62,
      "max": 127.24,
      "mean": 21.206666666666667
    },
    "lock-c16": {
      "p50": 173.8225,
      "p95": 347.645,
      "p99": 695.29,
      "max": 1390.58,
      "mean": 231.76333333333332
    },
    "lock-c64": {
      "p50": 173.8225,
      "p95": 347.645,
      "p99": 695.29,
      "max": 1390.58,
      "mean": 231.76333333333332
    }
  },
  "lua_over_lock": 6.607142857142857,
  "direct_over_ceiling": 0.25,
  "gateway_over_direct": 0.5285714285714286,
  "stack_cpu_us_per_purchase": 208.2,
  "purchase_service_cpu_over_redis": 2.75,
  "mariadb_writer_cpu_us_per_order": 13.5,
  "rabbitmq_cpu_us_per_order": 30.0,
  "rss_mib_max": 29.2,
  "purchase_service_profile": null
}"##;
    /// The Markdown report of [`measurements`].
    const EXPECTED_REPORT: &str = r##"# Benchmark report

Machine: 2 CPUs, Linux-6.1.0-x86_64. Quick run. Each load ran 3s, closed loop, loadgen and the whole stack on the same machine.

| scenario | concurrency | purchases/s | p50 ms | p95 ms | p99 ms | SYSTEM_BUSY |
|---|---|---|---|---|---|---|
| hot item, lua, gateway | 16 | 3700 | 15.90 | 31.81 | 63.62 | 0 |
| hot item, lua, gateway | 64 | 3700 | 15.90 | 31.81 | 63.62 | 0 |
| hot item, lock, gateway | 16 | 560 | 173.82 | 347.64 | 695.29 | 472 |
| hot item, lock, gateway | 64 | 560 | 173.82 | 347.64 | 695.29 | 472 |
| hot item, lua, direct | 64 | 7000 | 20.79 | 41.57 | 83.14 | 0 |
| 50 items, lua, gateway | 64 | 4629 | 41.82 | 83.64 | 167.29 | 0 |
| redis-benchmark, same script | 64 | 28000 | | | | |

- lua / lock: **6.6×**; direct / redis ceiling: **0.25**
- stock-writer: 2775 events/s applied; lag p99 during the loads 1000 ms; drained 0.25s after the load stopped; alone, it drained a backlog of 38130 events in 1.7s (22429 events/s)
- peak RSS (MiB): auth-service 10.2, catalog-service 10.5, purchase-service 29.2, stock-writer 19.9
- CPU per purchase during the direct run, µs (total 241, of 286 available at that rate): purchase-service 110, beam.smp 58, redis-server 40, loadgen 33
- oversold: **0**
- CPU per order from the direct run's start until MySQL held its every order, µs: MariaDB + stock-writer 13.5, RabbitMQ 30.0
- the stack's CPU per purchase (loadgen left out) 208 µs: 5.21× Redis's own, of which purchase-service 2.75×

## Aims (issue 24), at concurrency 64 (quick run: the aims are for 256 and 10 s loads)

| figure | `summary.json` key | value | aim | met |
|---|---|---|---|---|
| hot item straight at purchase-service / redis-benchmark ceiling | `direct_over_ceiling` | 0.25 | ≥ 0.45 | **no** |
| through the gateway / straight | `gateway_over_direct` | 0.53 | ≥ 0.9 | **no** |
| CPU per purchase, direct run, all processes but loadgen / Redis's own | `stack_cpu_over_redis` | 5.21 | ≤ 3 | **no** |
| purchase-service's CPU per purchase / Redis's | `purchase_service_cpu_over_redis` | 2.75 | ≤ 1.25 | **no** |
| MariaDB + stock-writer CPU per order, µs | `mariadb_writer_cpu_us_per_order` | 13.5 | ≤ 15 | yes |
| RabbitMQ CPU per order, µs | `rabbitmq_cpu_us_per_order` | 30.0 | ≤ 6 | **no** |
| peak RSS of every service, MiB | `rss_mib_max` | 29.2 | ≤ 32 | yes |
| lua / lock | `lua_over_lock` | 6.6 | ≥ 10 | **no** |
| stock-writer lag p99, ms | `writer_lag_p99_ms` | 1000 | ≤ 1000 | yes |
| oversold | `oversold` | 0 | ≤ 0 | yes |

Aims met: 4 of 10.
"##;
    /// Every key of [`EXPECTED_SUMMARY`], in its order.
    const SUMMARY_KEYS: [&str; 30] = [
        "machine",
        "quick",
        "concurrency",
        "hot_item_lua_rps",
        "hot_item_lock_rps",
        "lock_system_busy",
        "lua_system_busy",
        "gateway_lua_rps",
        "direct_lua_rps",
        "redis_ceiling_rps",
        "many_items_lua_rps",
        "writer_events_per_s",
        "writer_backlog_events_per_s",
        "writer_drain_after_load_s",
        "writer_lag_p99_ms",
        "rss_mib",
        "direct_cpu_us_per_purchase",
        "oversold",
        "latency_ms",
        "lua_over_lock",
        "direct_over_ceiling",
        "gateway_over_direct",
        "stack_cpu_us_per_purchase",
        "stack_cpu_over_redis",
        "purchase_service_cpu_over_redis",
        "mariadb_writer_cpu_us_per_order",
        "rabbitmq_cpu_us_per_order",
        "rss_mib_max",
        "purchase_service_profile",
        "aims",
    ];

    #[test]
    fn the_summary_has_every_key_in_order() {
        let summary = Summary::new(&measurements()).unwrap();
        let text = serde_json::to_string(&summary).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = SUMMARY_KEYS.to_vec();
        expected.push("cpu_us_per_purchase_total");
        expected.sort();
        assert_eq!(keys, expected);
        let positions: Vec<usize> = SUMMARY_KEYS
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "keys keep the report's order");
        assert!(
            text.find("\"purchase-service\":110").unwrap() < text.find("\"loadgen\":33").unwrap(),
            "CPU per purchase stays largest first: {text}"
        );
    }

    #[test]
    fn a_lag_beyond_the_buckets_is_null_in_json_and_said_in_words() {
        let mut m = measurements();
        m.writer_lag_p99 = LagP99::OverTopBucket;
        let summary = Summary::new(&m).unwrap();
        assert_eq!(
            serde_json::to_value(&summary).unwrap()["writer_lag_p99_ms"],
            serde_json::Value::Null
        );
        assert!(
            markdown(&m, &summary)
                .unwrap()
                .contains("lag p99 during the loads over 10 s;")
        );
    }

    #[test]
    fn the_summary_derives_every_figure_and_the_cpu_total_from_the_measurements() {
        let summary = serde_json::to_value(Summary::new(&measurements()).unwrap()).unwrap();
        let expected: serde_json::Value = serde_json::from_str(EXPECTED_SUMMARY).unwrap();
        for (key, value) in expected.as_object().unwrap() {
            assert_eq!(&summary[key], value, "{key}");
        }
        let total = summary["cpu_us_per_purchase_total"].as_f64().unwrap();
        assert!((total - 241.2).abs() < 1e-9, "{total}");
    }

    #[test]
    fn every_flash_sale_adds_its_figures() {
        let mut m = measurements();
        let load: Load = serde_json::from_value(serde_json::json!({
            "label": "sale", "url": "http://x", "items": [1], "concurrency": 64,
            "mode": "closed", "duration_s": 4.0, "requests": 20000, "ok": 1000,
            "ok_per_s": 250.0, "requests_per_s": 5000.0,
            "statuses": {"200": 1000, "409": 19000},
            "error_codes": {"INSUFFICIENT_STOCK": 19000},
            "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0, "mean": 1.5},
            "sale": {"sold_out_after_s": 0.5, "ok_per_s": 2000.0,
                     "ok_latency_ms": {"p50": 5.0, "p95": 8.0, "p99": 9.0, "max": 12.0, "mean": 6.0},
                     "rejected_after": 19000, "rejected_per_s": 6000.0, "server_errors": 0}
        }))
        .unwrap();
        m.flash_sales.push(FlashSale {
            stock: 1000,
            buyers: 20_000,
            concurrency: 64,
            redis: "single".into(),
            load,
            answered_from_marks: 17_100,
            drain_s: 0.4,
            oversold: 0,
        });
        let summary = serde_json::to_value(Summary::new(&m).unwrap()).unwrap();
        assert_eq!(summary["flash_sale_1k_sold_out_s"], 0.5);
        assert_eq!(summary["flash_sale_1k_ok_p99_ms"], 9.0);
        assert_eq!(summary["flash_sale_1k_rejected_per_s"], 6000.0);
        assert_eq!(summary["flash_sale_1k_sold_out_mark_share"], 0.9);
        assert_eq!(summary["flash_sale_1k_oversold"], 0.0);
    }

    #[test]
    fn the_markdown_report_is_the_scenario_table_and_the_figures_below_it() {
        let m = measurements();
        assert_eq!(
            markdown(&m, &Summary::new(&m).unwrap()).unwrap(),
            EXPECTED_REPORT
        );
    }

    #[test]
    fn every_figure_of_the_table_is_checked_against_its_aim() {
        let summary = Summary::new(&measurements()).unwrap();
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(close(summary.stack_cpu_over_redis, 208.2 / 40.0));
        assert!(close(summary.purchase_service_cpu_over_redis, 2.75));
        assert_eq!(summary.mariadb_writer_cpu_us_per_order, Some(13.5));
        assert_eq!(summary.rabbitmq_cpu_us_per_order, Some(30.0));
        assert_eq!(summary.rss_mib_max, 29.2);
        let checks: Vec<(&str, bool)> = summary
            .aims
            .0
            .iter()
            .map(|(key, check)| (key.as_str(), check.met))
            .collect();
        assert_eq!(
            checks,
            [
                ("direct_over_ceiling", false),
                ("gateway_over_direct", false),
                ("stack_cpu_over_redis", false),
                ("purchase_service_cpu_over_redis", false),
                ("mariadb_writer_cpu_us_per_order", true),
                ("rabbitmq_cpu_us_per_order", false),
                ("rss_mib_max", true),
                ("lua_over_lock", false),
                ("writer_lag_p99_ms", true),
                ("oversold", true),
            ]
        );
        for (key, check) in &summary.aims.0 {
            assert_eq!(check.value, summary.value(key), "{key}");
        }
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(
            json["aims"]["mariadb_writer_cpu_us_per_order"],
            serde_json::json!({
                "figure": "MariaDB + stock-writer CPU per order, µs",
                "value": 13.5,
                "aim": "<= 15",
                "met": true
            })
        );
    }

    #[test]
    fn unknown_figures_are_null_and_miss_their_aim() {
        let mut m = measurements();
        m.direct_cpu_us_per_order.clear();
        m.direct_cpu_us_per_purchase
            .retain(|(name, _)| name != "redis-server");
        m.writer_lag_p99 = LagP99::OverTopBucket;
        let summary = Summary::new(&m).unwrap();
        let json = serde_json::to_value(&summary).unwrap();
        for key in [
            "stack_cpu_over_redis",
            "purchase_service_cpu_over_redis",
            "mariadb_writer_cpu_us_per_order",
            "rabbitmq_cpu_us_per_order",
            "purchase_service_profile",
        ] {
            assert_eq!(json[key], serde_json::Value::Null, "{key}");
        }
        assert_eq!(json["aims"]["writer_lag_p99_ms"]["met"], false);
        assert_eq!(
            json["aims"]["rabbitmq_cpu_us_per_order"]["value"],
            serde_json::Value::Null
        );
        let report = markdown(&m, &summary).unwrap();
        assert!(
            report.contains(
                "| RabbitMQ CPU per order, µs | `rabbitmq_cpu_us_per_order` | n/a | ≤ 6 | **no** |"
            ),
            "{report}"
        );
        assert!(!report.contains("CPU per order from the direct run's start"));
        let profiled = summary.with_profile(Some(Ordered(vec![("samples".into(), 10.0)])));
        assert_eq!(
            serde_json::to_value(&profiled).unwrap()["purchase_service_profile"],
            serde_json::json!({"samples": 10.0})
        );
    }

    #[test]
    fn cpu_per_purchase_is_the_ticks_spent_over_the_purchases() {
        let before = vec![
            ("purchase-service".to_owned(), 100),
            ("loadgen".to_owned(), 0),
        ];
        let after = vec![
            ("purchase-service".to_owned(), 300),
            ("loadgen".to_owned(), 50),
            ("mariadbd".to_owned(), 10),
        ];
        assert_eq!(
            cpu_us_per_purchase(&before, &after, 100.0, 10_000),
            [
                ("purchase-service".to_owned(), 200.0),
                ("loadgen".to_owned(), 50.0),
                ("mariadbd".to_owned(), 10.0)
            ]
        );
    }
}
