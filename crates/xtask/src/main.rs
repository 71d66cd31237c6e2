//! `cargo xtask`: the project's developer tool, behind `scripts/stack`, `scripts/bench`
//! and `scripts/chaos` (which first make sure the machine's MariaDB, Redis, RabbitMQ and
//! nginx are there). It runs the native stack (`stack up|down|status|logs|restart`),
//! the benchmark (`bench [--quick]`), the fault drills (`chaos [--redis|--instances] [SECONDS]`) and
//! sends a signed payment webhook (`pay ORDER_ID --amount N`), with the
//! stack code the end-to-end tests use (`devstack`) and the load generator as a library.
//!
//! The environment is `deploy/local.env` with the caller's variables winning; it is
//! exported into this process first, so the services it starts and the settings it
//! reads (database, Redis and its key prefix, the JWT key) are the same.

mod api;
mod backends;
mod bench;
mod chaos;
mod charts;
mod flame;
mod metrics;
mod native;
mod process;
mod rolling;

use backends::Backends;
use clap::{Parser, Subcommand};
use devstack::ServiceEnv;
use native::NativeStack;
use std::fmt::Display;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Runs the native stack, the benchmark and the chaos drill"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// The native stack under run/ (services on 8081-8084, the gateway on 8080 or GATEWAY_PORT).
    Stack {
        #[command(subcommand)]
        action: StackAction,
    },
    /// Every benchmark scenario in one run; writes target/bench/.
    Bench {
        /// One concurrency (64) and 3 s per load instead of 16, 64, 256 and 10 s.
        #[arg(long)]
        quick: bool,
        /// Only the waiting-room sale (writes target/bench/waiting-room.json and its
        /// section of report.md), to work on it; the figures to compare come from a
        /// whole run.
        #[arg(long)]
        waiting_room_only: bool,
    },
    /// The fault drill during a purchase load; writes target/chaos/, fails if anything was lost.
    Chaos {
        /// Seconds of load (per scenario with --redis).
        seconds: Option<u64>,
        /// The Redis drill instead: fail over a cluster master (with and without replica
        /// acknowledgement), crash a single server with AOF.
        #[arg(long)]
        redis: bool,
        /// The drill of many instances instead: two of every service, a rolling restart,
        /// kill -9 of a purchase-service and of a stock-writer, a paused instance
        /// (SECONDS: the pause between faults, default 5).
        #[arg(long, conflicts_with = "redis")]
        instances: bool,
    },
    /// Sends the payment provider's signed `payment.succeeded` for a reservation to the
    /// gateway (PAYMENT_WEBHOOK_SECRET signs it) and prints the answer.
    Pay {
        order_id: String,
        /// Minor units: the reservation's amount due (price × quantity).
        #[arg(long)]
        amount: u64,
        /// The provider's payment id (default: a fresh one).
        #[arg(long)]
        payment_id: Option<String>,
    },
}

#[derive(Subcommand)]
enum StackAction {
    /// Build release binaries, create JWT keys, migrate, seed (not in production), start
    /// what is not running, wait until everything is ready.
    Up {
        /// Instances of each service (default: INSTANCES, else 1), the k-th on its native
        /// port + 100·k; the gateway balances over all of them.
        #[arg(long)]
        instances: Option<usize>,
    },
    /// Stop the gateway and the services (not the machine's servers).
    Down,
    /// Each service's pid and /readyz, and the gateway.
    Status,
    /// Follow the logs of one service (or `gateway`), or of all.
    Logs { name: Option<String> },
    /// Build, then replace each instance of SERVICE (default: every service) one at a
    /// time by one on the same port, each only after its replacement is ready; `up` if
    /// nothing runs.
    Restart { service: Option<String> },
}

