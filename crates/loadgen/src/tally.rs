//! The counting: what the buyers of one thread saw ([`Tally`]), merged over the threads
//! and turned into the run's [`Summary`], per-second answers and a sale's figures. Apart
//! from the driver so that the figures can be tested on made-up answers without a server.

use crate::run::Run;
use crate::summary::{Latency, Mode, SaleFigures, Second, Summary};
use hdrhistogram::Histogram;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the buyers of one thread counted.
pub(crate) struct Tally {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    error_codes: BTreeMap<String, u64>,
    pub(crate) order_ids: Vec<String>,
    /// 200s per tenth of a second since the run started.
    ok_per_tick: Vec<u64>,
    /// Latency of the 200s alone.
    ok_latency_us: Histogram<u64>,
    /// When the last 200 and the last answer came, since the run started.
    last_ok_at: Duration,
    last_answer_at: Duration,
    /// Non-200 answers after the last 200 this tally has seen, with their times (a
    /// sale's rejections are counted once the merged last 200 is known).
    late_answers: Vec<Duration>,
    /// 5xx and unanswered requests per tenth of a second since the run started.
    server_errors_per_tick: Vec<u64>,
}

const TICK: Duration = Duration::from_millis(100);

impl Tally {
    pub(crate) fn new() -> Self {
        Tally {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            statuses: BTreeMap::new(),
            error_codes: BTreeMap::new(),
            order_ids: Vec::new(),
            ok_per_tick: Vec::new(),
            ok_latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            last_ok_at: Duration::ZERO,
            last_answer_at: Duration::ZERO,
            late_answers: Vec::new(),
            server_errors_per_tick: Vec::new(),
        }
    }

    /// One answer, `latency` after it was due and `at` after the run started.
    pub(crate) fn record(
        &mut self,
        latency: Duration,
        at: Duration,
        status: u16,
        body: &[u8],
        collect_orders: bool,
    ) {
        let micros = latency.as_micros().max(1).try_into().unwrap_or(u64::MAX);
        let _ = self.latency_us.record(micros);
        *self.statuses.entry(status).or_default() += 1;
        self.last_answer_at = self.last_answer_at.max(at);
        let tick = (at.as_millis() / TICK.as_millis()) as usize;
        if status == 0 || status >= 500 {
            count_at(&mut self.server_errors_per_tick, tick, 1);
        }
        if status == 200 {
            let _ = self.ok_latency_us.record(micros);
            self.last_ok_at = self.last_ok_at.max(at);
            self.late_answers.clear();
            count_at(&mut self.ok_per_tick, tick, 1);
            if collect_orders && let Some(id) = order_id(body) {
                self.order_ids.push(id);
            }
        } else {
            *self
                .error_codes
                .entry(error_code(status, body))
                .or_default() += 1;
            self.late_answers.push(at);
        }
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.ok_latency_us.add(&other.ok_latency_us);
        self.last_ok_at = self.last_ok_at.max(other.last_ok_at);
        self.last_answer_at = self.last_answer_at.max(other.last_answer_at);
        self.late_answers.extend(other.late_answers);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (code, n) in other.error_codes {
            *self.error_codes.entry(code).or_default() += n;
        }
        self.order_ids.extend(other.order_ids);
        for (tick, n) in other.ok_per_tick.into_iter().enumerate() {
            count_at(&mut self.ok_per_tick, tick, n);
        }
        for (tick, n) in other.server_errors_per_tick.into_iter().enumerate() {
            count_at(&mut self.server_errors_per_tick, tick, n);
        }
    }

    /// The ticks summed per second.
    pub(crate) fn per_second(&self) -> Vec<Second> {
        let ticks_per_second = (Duration::from_secs(1).as_millis() / TICK.as_millis()) as usize;
        let ticks = self
            .ok_per_tick
            .len()
            .max(self.server_errors_per_tick.len());
        let sum = |per_tick: &[u64], second: usize| -> u64 {
            per_tick
                .iter()
                .skip(second * ticks_per_second)
                .take(ticks_per_second)
                .sum()
        };
        (0..ticks.div_ceil(ticks_per_second))
            .map(|second| Second {
                ok: sum(&self.ok_per_tick, second),
                server_errors: sum(&self.server_errors_per_tick, second),
            })
            .collect()
    }

    fn longest_gap_without_ok(&self) -> Duration {
        let (mut longest, mut current) = (0u32, 0u32);
        let first = self.ok_per_tick.iter().position(|n| *n > 0).unwrap_or(0);
        for n in &self.ok_per_tick[first..] {
            current = if *n == 0 { current + 1 } else { 0 };
            longest = longest.max(current);
        }
        TICK * longest
    }

