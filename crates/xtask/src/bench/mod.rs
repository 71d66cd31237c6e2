//! `cargo xtask bench [--quick]`: every scenario in one run on the native stack, so the
//! figures compare as ratios. The hot item through the gateway with
//! `PURCHASE_STRATEGY=lua` then `lock` at each concurrency; the same straight at
//! purchase-service with the CPU every process spends per purchase; stock-writer on a
//! backlog built while it was stopped; 50 items; the redis-benchmark ceiling of the same
//! script; the peak RSS of every service; the hot item and 50 items on the local Redis
//! Cluster with and without replica acknowledgement ([`cluster`]); and a flash sale of a
//! small and a large stock to thousands of buyers ([`sale`]), and the small one behind a
//! waiting room ([`room`]); the hot item and the small
//! sale with one purchase-service instance and then two ([`instances`]); a perf profile of
//! purchase-service during a repeat of the straight load ([`profile`]). After every scenario
//! it waits for the writer to drain and checks conservation. Writes `target/bench/`: `summary.json`,
//! `report.md`, the charts ([`figures`]) and the flame graph, plus each load's summary and the
//! raw measurements.

mod ceiling;
mod cluster;
mod figures;
mod instances;
mod profile;
mod report;
mod room;
mod sale;

use crate::api::Admin;
use crate::metrics;
use crate::native::NativeStack;
use crate::{Backends, process, step};
use anyhow::Context;
use devstack::stock::outbox_len;
use devstack::{SERVICES, ServiceEnv, StockAccount, probe};
use report::{Backlog, HotRun, Machine, Measurements, Strategy, Summary, WriterPace};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Other processes whose CPU the direct run counts, by command name.
const MACHINE_PROCESSES: [&str; 4] = ["redis-server", "beam.smp", "mariadbd", "nginx"];
/// Stock of every hot item: more than any load can sell.
const HOT_STOCK: u64 = 10_000_000;
const MANY_ITEMS: usize = 50;
const MANY_ITEMS_STOCK: u64 = 1_000_000;
/// Buyers (tokens) of every load.
const USERS: u64 = 2000;
/// How long the backlog load runs with the writer stopped.
const BACKLOG_LOAD: Duration = Duration::from_secs(5);
/// How long a drain may take before the bench goes on regardless.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

struct Plan {
    quick: bool,
    levels: Vec<usize>,
    duration: Duration,
    ceiling_requests: u64,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                quick,
                levels: vec![64],
                duration: Duration::from_secs(3),
                ceiling_requests: 200_000,
            }
        } else {
            Plan {
                quick,
                levels: vec![16, 64, 256],
                duration: Duration::from_secs(10),
                ceiling_requests: 1_000_000,
            }
        }
    }

    fn top(&self) -> usize {
        self.levels.last().copied().unwrap_or(64)
    }
}

/// One scenario's conservation check, as written to `conservation.json`.
#[derive(Serialize)]
struct Checked {
    scenario: String,
    oversold: u64,
    account: StockAccount,
}

struct Bench<'a> {
    stack: &'a NativeStack,
    backends: Backends,
    admin: Admin,
    plan: Plan,
    out: PathBuf,
    checked: Vec<Checked>,
    items_made: u64,
}

