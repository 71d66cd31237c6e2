//! stock-writer settings: the shared sections plus its own `[writer]` section.

use common::config::OwnSettings;
use serde::Deserialize;

const DEFAULTS: &str = r#"
[app]
name = "stock-writer"
port = 8084

[writer]
prefetch = 100
batch_max = 1000
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct WriterSettings {
    /// Unacknowledged messages the broker may hand over at once. A message carries up to
    /// `PUBLISH_BATCH_MAX` events, so this times that bounds the events held in memory.
    pub prefetch: u16,
    /// Events applied in one MySQL transaction at most. A batch is whatever has
    /// arrived by the time the previous one committed, so it grows with the backlog.
    pub batch_max: usize,
}

/// What only stock-writer reads.
#[derive(Debug, Clone, Deserialize)]
pub struct WriterOwn {
    pub writer: WriterSettings,
}

impl OwnSettings for WriterOwn {
    const DEFAULTS: &'static str = DEFAULTS;
}

pub type Settings = common::config::Settings<WriterOwn>;
