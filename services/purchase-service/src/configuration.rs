//! purchase-service settings: the shared sections plus its own `[purchase]` section.

use common::config::OwnSettings;
use serde::Deserialize;

const DEFAULTS: &str = r#"
[app]
name = "purchase-service"
port = 8083

[purchase]
strategy = "lua"
outcome_timeout_ms = 10000
idempotency_ttl_secs = 86400
relay_interval_ms = 1000
relay_after_ms = 3000
republish_after_ms = 30000
max_publishes_in_flight = 16
publish_batch_max = 128
publish_queue_capacity = 8192
expiry_interval_ms = 200
payment_webhook_secret = ""
payment_webhook_tolerance_secs = 300
sold_out_recheck_ms = 100
rate_per_user = 0
burst_per_user = 10
cancels_per_item = 5
cancel_window_secs = 3600
instance_heartbeat_ms = 1000
"#;

/// How a purchase is taken in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// One atomic Lua script: no lock, no retries (the default).
    Lua,
    /// The reference design: distributed lock + WATCH/MULTI/EXEC.
    Lock,
}

impl Strategy {
    /// As `PURCHASE_STRATEGY` spells it (and metrics label it).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Lua => "lua",
            Strategy::Lock => "lock",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PurchaseSettings {
    pub strategy: Strategy,
    /// How long a purchase whose Redis reply never came is looked up before the buyer is
    /// told its outcome is unknown (keep it under the gateway's read timeout).
    pub outcome_timeout_ms: u64,
    pub idempotency_ttl_secs: u64,
    /// How often the outbox relay looks for orders that were never confirmed published.
    pub relay_interval_ms: u64,
    /// An order never confirmed published this long after purchase is republished.
    pub relay_after_ms: i64,
    /// After a confirmed publish, how long the order may wait for stock-writer before
    /// it is due again; the relay then republishes it once `relay_after_ms` has passed
    /// as well (the relay's one threshold applies to every entry).
    pub republish_after_ms: i64,
    /// Messages awaiting a broker confirm at once (fresh orders, and the relay's).
    pub max_publishes_in_flight: usize,
    /// Orders per message at most: what queued up while confirms were outstanding
    /// travels together.
    pub publish_batch_max: usize,
    /// Placed orders waiting to be published; beyond it the relay takes over.
    pub publish_queue_capacity: usize,
    /// How often the expiry worker looks for reservations past their deadline (a
    /// reservation expires at most this long after it).
    pub expiry_interval_ms: u64,
    /// The secret the payment provider signs its webhooks with; empty refuses every
    /// webhook (and production refuses to start).
    pub payment_webhook_secret: Secret,
    /// How far a webhook's signing time may be from now.
    pub payment_webhook_tolerance_secs: u64,
    /// How long an item seen sold out is answered 409 from memory before Redis is asked
    /// again (0: always ask Redis); the longest a returned unit can go unseen here.
    pub sold_out_recheck_ms: u64,
    /// Purchases a second one buyer may make, over all instances (a token bucket each
    /// instance holds the N-th part of); 0: no limit.
    pub rate_per_user: u32,
    /// How many purchases a buyer may make at once before the rate applies.
    pub burst_per_user: u32,
    /// Reservations of one item a buyer may cancel per `cancel_window_secs` (0: any
    /// number); each leaves an ended order the system keeps.
    pub cancels_per_item: u32,
    pub cancel_window_secs: u64,
    /// How often an instance renews its entry in the registry of live instances; one
    /// that misses three in a row is dropped and its share of the work taken over.
    pub instance_heartbeat_ms: u64,
}

/// A secret setting: its `Debug` never shows it.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "(unset)"
        } else {
            "(redacted)"
        })
    }
}

/// What only purchase-service reads.
#[derive(Debug, Clone, Deserialize)]
pub struct PurchaseOwn {
    pub purchase: PurchaseSettings,
}

impl OwnSettings for PurchaseOwn {
    const DEFAULTS: &'static str = DEFAULTS;

    fn secrets(&self) -> Vec<(&'static str, &str)> {
        vec![(
            "PAYMENT_WEBHOOK_SECRET",
            self.purchase.payment_webhook_secret.expose(),
        )]
    }
}

pub type Settings = common::config::Settings<PurchaseOwn>;
