//! The stack's moving parts, written once and used both by the end-to-end tests
//! (`crates/e2e`, a private stack per test) and by `cargo xtask` (the native stack under
//! `run/`, the benchmark, the chaos drill): which services there are and where they
//! listen natively, the environment a service process gets, the gateway's nginx
//! configuration rendered from `deploy/nginx/*.template`, readiness probing, and the
//! conservation check (stock and orders add up).

pub mod env;
pub mod gateway;
pub mod probe;
pub mod services;
pub mod stock;

pub use env::ServiceEnv;
pub use gateway::Gateway;
pub use services::{GATEWAY_NATIVE_PORT, SERVICES, STACK, Service, native_port};
pub use stock::{OrderAudit, StockAccount};

use std::path::{Path, PathBuf};

/// The repository's root directory (this crate sits at `crates/devstack`).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}
