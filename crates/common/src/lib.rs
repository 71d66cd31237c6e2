//! What every service shares and nothing more, free of any web framework:
//! configuration, tracing setup, input and its validation errors, the client address
//! rule, JWT verification with revocation (and each process's feed of revocations),
//! Redis access and key naming, metrics, and graceful shutdown. The HTTP side of all this is the `web` crate.

pub mod auth;
pub mod client;
pub mod config;
#[cfg(test)]
mod config_docs;
pub mod input;
pub mod jwt;
pub mod metrics;
pub mod redis;
pub mod retry;
pub mod revocation;
pub mod shutdown;
pub mod telemetry;
pub mod validation;
pub mod webhook_signature;

pub use validation::ValidationErrors;