pub async fn run(stack: &NativeStack, quick: bool, waiting_room_only: bool) -> anyhow::Result<()> {
    let out = stack.root.join("target/bench");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    stack.up().await?;
    which("redis-benchmark")
        .context("redis-benchmark is missing (apt-get install -y redis-tools)")?;
    let mut bench = Bench {
        stack,
        backends: Backends::connect(&stack.settings).await?,
        admin: Admin::login(stack.gateway_port).await?,
        plan: Plan::new(quick),
        out,
        checked: Vec::new(),
        items_made: 0,
    };
    if waiting_room_only {
        let room = bench.waiting_room().await?;
        write_json(&bench.out.join("waiting-room.json"), &room)?;
        write_json(&bench.out.join("conservation.json"), &bench.checked)?;
        std::fs::write(bench.out.join("report.md"), room.markdown())?;
        print!("{}", room.markdown());
        return Ok(());
    }
    let measurements = bench.measure().await?;
    let profile = bench.profile(&measurements.direct).await?;
    let room = bench.waiting_room().await?;
    let instances = bench.instances().await?;
    let cluster = bench.cluster(measurements.top()).await?;
    let summary = Summary::new(&measurements)?;
    let mut sales = measurements.flash_sales.clone();
    sales.extend(cluster.flash_sales.iter().cloned());
    let summary = summary
        .with_sales(&sales)
        .with_instances(&instances.summary_figures())
        .with_waiting_room(room.summary_figures())
        .with_profile(profile.summary_figures());
    let out = &bench.out;
    let charts = figures::publish(out, &measurements, &cluster);
    let markdown = report::markdown(&measurements, &summary)?
        + &profile.markdown()
        + &sale::markdown(&sales)
        + &room.markdown()
        + &instances.markdown()
        + &cluster.markdown(summary.hot_item_lua_rps, summary.many_items_lua_rps)
        + &figures::markdown(&charts);
    write_json(&out.join("measurements.json"), &measurements)?;
    write_json(&out.join("profile.json"), &profile)?;
    write_json(&out.join("instances.json"), &instances)?;
    write_json(&out.join("waiting-room.json"), &room)?;
    write_json(&out.join("cluster.json"), &cluster)?;
    write_json(&out.join("conservation.json"), &bench.checked)?;
    write_json(&out.join("summary.json"), &summary)?;
    std::fs::write(out.join("report.md"), &markdown)?;
    print!("{markdown}");
    step(format!(
        "report: {}, summary: {}, charts: {} of 3 in {} (.svg)",
        out.join("report.md").display(),
        out.join("summary.json").display(),
        charts.len(),
        out.display()
    ));
    Ok(())
}

