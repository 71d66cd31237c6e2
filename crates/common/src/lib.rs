//! What every service shares and nothing more: configuration, telemetry, the error
//! envelope, request input, the client address, JWT verification with revocation, the
//! authenticated-user extractors, Redis access, and the operational endpoints.

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod http;
pub mod input;
pub mod jwt;
pub mod metrics;
pub mod redis;
pub mod shutdown;
pub mod telemetry;

pub use error::{ApiError, ValidationErrors};
