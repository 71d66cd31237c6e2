//! `cargo xtask chaos --instances [PAUSE_SECONDS]`: the drill of many instances. Two
//! instances of every service (two stock-writers) behind the gateway, a sale's whole
//! traffic through it ([`loadgen::lifecycle`]: outright purchases of a hot item, and
//! reservations of a scarce item that are paid, cancelled or left to expire and so sell
//! again), and, one after another while it runs: a rolling restart of every service,
//! kill -9 of one purchase-service instance, kill -9 of one stock-writer, and one
//! purchase-service instance paused (SIGSTOP) beyond the gateway's read timeout, then
//! resumed. Afterwards every purchase whose answer was unknown is asked again with its
//! key, the orders drain, and each order is audited against MySQL. The report
//! ([`super::instances_report`]) gives per fault the answers and failures by kind.

use super::instances_report::{FaultWindow, InstancesReport, ReservationFates};
use super::seconds::{LoadSeconds, Sampler};
use super::{poll_until, publish, report::Timeline};
use crate::api::Admin;
use crate::native::NativeStack;
use crate::{Backends, rolling, step};
use devstack::stock::{open_reservations, order_statuses, outbox_len};
use devstack::{OrderAudit, SERVICES, ServiceEnv};
use loadgen::lifecycle::{Lifecycle, LifecycleOutcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const INSTANCES: usize = 2;
const HOT_STOCK: u64 = 1_000_000;
/// Few units, so reservations sell out and every cancel or expiry sells again; paid
/// units are made up by a restock of [`RESTOCK_UNITS`] every [`RESTOCK_EVERY`].
const SCARCE_STOCK: u64 = 40;
const RESTOCK_UNITS: u64 = 5;
const RESTOCK_EVERY: Duration = Duration::from_millis(500);
const PRICE: u64 = 100;
const WINDOW_SECS: u32 = 2;
const HOT_BUYERS: usize = 12;
const RESERVING_BUYERS: usize = 12;
/// Longer than the gateway's `proxy_read_timeout` (30 s).
const PAUSED_FOR: Duration = Duration::from_secs(35);
/// How long after a fault its window stays open (answers still under its effect).
const AFTERMATH: Duration = Duration::from_secs(3);

/// Runs the drill; whether every fault's answers and every order's fate were right.
pub async fn run(stack: &mut NativeStack, pause_secs: u64) -> anyhow::Result<bool> {
    let out = stack.root.join("target/chaos");
    std::fs::create_dir_all(&out)?;
    step(format!(
        "restarting the stack with {INSTANCES} instances of every service"
    ));
    stack.down();
    stack.instances = INSTANCES;
    stack.up().await?;
    let mut report = drill(stack, Duration::from_secs(pause_secs)).await?;
    let title = format!(
        "Instances drill: {INSTANCES} of every service, {HOT_BUYERS} buyers of a hot item and {RESERVING_BUYERS} reserving, through the gateway"
    );
    let marks = report.timeline.marks();
    report.chart = report
        .per_second
        .publish(&title, marks, &out, "instances-timeline");
    publish(&out, "instances-report", &report.markdown(), &report)?;
    Ok(report.passed())
}

async fn drill(stack: &NativeStack, pause: Duration) -> anyhow::Result<InstancesReport> {
    let mut backends = Backends::connect(&stack.settings).await?;
    let admin = Admin::login(stack.gateway_port).await?;
    let pid = std::process::id();
    let hot = admin
        .create_item(&format!("instances hot {pid}"), HOT_STOCK)
        .await?;
    let scarce = admin
        .create_reservable_item(
            &format!("instances scarce {pid}"),
            SCARCE_STOCK,
            WINDOW_SECS,
        )
        .await?;
    let mut timeline = Timeline::default();
    timeline.note(format!(
        "{INSTANCES} instances of every service; item {hot} (stock {HOT_STOCK}) bought outright, item {scarce} (stock {SCARCE_STOCK}, {RESTOCK_UNITS} more every {} ms, {WINDOW_SECS} s to pay) reserved, then paid, cancelled or left to expire in turn",
        RESTOCK_EVERY.as_millis()
    ));
    let load = Lifecycle {
        url: format!("http://127.0.0.1:{}", stack.gateway_port),
        hot_item: hot,
        hot_buyers: HOT_BUYERS,
        reservable_item: scarce,
        price: PRICE,
        reserving_buyers: RESERVING_BUYERS,
        private_key: stack.settings.jwt.private_key_path.clone(),
        webhook_secret: std::env::var("PAYMENT_WEBHOOK_SECRET").unwrap_or_default(),
        users: 50_000,
        longest: Duration::from_secs(600),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = Sampler::start(
        stack.settings.redis.clone(),
        vec![hot, scarce],
        NativeStack::port("stock-writer"),
    );
    let running = {
        let (load, stop) = (load.clone(), stop.clone());
        tokio::task::spawn_blocking(move || load.execute(stop))
    };
    let restocks = restock_until(admin.clone(), scarce, stop.clone());
    let origin = Instant::now();
    let faults = inflict_faults(stack, pause, &mut timeline).await;
    tokio::time::sleep(pause).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcome = running.await??;
    let restocks = restocks
        .join()
        .map_err(|_| anyhow::anyhow!("the restocking thread panicked"))?;
    let faults = faults?;
    let scarce_initial = SCARCE_STOCK + restocks.get("200").copied().unwrap_or(0) * RESTOCK_UNITS;
    let unknowns = {
        let load = load.clone();
        tokio::task::spawn_blocking(move || {
            load.settle_unknown(&mut outcome);
            outcome
        })
    };
    let outcome = unknowns.await?;
    timeline.note(format!(
        "load over; purchases with an unknown answer asked again with their key: {} had happened, {} had not, {} still unknown",
        outcome.unknown_happened, outcome.unknown_not_happened, outcome.unknown_unresolved
    ));
    stack.wait_ready().await?;
    let drained = poll_until(&mut backends, async |b| {
        let pending = outbox_len(&mut b.redis, &b.keyspace, &[hot, scarce]).await?;
        let open = open_reservations(&mut b.redis, &b.keyspace, scarce).await?;
        let statuses = order_statuses(&mut b.mysql, scarce).await?;
        let hot_rows = b.account(hot, HOT_STOCK).await?.order_rows;
        Ok(pending == 0
            && open == 0
            && !statuses.values().any(|s| s == "reserved")
            && statuses.len() >= outcome.reserved.len()
            && hot_rows >= outcome.purchased.len() as u64)
    })
    .await?;
    timeline.note(format!(
        "orders drained and reservations ended {}s after the load",
        drained.as_secs()
    ));
    let started = outcome.started.unwrap_or(origin);
    timeline.align(started);
    let per_second = sampler.stop(started, load_seconds(&outcome));
    let hot_persisted = devstack::stock::persisted_order_ids(&mut backends.mysql, hot).await?;
    let statuses = order_statuses(&mut backends.mysql, scarce).await?;
    let scarce_persisted: Vec<String> = statuses.keys().cloned().collect();
    let windows = faults
        .into_iter()
        .map(|fault| fault.measured(&outcome, started))
        .collect();
    Ok(InstancesReport {
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        instances: INSTANCES,
        buyers: HOT_BUYERS + RESERVING_BUYERS,
        timeline,
        faults: windows,
        purchases: OrderAudit::new(&outcome.purchased, &hot_persisted),
        hot_stock: backends.account(hot, HOT_STOCK).await?,
        reservations: OrderAudit::new(&outcome.reserved, &scarce_persisted),
        fates: ReservationFates::audit(&outcome, &statuses),
        scarce_stock: backends.account(scarce, scarce_initial).await?,
        restocks,
        unknown_happened: outcome.unknown_happened,
        unknown_not_happened: outcome.unknown_not_happened,
        unknown_unresolved: outcome.unknown_unresolved,
        per_second,
        chart: None,
    })
}

/// The admin's restocks of `item` through the gateway until `stop`; their answers by kind.
fn restock_until(
    admin: Admin,
    item: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<BTreeMap<String, u64>> {
    std::thread::spawn(move || {
        let mut answers = BTreeMap::new();
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            answers.insert("no runtime".to_owned(), 1);
            return answers;
        };
        while !stop.load(Ordering::Relaxed) {
            let answer = runtime.block_on(admin.restock(item, RESTOCK_UNITS));
            *answers.entry(answer).or_default() += 1;
            std::thread::sleep(RESTOCK_EVERY);
        }
        answers
    })
}

/// The load's answers per second as the timeline chart draws them: 200s, and failures.
fn load_seconds(outcome: &LifecycleOutcome) -> Vec<LoadSeconds> {
    let seconds = outcome
        .per_second
        .iter()
        .map(|second| loadgen::Second {
            ok: second
                .iter()
                .filter(|(kind, _)| kind.ends_with(" 200"))
                .map(|(_, n)| n)
                .sum(),
            server_errors: second
                .iter()
                .filter(|(kind, _)| loadgen::lifecycle::is_failure(kind))
                .map(|(_, n)| n)
                .sum(),
        })
        .collect();
    vec![LoadSeconds {
        name: "every request".into(),
        start_s: 0.0,
        seconds,
    }]
}

/// A fault as inflicted: its kind and when it began and ended.
pub struct Inflicted {
    kind: super::instances_report::Fault,
    what: String,
    began: Instant,
    ended: Instant,
}

impl Inflicted {
    fn measured(self, outcome: &LifecycleOutcome, started: Instant) -> FaultWindow {
        let on_clock = |at: Instant| {
            at.checked_duration_since(started)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let (from, to) = (on_clock(self.began), on_clock(self.ended + AFTERMATH));
        FaultWindow::new(
            self.kind,
            self.what,
            from,
            to,
            outcome.between(from, to),
            (HOT_BUYERS + RESERVING_BUYERS) as u64,
        )
    }
}

async fn inflict_faults(
    stack: &NativeStack,
    pause: Duration,
    timeline: &mut Timeline,
) -> anyhow::Result<Vec<Inflicted>> {
    use super::instances_report::Fault;
    let mut faults = Vec::new();
    let env = ServiceEnv::new();
    tokio::time::sleep(pause).await;

    let began = Instant::now();
    timeline.mark(
        "rolling restart",
        "rolling restart of every service, one instance at a time",
    );
    for service in [
        "stock-writer",
        "purchase-service",
        "catalog-service",
        "auth-service",
    ] {
        for replaced in rolling::restart_service(stack, service, &env).await? {
            timeline.note(format!(
                "{service} :{} handed over to pid {} (the old one exited by itself: {})",
                replaced.port, replaced.new_pid, replaced.exited_cleanly
            ));
        }
    }
    timeline.mark("restarted", "every instance replaced");
    faults.push(Inflicted {
        kind: Fault::RollingRestart,
        what: format!("rolling restart of {}", SERVICES.join(", ")),
        began,
        ended: Instant::now(),
    });
    tokio::time::sleep(pause).await;

    let purchase = Kill {
        kind: Fault::KillPurchase,
        service: "purchase-service",
        short: "purchase",
        down_for: Duration::from_secs(3),
        until_ready: true,
    };
    faults.push(purchase.inflict(stack, &env, timeline).await?);
    tokio::time::sleep(pause).await;

    let writer = Kill {
        kind: Fault::KillWriter,
        service: "stock-writer",
        short: "writer",
        down_for: Duration::from_secs(2),
        until_ready: false,
    };
    faults.push(writer.inflict(stack, &env, timeline).await?);
    tokio::time::sleep(pause).await;

    let paused = first_port(stack, "purchase-service")?;
    let pid = stack
        .instance_pid("purchase-service", paused)
        .ok_or_else(|| anyhow::anyhow!("purchase-service :{paused} does not run"))?;
    let began = Instant::now();
    timeline.mark(
        "SIGSTOP purchase",
        format!(
            "SIGSTOP purchase-service :{paused} for {}s (the gateway's read timeout is 30 s)",
            PAUSED_FOR.as_secs()
        ),
    );
    crate::process::signal(pid, libc::SIGSTOP);
    tokio::time::sleep(PAUSED_FOR).await;
    crate::process::signal(pid, libc::SIGCONT);
    timeline.mark("SIGCONT", format!("SIGCONT purchase-service :{paused}"));
    faults.push(Inflicted {
        kind: Fault::Pause,
        what: format!(
            "purchase-service :{paused} paused (SIGSTOP) for {}s, then resumed",
            PAUSED_FOR.as_secs()
        ),
        began,
        ended: Instant::now(),
    });
    Ok(faults)
}

/// kill -9 of the first instance of `service`, started again `down_for` later; with
/// `until_ready` the fault lasts until the instance answers `/readyz` again.
struct Kill {
    kind: super::instances_report::Fault,
    service: &'static str,
    /// The service's name in the timeline's marks.
    short: &'static str,
    down_for: Duration,
    until_ready: bool,
}

impl Kill {
    async fn inflict(
        self,
        stack: &NativeStack,
        env: &ServiceEnv,
        timeline: &mut Timeline,
    ) -> anyhow::Result<Inflicted> {
        let (service, short) = (self.service, self.short);
        let port = first_port(stack, service)?;
        let began = Instant::now();
        timeline.mark(
            &format!("kill -9 {short}"),
            format!("kill -9 {service} :{port}"),
        );
        stack.stop_instance(service, port, libc::SIGKILL, Duration::ZERO);
        tokio::time::sleep(self.down_for).await;
        stack.start_instance(service, port, env)?;
        let mut back = format!("{service} :{port} started again");
        if self.until_ready {
            stack
                .wait_instance_ready(service, port, Instant::now() + Duration::from_secs(60))
                .await?;
            back.push_str(" and ready");
        }
        timeline.mark(&format!("{short} back"), back);
        Ok(Inflicted {
            kind: self.kind,
            what: format!(
                "kill -9 {service} :{port}, started again after {} s",
                self.down_for.as_secs()
            ),
            began,
            ended: Instant::now(),
        })
    }
}

fn first_port(stack: &NativeStack, service: &str) -> anyhow::Result<u16> {
    stack
        .ports(service)
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("{service} has no instance"))
}
