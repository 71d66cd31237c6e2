//! The `loadgen` command line: a [`loadgen::Run`] from flags, its summary printed as
//! JSON on standard output, a progress bar on standard error.

use anyhow::Context;
use clap::Parser;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// Base URL: the gateway or a service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Item ids to buy, comma separated; buyers spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    items: Vec<u64>,
    /// Concurrent buyers (connections).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Distinct users (tokens); buyers cycle through them.
    #[arg(long, default_value_t = 1000)]
    users: u64,
    /// Units per purchase.
    #[arg(long, default_value_t = 1)]
    quantity: u32,
    /// Open loop at this many requests/s in total (0: closed loop).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The Ed25519 private key that signs the buyers' tokens.
    #[arg(long, default_value = "run/keys/jwt_private.pem")]
    private_key: String,
    /// Write the id of every order answered 200 to this file, one per line.
    #[arg(long)]
    orders_out: Option<String>,
    /// A label copied into the summary.
    #[arg(long, default_value = "")]
    label: String,
    /// A sale: stop this many seconds after the first INSUFFICIENT_STOCK answer and
    /// report the sell-out figures.
    #[arg(long)]
    sale_tail_secs: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = loadgen::Run {
        url: args.url,
        items: args.items,
        concurrency: args.concurrency,
        duration: Duration::try_from_secs_f64(args.duration_secs)
            .context("--duration-secs must be a positive number")?,
        users: args.users,
        quantity: args.quantity,
        rate: args.rate,
        threads: args.threads,
        private_key: args.private_key.into(),
        collect_orders: args.orders_out.is_some(),
        label: args.label,
        progress: true,
        sale_tail: args
            .sale_tail_secs
            .map(Duration::try_from_secs_f64)
            .transpose()
            .context("--sale-tail-secs must be a positive number")?,
    };
    let outcome = run.execute()?;
    if let Some(path) = &args.orders_out {
        std::fs::write(path, outcome.order_ids.join("\n") + "\n")
            .with_context(|| format!("writing {path}"))?;
    }
    println!("{}", serde_json::to_string(&outcome.summary)?);
    Ok(())
}
