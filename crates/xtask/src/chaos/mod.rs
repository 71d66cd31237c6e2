//! `cargo xtask chaos [SECONDS]`: a fault drill on the native stack during a purchase
//! load through the gateway. kill -9 stock-writer and restart it, restart the broker,
//! kill -9 purchase-service and restart it; then wait for the drain and check that every
//! order answered 200 is in MySQL exactly once and that stock is conserved. Beside it
//! runs a reservation load on an item with a short payment window, never paid: every
//! reservation must expire exactly once through the faults and give its unit back. The broker
//! is a private RabbitMQ node ([`rabbit`]) that purchase-service and stock-writer use
//! for the drill; they go back to the machine's RabbitMQ afterwards and the node is
//! stopped. Every second it records the loads' answers, the outboxes and stock-writer's
//! lag ([`seconds`]), drawn with the faults as `target/chaos/timeline.svg`.
//! Writes `target/chaos/report.md` and `report.json`; fails when anything was lost,
//! doubled or not conserved.

mod instances;
mod instances_report;
mod rabbit;
mod redis_drill;
mod redis_nodes;
mod redis_report;
mod report;
mod seconds;

use crate::api::Admin;
use crate::native::NativeStack;
use crate::{Backends, step};
use anyhow::Context;
use devstack::stock::{open_reservations, outbox_len, persisted_order_ids, status_counts};
use devstack::{OrderAudit, ServiceEnv};
use rabbit::PrivateRabbit;
use report::{DrillReport, ReservationCheck, Timeline};
use seconds::{LoadSeconds, Sampler};
use std::path::Path;
use std::time::{Duration, Instant};

/// The services that talk to RabbitMQ, moved to the private node for the drill.
const BROKER_USERS: [&str; 2] = ["purchase-service", "stock-writer"];
const INITIAL_STOCK: u64 = 1_000_000;
const CONCURRENCY: usize = 32;
/// The reservation load: stock, payment window, buyers at once.
const RESERVATION_STOCK: u64 = 1_000_000;
const RESERVATION_WINDOW_SECS: u32 = 2;
const RESERVATION_CONCURRENCY: usize = 8;
/// How long the outbox may take to drain after the load.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

pub use instances::run as run_instances;

