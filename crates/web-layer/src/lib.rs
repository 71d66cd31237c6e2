//! The web layer every service's HTTP side shares, and the only crate that knows actix:
//! the error envelope and the one place that maps every layer's errors to a status,
//! the extractors (body, caller, client address), the server with its operational
//! endpoints (`/healthz`, `/readyz`, `/metrics`) and its hand-over of a port to a
//! replacement, the request-observing middleware, the
//! bootstrap of what every service connects to, and how a service binary runs.

pub mod auth;
pub mod bootstrap;
pub mod client;
pub mod error;
#[cfg(test)]
mod error_table;
pub mod handover;
pub mod http;
pub mod input;
pub mod service;
pub mod telemetry;

pub use error::ApiError;
