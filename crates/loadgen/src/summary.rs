//! What a run measured, as its callers read it: the [`Summary`] (printed as JSON by the
//! command line and kept in the bench's reports, so its shape is stable), a sale's
//! [`SaleFigures`], and the [`Outcome`] with the orders and the answers of each second.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Open,
    Closed,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// What a run measured; printed as JSON by the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub label: String,
    pub url: String,
    pub items: Vec<u64>,
    pub concurrency: usize,
    pub mode: Mode,
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub ok_per_s: f64,
    pub requests_per_s: f64,
    /// Responses per HTTP status; 0 counts requests that got no response.
    pub statuses: BTreeMap<u16, u64>,
    /// Non-200 responses per `error_code` (`HTTP_<status>` when there was none,
    /// `CONNECTION_ERROR` when there was no response).
    pub error_codes: BTreeMap<String, u64>,
    pub latency_ms: Latency,
    /// The longest stretch between the first and the last 200 without any 200, to a
    /// tenth of a second: how long buyers got nothing while a fault lasted.
    #[serde(default)]
    pub longest_gap_without_ok_s: f64,
    /// A sale's figures ([`crate::Run::sale_tail`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale: Option<SaleFigures>,
}

/// What a sale run measured: how fast the stock went and how the buyers who came too
/// late were answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleFigures {
    /// From the first request to the last successful purchase.
    pub sold_out_after_s: f64,
    /// Successful purchases per second until then.
    pub ok_per_s: f64,
    /// Latency of the successful purchases only.
    pub ok_latency_ms: Latency,
    /// Answers after the last successful purchase, and their rate.
    pub rejected_after: u64,
    pub rejected_per_s: f64,
    /// 5xx answers and requests without an answer, over the whole run.
    pub server_errors: u64,
}

impl Summary {
    /// How many non-200 answers carried this error code.
    pub fn error_count(&self, code: &str) -> u64 {
        self.error_codes.get(code).copied().unwrap_or(0)
    }
}

/// A finished run: its summary and, when asked for, the orders answered 200.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub summary: Summary,
    pub order_ids: Vec<String>,
    /// When the buyers started: second 0 of [`Outcome::per_second`], so that what
    /// happened beside the load (a fault, a sample) can be placed on its time axis.
    pub started: Instant,
    /// The answers of each second since [`Outcome::started`] (entry `i` is `[i, i+1)` s).
    pub per_second: Vec<Second>,
}

/// The answers of one second of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Second {
    /// Answered 200.
    pub ok: u64,
    /// Answered 5xx, or not answered at all (status 0).
    pub server_errors: u64,
}