    pub(crate) fn summary(&self, run: &Run, elapsed: Duration) -> Summary {
        let seconds = elapsed.as_secs_f64();
        let requests: u64 = self.statuses.values().sum();
        let ok = self.statuses.get(&200).copied().unwrap_or(0);
        Summary {
            label: run.label.clone(),
            url: run.url.clone(),
            items: run.items.clone(),
            concurrency: run.concurrency,
            mode: if run.rate > 0.0 {
                Mode::Open
            } else {
                Mode::Closed
            },
            duration_s: seconds,
            requests,
            ok,
            ok_per_s: ok as f64 / seconds,
            requests_per_s: requests as f64 / seconds,
            statuses: self.statuses.clone(),
            error_codes: self.error_codes.clone(),
            latency_ms: latency(&self.latency_us),
            longest_gap_without_ok_s: self.longest_gap_without_ok().as_secs_f64(),
            sale: run.sale_tail.map(|_| self.sale_figures()),
        }
    }

    fn sale_figures(&self) -> SaleFigures {
        let ok = self.statuses.get(&200).copied().unwrap_or(0);
        let sold_out_after = self.last_ok_at.as_secs_f64();
        let rejected_after = self
            .late_answers
            .iter()
            .filter(|at| **at > self.last_ok_at)
            .count() as u64;
        let after = (self.last_answer_at.saturating_sub(self.last_ok_at)).as_secs_f64();
        SaleFigures {
            sold_out_after_s: round3(sold_out_after),
            ok_per_s: if sold_out_after > 0.0 {
                ok as f64 / sold_out_after
            } else {
                0.0
            },
            ok_latency_ms: latency(&self.ok_latency_us),
            rejected_after,
            rejected_per_s: if after > 0.0 {
                rejected_after as f64 / after
            } else {
                0.0
            },
            server_errors: self
                .statuses
                .iter()
                .filter(|(status, _)| **status == 0 || **status >= 500)
                .map(|(_, n)| n)
                .sum(),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Percentiles of a histogram of microseconds, in milliseconds.
fn latency(us: &Histogram<u64>) -> Latency {
    let ms = |micros: u64| micros as f64 / 1000.0;
    Latency {
        p50: ms(us.value_at_quantile(0.50)),
        p95: ms(us.value_at_quantile(0.95)),
        p99: ms(us.value_at_quantile(0.99)),
        max: ms(us.max()),
        mean: us.mean() / 1000.0,
    }
}

/// Adds `n` to `per_tick[tick]`, growing the series as needed.
fn count_at(per_tick: &mut Vec<u64>, tick: usize, n: u64) {
    if per_tick.len() <= tick {
        per_tick.resize(tick + 1, 0);
    }
    per_tick[tick] += n;
}

fn order_id(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body["order"]["id"].as_str().map(str::to_owned)
}

pub(crate) fn error_code(status: u16, body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error_code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            if status == 0 {
                "CONNECTION_ERROR".into()
            } else {
                format!("HTTP_{status}")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally_of(answers: &[(u64, u16, &str)]) -> Tally {
        let mut tally = Tally::new();
        for (ms, status, body) in answers {
            let at = Duration::from_millis(*ms);
            tally.record(at, at, *status, body.as_bytes(), true);
        }
        tally
    }

    #[test]
    fn the_longest_gap_without_a_200_spans_the_threads() {
        let ok = r#"{"order":{"id":"o"}}"#;
        let mut tally = tally_of(&[(50, 200, ok), (150, 200, ok), (950, 200, ok)]);
        tally.merge(tally_of(&[
            (420, 503, "{}"),
            (520, 200, ok),
            (1_400, 200, ok),
        ]));
        let run = Run::new("http://x", vec![7], "key.pem");
        let summary = tally.summary(&run, Duration::from_secs(2));
        // 200s in ticks 0, 1, 5, 9, 14: the longest stretch without one is ticks 10-13.
        assert_eq!(summary.longest_gap_without_ok_s, 0.4);
    }

    #[test]
    fn each_second_counts_its_200s_and_its_server_errors_over_the_threads() {
        let ok = r#"{"order":{"id":"o"}}"#;
        let mut tally = tally_of(&[
            (50, 200, ok),
            (990, 200, ok),
            (1_000, 503, "{}"),
            (1_500, 0, ""),
        ]);
        tally.merge(tally_of(&[
            (120, 409, r#"{"error_code":"INSUFFICIENT_STOCK"}"#),
            (3_050, 200, ok),
            (3_100, 502, "<html>bad gateway</html>"),
        ]));
        let second = |ok, server_errors| Second { ok, server_errors };
        assert_eq!(
            tally.per_second(),
            [second(2, 0), second(0, 2), second(0, 0), second(1, 1)],
            "a 409 is no server error; a second without answers is there, empty"
        );
        assert_eq!(Tally::new().per_second(), []);
    }

    #[test]
    fn a_summary_counts_statuses_error_codes_and_orders() {
        let mut tally = tally_of(&[
            (10, 200, r#"{"order":{"id":"o-1"}}"#),
            (20, 409, r#"{"error_code":"INSUFFICIENT_STOCK"}"#),
        ]);
        tally.merge(tally_of(&[
            (30, 200, r#"{"order":{"id":"o-2"}}"#),
            (40, 502, "<html>bad gateway</html>"),
            (50, 0, ""),
        ]));
        let run = Run {
            label: "t".into(),
            ..Run::new("http://x", vec![7], "key.pem")
        };
        let summary = tally.summary(&run, Duration::from_secs(2));
        assert_eq!(summary.requests, 5);
        assert_eq!(summary.ok, 2);
        assert_eq!(summary.ok_per_s, 1.0);
        assert_eq!(summary.requests_per_s, 2.5);
        assert_eq!(summary.mode, Mode::Closed);
        assert_eq!(
            summary.statuses,
            BTreeMap::from([(0, 1), (200, 2), (409, 1), (502, 1)])
        );
        assert_eq!(summary.error_count("INSUFFICIENT_STOCK"), 1);
        assert_eq!(summary.error_count("HTTP_502"), 1);
        assert_eq!(summary.error_count("CONNECTION_ERROR"), 1);
        assert_eq!(summary.error_count("SYSTEM_BUSY"), 0);
        assert_eq!(tally.order_ids, ["o-1", "o-2"]);
        assert!((summary.latency_ms.max - 50.0).abs() < 0.1);
        assert!((summary.latency_ms.p50 - 30.0).abs() < 0.1);
    }

    #[test]
    fn a_sale_reports_its_sell_out_and_the_answers_after_it() {
        let ok = r#"{"order":{"id":"o"}}"#;
        let none_left = r#"{"error_code":"INSUFFICIENT_STOCK"}"#;
        let mut tally = tally_of(&[(10, 200, ok), (15, 409, none_left), (40, 409, none_left)]);
        tally.merge(tally_of(&[
            (20, 200, ok),
            (25, 503, "{}"),
            (30, 409, none_left),
            (50, 409, none_left),
        ]));
        let run = Run {
            sale_tail: Some(Duration::from_secs(1)),
            ..Run::new("http://x", vec![7], "key.pem")
        };
        let sale = tally
            .summary(&run, Duration::from_millis(60))
            .sale
            .expect("a sale's figures");
        assert_eq!(sale.sold_out_after_s, 0.02);
        assert!((sale.ok_per_s - 100.0).abs() < 1e-9);
        assert_eq!(sale.rejected_after, 4, "the 409s and the 503 after 20 ms");
        assert!((sale.rejected_per_s - 4.0 / 0.03).abs() < 1e-6);
        assert_eq!(sale.server_errors, 1);
        assert!((sale.ok_latency_ms.max - 20.0).abs() < 0.1, "200s only");
        let plain = Run::new("http://x", vec![7], "key.pem");
        assert_eq!(tally.summary(&plain, Duration::from_millis(60)).sale, None);
    }

    #[test]
    fn the_summary_keeps_the_json_shape_the_reports_read() {
        let run = Run::new("http://x", vec![1, 2], "key.pem");
        let summary = tally_of(&[(5, 200, "{}")]).summary(&run, Duration::from_secs(1));
        let json = serde_json::to_value(&summary).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "concurrency",
                "duration_s",
                "error_codes",
                "items",
                "label",
                "latency_ms",
                "longest_gap_without_ok_s",
                "mode",
                "ok",
                "ok_per_s",
                "requests",
                "requests_per_s",
                "statuses",
                "url"
            ]
        );
        assert_eq!(json["mode"], "closed");
        assert_eq!(json["statuses"]["200"], 1);
        assert_eq!(
            serde_json::from_value::<Summary>(json).unwrap(),
            summary,
            "a summary reads back as written"
        );
    }
}