/// Runs the Redis drill ([`redis_drill`]); whether the acknowledged scenarios lost
/// nothing and none doubled anything. Writes `target/chaos/redis-report.{md,json}`.
pub async fn run_redis(stack: &NativeStack, seconds: u64) -> anyhow::Result<bool> {
    let out = stack.root.join("target/chaos");
    std::fs::create_dir_all(&out)?;
    let mut reports = redis_drill::run(stack, seconds, &out).await?;
    for report in &mut reports {
        let marks = report.timeline.marks();
        report.chart = report
            .per_second
            .publish(&report.name, marks, &out, &report.chart_file);
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    publish(
        &out,
        "redis-report",
        &redis_report::markdown(&reports, cpus),
        &reports,
    )?;
    Ok(reports.iter().all(redis_report::ScenarioReport::passed))
}

/// Runs the drill; whether nothing was lost, doubled or unconserved.
pub async fn run(stack: &NativeStack, seconds: u64) -> anyhow::Result<bool> {
    let out = stack.root.join("target/chaos");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    step(format!(
        "starting a private RabbitMQ node {} on 127.0.0.1:{}",
        rabbit::NODE,
        rabbit::PORT
    ));
    let node = PrivateRabbit::start(out.join("rabbitmq")).await?;
    let drilled = drill(stack, &node, seconds, &out).await;
    step("purchase-service and stock-writer back on the machine's RabbitMQ");
    let mut restored = Ok(());
    for service in BROKER_USERS {
        restored = restored.and(stack.restart_service(service, &ServiceEnv::new()).await);
    }
    let stopped = node.stop();
    let mut report = drilled?;
    restored?;
    stopped?;
    let title = format!(
        "Chaos drill: purchases at concurrency {CONCURRENCY} and reservations at {RESERVATION_CONCURRENCY} through the gateway"
    );
    let marks = report.timeline.marks();
    report.chart = report.per_second.publish(&title, marks, &out, "timeline");
    publish(&out, "report", &report.markdown(), &report)?;
    Ok(report.passed())
}

/// Writes a drill's report as `<name>.md` and `<name>.json` under `out`, and prints it.
fn publish(
    out: &Path,
    name: &str,
    markdown: &str,
    report: &impl serde::Serialize,
) -> anyhow::Result<()> {
    std::fs::write(out.join(format!("{name}.md")), markdown)?;
    std::fs::write(
        out.join(format!("{name}.json")),
        serde_json::to_string_pretty(report)? + "\n",
    )?;
    print!("{markdown}");
    Ok(())
}

async fn drill(
    stack: &NativeStack,
    node: &PrivateRabbit,
    seconds: u64,
    out: &Path,
) -> anyhow::Result<DrillReport> {
    stack.up().await?;
    let private_broker = ServiceEnv::new().with("RABBITMQ_PORT", rabbit::PORT.to_string());
    for service in BROKER_USERS {
        stack.restart_service(service, &private_broker).await?;
    }
    let mut backends = Backends::connect(&stack.settings).await?;
    let admin = Admin::login(stack.gateway_port).await?;
    let item = admin
        .create_item(&format!("chaos {}", std::process::id()), INITIAL_STOCK)
        .await?;
    let mut timeline = Timeline::default();
    timeline.note(format!(
        "item {item} with stock {INITIAL_STOCK}; load for {seconds}s through the gateway; purchase-service and stock-writer on the private RabbitMQ node {} (127.0.0.1:{})",
        rabbit::NODE,
        rabbit::PORT
    ));

    let reserving = admin
        .create_reservable_item(
            &format!("chaos reservations {}", std::process::id()),
            RESERVATION_STOCK,
            RESERVATION_WINDOW_SECS,
        )
        .await?;
    timeline.note(format!(
        "item {reserving} with stock {RESERVATION_STOCK} and a {RESERVATION_WINDOW_SECS} s payment window: reserved at concurrency {RESERVATION_CONCURRENCY} beside the load, never paid"
    ));
    let gateway = format!("http://127.0.0.1:{}", stack.gateway_port);
    let load_of = |item: u64, concurrency: usize, label: &str| loadgen::Run {
        concurrency,
        duration: Duration::from_secs(seconds),
        collect_orders: true,
        label: label.into(),
        progress: false,
        ..loadgen::Run::new(
            gateway.clone(),
            vec![item],
            stack.settings.jwt.private_key_path.clone(),
        )
    };
    let run = load_of(item, CONCURRENCY, "chaos");
    let reservation_run = load_of(reserving, RESERVATION_CONCURRENCY, "chaos reservations");
    let sampler = Sampler::start(
        stack.settings.redis.clone(),
        vec![item, reserving],
        NativeStack::port("stock-writer"),
    );
    let load = tokio::task::spawn_blocking(move || run.execute());
    let reservation_load = tokio::task::spawn_blocking(move || reservation_run.execute());

    // Each fault while the load runs (the broker alone takes seconds to come back).
    let pause = |s| tokio::time::sleep(Duration::from_secs(s));
    let crash = Crash {
        stack,
        env: &private_broker,
    };
    pause(4).await;
    crash
        .and_restart_after("stock-writer", 4, &mut timeline)
        .await?;
    pause(4).await;
    timeline.mark(
        "broker restart",
        format!("restart RabbitMQ (the private node {})", rabbit::NODE),
    );
    node.restart()?;
    timeline.mark("broker back", "RabbitMQ back");
    pause(3).await;
    crash
        .and_restart_after("purchase-service", 1, &mut timeline)
        .await?;
    if load.is_finished() {
        timeline.note("WARNING: the load ended before the last fault; pass a longer SECONDS");
    }
    let outcome = load.await??;
    let reserved = reservation_load.await??;
    let origin = outcome.started;
    let loads = vec![
        LoadSeconds::of("purchases", &outcome, origin),
        LoadSeconds::of("reservations", &reserved, origin),
    ];
    std::fs::write(
        out.join("load.json"),
        serde_json::to_string_pretty(&outcome.summary)? + "\n",
    )?;
    timeline.note(format!(
        "load over: {}",
        serde_json::to_string(&outcome.summary.statuses)?
    ));

    stack.wait_ready().await?;
    let confirmed = outcome.order_ids;
    let drained = poll_until(&mut backends, async |b| {
        let pending = outbox_len(&mut b.redis, &b.keyspace, &[item]).await?;
        let persisted = b.account(item, INITIAL_STOCK).await?.order_rows;
        Ok(pending == 0 && persisted >= confirmed.len() as u64)
    })
    .await?;
    timeline.note(format!(
        "drained in {}s (the relay republishes outbox orders after OUTBOX_RELAY_AFTER_MS)",
        drained.as_secs()
    ));
    let per_second = sampler.stop(origin, loads);

    let persisted = persisted_order_ids(&mut backends.mysql, item).await?;
    write_ids(&out.join("confirmed.txt"), &confirmed)?;
    write_ids(&out.join("persisted.txt"), &persisted)?;
    let reservations =
        settle_reservations(&mut backends, reserving, reserved.order_ids, &mut timeline).await?;
    timeline.align(origin);
    Ok(DrillReport {
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        item,
        seconds,
        concurrency: CONCURRENCY,
        broker: format!("{} on 127.0.0.1:{}", rabbit::NODE, rabbit::PORT),
        timeline,
        orders: OrderAudit::new(&confirmed, &persisted),
        stock: backends.account(item, INITIAL_STOCK).await?,
        reservations,
        per_second,
        chart: None,
    })
}

/// Waits until every reservation answered 200 is in MySQL and none is open anywhere
/// (each expired), then audits the reservation item.
async fn settle_reservations(
    backends: &mut Backends,
    item: u64,
    confirmed: Vec<String>,
    timeline: &mut Timeline,
) -> anyhow::Result<ReservationCheck> {
    let settled = poll_until(backends, async |b| {
        let pending = outbox_len(&mut b.redis, &b.keyspace, &[item]).await?;
        let open = open_reservations(&mut b.redis, &b.keyspace, item).await?;
        let statuses = status_counts(&mut b.mysql, item).await?;
        let persisted: u64 = statuses.values().sum();
        Ok(pending == 0
            && open == 0
            && !statuses.contains_key("reserved")
            && persisted >= confirmed.len() as u64)
    })
    .await?;
    timeline.note(format!(
        "reservations settled in {}s after the load (each expires {RESERVATION_WINDOW_SECS} s after purchase)",
        settled.as_secs()
    ));
    let persisted = persisted_order_ids(&mut backends.mysql, item).await?;
    Ok(ReservationCheck {
        item,
        window_secs: RESERVATION_WINDOW_SECS,
        concurrency: RESERVATION_CONCURRENCY,
        orders: OrderAudit::new(&confirmed, &persisted),
        statuses: status_counts(&mut backends.mysql, item).await?,
        open_in_redis: open_reservations(&mut backends.redis, &backends.keyspace, item).await?,
        stock: backends.account(item, RESERVATION_STOCK).await?,
    })
}

/// Asks `done` once a second until it says yes or [`DRAIN_LIMIT`] has passed; how long
/// that took.
async fn poll_until(
    backends: &mut Backends,
    mut done: impl AsyncFnMut(&mut Backends) -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < DRAIN_LIMIT && !done(backends).await? {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(started.elapsed())
}

/// A service crashing: killed (SIGKILL) and started again, with the drill's environment.
struct Crash<'a> {
    stack: &'a NativeStack,
    env: &'a ServiceEnv,
}

impl Crash<'_> {
    async fn and_restart_after(
        &self,
        service: &str,
        down_secs: u64,
        timeline: &mut Timeline,
    ) -> anyhow::Result<()> {
        let kill = format!("kill -9 {service}");
        timeline.mark(&kill, kill.clone());
        self.stack.stop_service(service, libc::SIGKILL);
        tokio::time::sleep(Duration::from_secs(down_secs)).await;
        let restart = format!("restart {service}");
        timeline.mark(&restart, restart.clone());
        self.stack.start_service(service, self.env)
    }
}

/// Order ids, sorted, one per line.
fn write_ids(path: &Path, ids: &[String]) -> anyhow::Result<()> {
    let mut sorted = ids.to_vec();
    sorted.sort();
    std::fs::write(path, sorted.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))
}