impl Bench<'_> {
    async fn measure(&mut self) -> anyhow::Result<Measurements> {
        let gateway = self.stack.gateway_port;
        let purchase_port = NativeStack::port("purchase-service");
        let top = self.plan.top();

        let mut hot = Vec::new();
        for strategy in Strategy::ALL {
            self.use_strategy(strategy).await?;
            for c in self.plan.levels.clone() {
                let label = format!("hot-{}-c{c}", strategy.name());
                let item = self.new_item(HOT_STOCK).await?;
                let before = self.applied_total().await?;
                let started = Instant::now();
                let load = self
                    .load(&label, gateway, vec![item], c, self.plan.duration)
                    .await?;
                let drain_s = self.drain(&[item]).await?;
                let seconds = started.elapsed().as_secs_f64();
                let applied = self.applied_total().await? - before;
                self.check(&label, item, HOT_STOCK).await?;
                hot.push(HotRun {
                    strategy,
                    concurrency: c,
                    load,
                    writer: WriterPace {
                        applied,
                        seconds,
                        drain_s,
                    },
                });
            }
        }
        self.use_strategy(Strategy::Lua).await?;

        // Straight at purchase-service, with the CPU every process spent meanwhile (what
        // limits the ratio to the redis-benchmark ceiling); loadgen's is this process's.
        let item = self.new_item(HOT_STOCK).await?;
        let cpu_before = self.cpu_ticks();
        let label = format!("direct-lua-c{top}");
        let direct = self
            .load(&label, purchase_port, vec![item], top, self.plan.duration)
            .await?;
        let cpu_after = self.cpu_ticks();
        let direct_cpu_us_per_purchase = report::cpu_us_per_purchase(
            &cpu_before,
            &cpu_after,
            process::ticks_per_second(),
            direct.ok,
        );
        self.drain(&[item]).await?;
        // What each order cost until MySQL held it (the order path's share: RabbitMQ,
        // stock-writer, MariaDB).
        let direct_cpu_us_per_order = report::cpu_us_per_purchase(
            &cpu_before,
            &self.cpu_ticks(),
            process::ticks_per_second(),
            direct.ok,
        );
        self.check(&label, item, HOT_STOCK).await?;

        // The writer's lag during the loads above.
        let writer_metrics = self.writer_metrics().await?;
        std::fs::write(self.out.join("writer-metrics.txt"), &writer_metrics)?;
        let writer_lag_p99 = metrics::histogram_p99(&writer_metrics, "writer_lag_seconds");

        let backlog = self.backlog(top).await?;

        let mut items = Vec::new();
        for _ in 0..MANY_ITEMS {
            items.push(self.new_item(MANY_ITEMS_STOCK).await?);
        }
        let label = format!("many-items-lua-c{top}");
        let many_items = self
            .load(&label, gateway, items.clone(), top, self.plan.duration)
            .await?;
        self.drain(&items).await?;
        for item in items {
            self.check("many-items", item, MANY_ITEMS_STOCK).await?;
        }

        step(format!("redis-benchmark ceiling (concurrency {top})"));
        let ceiling = ceiling::measure(
            &mut self.backends.redis,
            &self.stack.settings.redis,
            top,
            self.plan.ceiling_requests,
        )
        .await?;
        std::fs::write(self.out.join("redis-benchmark.csv"), &ceiling.csv)?;

        let mut flash_sales = Vec::new();
        for stock in sale::SALE_STOCKS {
            let label = format!("flash-sale-{stock}");
            let (item, load, answered_from_marks) = self.sell_out(stock, &label).await?;
            let drain_s = self.drain(&[item]).await?;
            let oversold = self.check(&label, item, stock).await?;
            flash_sales.push(sale::FlashSale {
                stock,
                buyers: sale::SALE_BUYERS,
                concurrency: top,
                redis: "single".into(),
                load,
                answered_from_marks,
                drain_s,
                oversold,
            });
        }

        let rss_mib = SERVICES
            .iter()
            .map(|service| {
                let mib = self
                    .stack
                    .pid(service)
                    .and_then(process::peak_rss_mib)
                    .unwrap_or_default();
                (service.to_string(), (mib * 10.0).round() / 10.0)
            })
            .collect();

        Ok(Measurements {
            machine: Machine::this(),
            quick: self.plan.quick,
            levels: self.plan.levels.clone(),
            hot,
            direct,
            direct_cpu_us_per_purchase,
            direct_cpu_us_per_order,
            backlog,
            many_items,
            redis_ceiling_rps: ceiling.requests_per_s,
            rss_mib,
            oversold: self.checked.iter().map(|c| c.oversold).sum(),
            writer_lag_p99,
            flash_sales,
        })
    }

    /// A profile of purchase-service during a repeat of the direct load ([`profile`]);
    /// its absence (perf missing or refused) is said in the report, never an error.
    async fn profile(&mut self, unprofiled: &loadgen::Summary) -> anyhow::Result<profile::Profile> {
        let top = self.plan.top();
        let item = self.new_item(HOT_STOCK).await?;
        let label = format!("profile-direct-lua-c{top}");
        let pid = self
            .stack
            .pid("purchase-service")
            .context("purchase-service does not run")?;
        step(format!(
            "profiling purchase-service: {}",
            profile::Profile::command()
        ));
        let recording = profile::Recording::start(pid, &self.out);
        let port = NativeStack::port("purchase-service");
        let load = self
            .load(&label, port, vec![item], top, self.plan.duration)
            .await;
        let stopped = recording.and_then(profile::Recording::stop);
        let load = load?;
        let out = self.out.clone();
        let notes = format!(
            "perf record -F {} --call-graph {}, hot item straight at purchase-service, c{top}, {:.0} s, {:.0} purchases/s; kernel orange, malloc/free red, tokio blue, redis green, actix purple",
            profile::FREQUENCY_HZ,
            profile::CALL_GRAPH,
            load.duration_s,
            load.ok_per_s
        );
        let recorded = tokio::task::spawn_blocking(move || {
            let (data, perf_cpu_s) = stopped?;
            let folded = profile::fold(&data, &out, "purchase-service under load", &notes)?;
            Ok((folded, perf_cpu_s))
        })
        .await?;
        if let Err(why) = &recorded {
            step(format!("WARNING: no profile of purchase-service: {why}"));
        }
        self.drain(&[item]).await?;
        self.check(&label, item, HOT_STOCK).await?;
        Ok(profile::Profile::new(
            top,
            &load,
            unprofiled.ok_per_s,
            recorded,
        ))
    }

    /// stock-writer's own pace: a backlog built with it stopped, then drained while
    /// nothing else runs (during the loads it only gets what the request path leaves).
    async fn backlog(&mut self, concurrency: usize) -> anyhow::Result<Backlog> {
        let item = self.new_item(HOT_STOCK).await?;
        self.stack.stop_service("stock-writer", libc::SIGTERM);
        let label = format!("backlog-lua-c{concurrency}");
        let purchase_port = NativeStack::port("purchase-service");
        self.load(&label, purchase_port, vec![item], concurrency, BACKLOG_LOAD)
            .await?;
        // Every publish, and the relay's for orders the publish queue shed, reaches the queue.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let backlog =
            outbox_len(&mut self.backends.redis, &self.backends.keyspace, &[item]).await?;
        let started = Instant::now();
        self.stack
            .start_service("stock-writer", &ServiceEnv::new())?;
        self.drain(&[item]).await?;
        let seconds = started.elapsed().as_secs_f64();
        self.stack
            .wait_service_ready("stock-writer", Instant::now() + Duration::from_secs(30))
            .await?;
        self.check("writer-backlog", item, HOT_STOCK).await?;
        Ok(Backlog { backlog, seconds })
    }

    async fn use_strategy(&self, strategy: Strategy) -> anyhow::Result<()> {
        step(format!(
            "purchase-service with PURCHASE_STRATEGY={}",
            strategy.name()
        ));
        let env = ServiceEnv::new().with("PURCHASE_STRATEGY", strategy.name());
        self.stack.restart_service("purchase-service", &env).await
    }

    async fn new_item(&mut self, stock: u64) -> anyhow::Result<u64> {
        let name = self.item_name();
        self.admin.create_item(&name, stock).await
    }

    /// A name no other item of this run or another has.
    fn item_name(&mut self) -> String {
        self.items_made += 1;
        format!("bench {} {}", std::process::id(), self.items_made)
    }

    /// Runs one load (in loadgen's own threads) and keeps its summary as `<label>.json`.
    async fn load(
        &self,
        label: &str,
        port: u16,
        items: Vec<u64>,
        concurrency: usize,
        duration: Duration,
    ) -> anyhow::Result<loadgen::Summary> {
        step(format!(
            "load: {label} (concurrency {concurrency}, {}s)",
            duration.as_secs()
        ));
        let run = loadgen::Run {
            concurrency,
            duration,
            users: USERS,
            threads: 1,
            label: label.to_owned(),
            ..loadgen::Run::new(
                format!("http://127.0.0.1:{port}"),
                items,
                self.stack.settings.jwt.private_key_path.clone(),
            )
        };
        let outcome = tokio::task::spawn_blocking(move || run.execute()).await??;
        write_json(&self.out.join(format!("{label}.json")), &outcome.summary)?;
        Ok(outcome.summary)
    }

    /// Waits until stock-writer has persisted every order of `items`; seconds waited.
    async fn drain(&mut self, items: &[u64]) -> anyhow::Result<f64> {
        let started = Instant::now();
        while started.elapsed() < DRAIN_LIMIT {
            if outbox_len(&mut self.backends.redis, &self.backends.keyspace, items).await? == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0)
    }

    /// Checks conservation for one item; a broken one counts as at least one oversold.
    /// Returns the units oversold.
    async fn check(&mut self, scenario: &str, item: u64, initial: u64) -> anyhow::Result<u64> {
        let account = self.backends.account(item, initial).await?;
        Ok(self.record_check(scenario, account))
    }

    fn record_check(&mut self, scenario: &str, account: StockAccount) -> u64 {
        let mut oversold = account.oversold();
        if !account.conserved() {
            oversold = oversold.max(1);
            step(format!(
                "CONSERVATION BROKEN in {scenario}: initial {}, sold {}, mysql {}, redis {:?}",
                account.initial, account.sold, account.mysql_stock, account.redis_stock
            ));
        }
        self.checked.push(Checked {
            scenario: scenario.to_owned(),
            oversold,
            account,
        });
        oversold
    }

    async fn writer_metrics(&self) -> anyhow::Result<String> {
        let port = NativeStack::port("stock-writer");
        probe::get(port, "/metrics")
            .await
            .map(|answer| answer.body)
            .context("stock-writer's /metrics does not answer")
    }

    async fn applied_total(&self) -> anyhow::Result<f64> {
        let metrics = self.writer_metrics().await?;
        metrics::counter(&metrics, "writer_events_applied_total")
            .context("stock-writer's /metrics has no writer_events_applied_total")
    }

    /// CPU ticks so far of every process of the stack, by name (a service's instances
    /// summed), and this process's (the load generator's) as `loadgen`.
    fn cpu_ticks(&self) -> Vec<(String, u64)> {
        let mut ticks: Vec<(String, u64)> = SERVICES
            .iter()
            .map(|s| {
                let spent = self
                    .stack
                    .ports(s)
                    .into_iter()
                    .filter_map(|port| self.stack.instance_pid(s, port))
                    .map(process::cpu_ticks)
                    .sum();
                (s.to_string(), spent)
            })
            .collect();
        ticks.extend(
            MACHINE_PROCESSES
                .iter()
                .map(|name| (name.to_string(), process::cpu_ticks_by_name(name))),
        );
        ticks.push(("loadgen".into(), process::own_cpu_ticks()));
        ticks
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// Whether a program is on PATH.
fn which(program: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .with_context(|| format!("{program} is not on PATH"))
}