/// `stack restart [SERVICE]`: a rolling restart of one service or of all, on binaries
/// built first; the stack is brought up instead when nothing runs.
async fn rolling_restart(stack: &NativeStack, service: Option<String>) -> anyhow::Result<()> {
    let services: Vec<&str> = match service.as_deref() {
        None => devstack::SERVICES.to_vec(),
        Some(name) if devstack::SERVICES.contains(&name) => vec![name],
        Some(name) => anyhow::bail!(
            "no service named {name}: one of {}",
            devstack::SERVICES.join(", ")
        ),
    };
    if devstack::SERVICES.iter().all(|s| stack.pid(s).is_none()) {
        println!("{}", stack.up().await?);
        return Ok(());
    }
    stack.build()?;
    for service in services {
        if stack.pid(service).is_none() {
            anyhow::bail!("{service} does not run: `scripts/stack up` starts it");
        }
        for replaced in rolling::restart_service(stack, service, &ServiceEnv::new()).await? {
            step(format!(
                "{} :{}: pid {} replaced by pid {}",
                replaced.service,
                replaced.port,
                replaced
                    .old_pid
                    .map_or_else(|| "-".to_owned(), |pid| pid.to_string()),
                replaced.new_pid
            ));
        }
    }
    step("every instance replaced");
    Ok(())
}

/// Says what the tool is doing, on standard error.
pub fn step(message: impl Display) {
    eprintln!("\x1b[1;34m==>\x1b[0m {message}");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match prepare().and_then(|stack| run(cli.command, stack)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("\x1b[1;31merror:\x1b[0m {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Moves to the repository root and exports the stack's environment.
fn prepare() -> anyhow::Result<NativeStack> {
    let root = devstack::workspace_root();
    std::env::set_current_dir(&root)?;
    let env = ServiceEnv::native(&root, |name| std::env::var(name).ok())?;
    for (name, value) in env.vars() {
        // SAFETY: no other thread runs yet (the runtime starts later), so nothing reads
        // the environment while it changes.
        unsafe { std::env::set_var(name, value) };
    }
    NativeStack::new(root, env)
}

fn run(task: Task, mut stack: NativeStack) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match task {
            Task::Stack { action } => match action {
                StackAction::Up { instances } => {
                    if let Some(instances) = instances {
                        stack.instances = instances;
                    }
                    println!("{}", stack.up().await?);
                }
                StackAction::Down => stack.down(),
                StackAction::Status => println!("{}", stack.status().await),
                StackAction::Logs { name } => return Err(stack.follow_logs(name.as_deref())),
                StackAction::Restart { service } => rolling_restart(&stack, service).await?,
            },
            Task::Bench {
                quick,
                waiting_room_only,
            } => bench::run(&stack, quick, waiting_room_only).await?,
            Task::Chaos {
                seconds,
                instances: true,
                ..
            } => {
                if !chaos::run_instances(&mut stack, seconds.unwrap_or(5)).await? {
                    anyhow::bail!(
                        "the instances drill found a failure beyond a fault's cost, or a lost, doubled or wrongly ended order"
                    );
                }
            }
            Task::Chaos {
                seconds,
                redis: false,
                ..
            } => {
                if !chaos::run(&stack, seconds.unwrap_or(90)).await? {
                    anyhow::bail!("the drill found lost, doubled or unconserved stock");
                }
            }
            Task::Pay {
                order_id,
                amount,
                payment_id,
            } => {
                let payment_id = payment_id
                    .unwrap_or_else(|| format!("pay_{}", chrono::Utc::now().timestamp_millis()));
                let secret = std::env::var("PAYMENT_WEBHOOK_SECRET").unwrap_or_default();
                let answer =
                    api::pay(stack.gateway_port, &secret, &order_id, &payment_id, amount).await?;
                println!("{} {}", answer.status, answer.body);
                if !(200..300).contains(&answer.status) {
                    return Ok(ExitCode::FAILURE);
                }
            }
            Task::Chaos {
                seconds,
                redis: true,
                ..
            } => {
                if !chaos::run_redis(&stack, seconds.unwrap_or(25)).await? {
                    anyhow::bail!(
                        "the Redis drill found a loss with acknowledgement on, or a doubled order"
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
