//! What a load is ([`Run`]): the target, the items, how many buyers for how long, closed
//! or open loop, a sale's tail. Kept apart from the driver so that callers (xtask's bench
//! and drills, the command line) build one with the defaults and change a few fields.

use crate::driver;
use crate::summary::Outcome;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One load: who buys what, how hard and for how long.
#[derive(Debug, Clone)]
pub struct Run {
    /// Base URL: the gateway or a service.
    pub url: String,
    /// Item ids to buy; buyers spread over them.
    pub items: Vec<u64>,
    /// Concurrent buyers (connections).
    pub concurrency: usize,
    pub duration: Duration,
    /// Distinct users (tokens); buyers cycle through them.
    pub users: u64,
    /// Units per purchase.
    pub quantity: u32,
    /// Open loop at this many requests/s in total (0: closed loop).
    pub rate: f64,
    /// Client threads.
    pub threads: usize,
    /// The Ed25519 private key that signs the buyers' tokens.
    pub private_key: PathBuf,
    /// Keep the id of every order answered 200 ([`Outcome::order_ids`]).
    pub collect_orders: bool,
    /// A label copied into the summary.
    pub label: String,
    /// Draw a progress bar on standard error while it runs.
    pub progress: bool,
    /// A sale: stop this long after the first `INSUFFICIENT_STOCK` answer (or at
    /// `duration`, whichever comes first), and report [`crate::SaleFigures`].
    pub sale_tail: Option<Duration>,
}

impl Run {
    /// A closed-loop run with the command line's defaults.
    pub fn new(url: impl Into<String>, items: Vec<u64>, private_key: impl Into<PathBuf>) -> Self {
        Run {
            url: url.into(),
            items,
            concurrency: 64,
            duration: Duration::from_secs(10),
            users: 1000,
            quantity: 1,
            rate: 0.0,
            threads: 1,
            private_key: private_key.into(),
            collect_orders: false,
            label: String::new(),
            progress: true,
            sale_tail: None,
        }
    }

    /// Runs the load to its end on threads of its own (blocking the caller).
    pub fn execute(&self) -> anyhow::Result<Outcome> {
        anyhow::ensure!(
            self.concurrency >= self.threads && self.threads > 0,
            "need at least one buyer per thread"
        );
        anyhow::ensure!(!self.items.is_empty(), "no item to buy");
        driver::execute(Arc::new(self.clone()))
    }
}
