//! Tracing setup: pretty logs for people, JSON lines for log pipelines. (Each request's
//! span and id are the web layer's middleware.)

use crate::config::{AppSettings, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: pretty for people, JSON for log pipelines.
/// `RUST_LOG`, when set, wins over the configured level.
pub fn init(app: &AppSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&app.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    // try_init: tests start many apps in one process and only the first one installs.
    let _ = match app.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
