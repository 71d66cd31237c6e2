//! purchase-service settings: the shared sections plus its own `[purchase]` section.

use common::config::OwnSettings;
use serde::Deserialize;
use std::time::Duration;
use web_layer::http::GATEWAY_READ_TIMEOUT;

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
    /// The longest a purchase takes before its buyer is answered: an outcome not learned
    /// by then is answered `OUTCOME_UNKNOWN` (see `Purchases::purchase`). A cancel or
    /// payment whose outcome is unknown is looked up this long too. Bounded by
    /// [`check_answer_bound`].
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

/// What a purchase's answer may take besides `PURCHASE_OUTCOME_TIMEOUT_MS` and the token
/// check's one Redis reply: reading its small body, a Redis connection being made again
/// (2 s at most), writing the answer, a busy worker.
pub const ANSWER_SLACK: Duration = Duration::from_secs(3);

/// The longest from the gateway sending a purchase to the service answering it: the
/// caller's token checked against the revocations (one Redis reply, within
/// `REDIS_RESPONSE_TIMEOUT_MS`), the purchase itself (answered within
/// `PURCHASE_OUTCOME_TIMEOUT_MS` of its start), and [`ANSWER_SLACK`].
pub fn answer_bound(settings: &Settings) -> Duration {
    Duration::from_millis(settings.redis.response_timeout_ms)
        + Duration::from_millis(settings.purchase.outcome_timeout_ms)
        + ANSWER_SLACK
}

/// Refuses settings under which the gateway could stop waiting for a purchase before the
/// service answers it ([`GATEWAY_READ_TIMEOUT`]): the buyer would then hear from the
/// gateway, which does not know the order id, instead of from the service, which does.
pub fn check_answer_bound(settings: &Settings) -> Result<(), String> {
    let bound = answer_bound(settings);
    if bound < GATEWAY_READ_TIMEOUT {
        return Ok(());
    }
    Err(format!(
        "configuration error: a purchase could take {} ms to answer \
         (PURCHASE_OUTCOME_TIMEOUT_MS {} + REDIS_RESPONSE_TIMEOUT_MS {} + {} ms), not below \
         the gateway's read timeout of {} ms (deploy/nginx/gateway.conf.template): lower \
         PURCHASE_OUTCOME_TIMEOUT_MS",
        bound.as_millis(),
        settings.purchase.outcome_timeout_ms,
        settings.redis.response_timeout_ms,
        ANSWER_SLACK.as_millis(),
        GATEWAY_READ_TIMEOUT.as_millis(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_answer_a_purchase_before_the_gateway_gives_up() {
        let defaults = Settings::defaults().expect("the compiled-in defaults");
        assert_eq!(check_answer_bound(&defaults), Ok(()));
        assert!(
            Duration::from_millis(defaults.purchase.outcome_timeout_ms) < GATEWAY_READ_TIMEOUT,
            "PURCHASE_OUTCOME_TIMEOUT_MS's default must stay below the gateway's read timeout"
        );
    }

    #[test]
    fn a_purchase_that_could_outlast_the_gateway_is_refused_naming_the_variables() {
        let mut settings = Settings::defaults().expect("the compiled-in defaults");
        settings.purchase.outcome_timeout_ms = 24_999;
        assert_eq!(
            check_answer_bound(&settings),
            Ok(()),
            "24.999 + 2 + 3 s < 30 s"
        );
        settings.redis.response_timeout_ms = 2_001;
        let refused = check_answer_bound(&settings).unwrap_err();
        for named in [
            "PURCHASE_OUTCOME_TIMEOUT_MS 24999",
            "REDIS_RESPONSE_TIMEOUT_MS 2001",
            "30000 ms",
        ] {
            assert!(refused.contains(named), "{named:?} in {refused}");
        }
        settings.redis.response_timeout_ms = 2_000;
        settings.purchase.outcome_timeout_ms = 30_000;
        assert!(check_answer_bound(&settings).is_err());
    }
}
