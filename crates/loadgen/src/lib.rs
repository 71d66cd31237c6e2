//! `loadgen`: many concurrent buyers, each with its own JWT, hammering purchase
//! endpoints in a closed loop (each buyer waits for its answer) or an open loop (a fixed
//! request rate, latency measured from the scheduled send time so a stalled server is
//! not hidden). A library so that `cargo xtask bench` and `cargo xtask chaos` run it in
//! their own process and read a typed [`Summary`]; `main.rs` is the command line over it.

pub mod lifecycle;

use anyhow::Context;
use common::jwt::{Claims, Role};
use hdrhistogram::Histogram;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One load: who buys what, how hard and for how long.
#[derive(Debug, Clone)]
pub struct Run {
    /// Base URL: the gateway or a service.
    pub url: String,
    /// Item ids to buy; buyers spread over them.
    pub items: Vec<u64>,
    /// Concurrent buyers (connections).
    pub concurrency: usize,
    pub duration: Duration,
    /// Distinct users (tokens); buyers cycle through them.
    pub users: u64,
    /// Units per purchase.
    pub quantity: u32,
    /// Open loop at this many requests/s in total (0: closed loop).
    pub rate: f64,
    /// Client threads.
    pub threads: usize,
    /// The Ed25519 private key that signs the buyers' tokens.
    pub private_key: PathBuf,
    /// Keep the id of every order answered 200 ([`Outcome::order_ids`]).
    pub collect_orders: bool,
    /// A label copied into the summary.
    pub label: String,
    /// Draw a progress bar on standard error while it runs.
    pub progress: bool,
    /// A sale: stop this long after the first `INSUFFICIENT_STOCK` answer (or at
    /// `duration`, whichever comes first), and report [`SaleFigures`].
    pub sale_tail: Option<Duration>,
}

impl Run {
    /// A closed-loop run with the command line's defaults.
    pub fn new(url: impl Into<String>, items: Vec<u64>, private_key: impl Into<PathBuf>) -> Self {
        Run {
            url: url.into(),
            items,
            concurrency: 64,
            duration: Duration::from_secs(10),
            users: 1000,
            quantity: 1,
            rate: 0.0,
            threads: 1,
            private_key: private_key.into(),
            collect_orders: false,
            label: String::new(),
            progress: true,
            sale_tail: None,
        }
    }

    /// Runs the load to its end on threads of its own (blocking the caller).
    pub fn execute(&self) -> anyhow::Result<Outcome> {
        anyhow::ensure!(
            self.concurrency >= self.threads && self.threads > 0,
            "need at least one buyer per thread"
        );
        anyhow::ensure!(!self.items.is_empty(), "no item to buy");
        execute(Arc::new(self.clone()))
    }
}

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
    /// A sale's figures ([`Run::sale_tail`]).
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

/// What the buyers of one thread counted.
struct Tally {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    error_codes: BTreeMap<String, u64>,
    order_ids: Vec<String>,
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
    fn new() -> Self {
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
    fn record(
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

    fn merge(&mut self, other: Tally) {
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
    fn per_second(&self) -> Vec<Second> {
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

    fn summary(&self, run: &Run, elapsed: Duration) -> Summary {
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

fn error_code(status: u16, body: &[u8]) -> String {
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

fn tokens(run: &Run) -> anyhow::Result<Vec<String>> {
    sign_tokens(&run.private_key, 1_000_000, run.users)
}

/// Access tokens of `users` buyers (user ids `first_user`, `first_user + 1`, ...), signed
/// with the PEM private key at `private_key`, valid for an hour.
pub fn sign_tokens(
    private_key: &std::path::Path,
    first_user: u64,
    users: u64,
) -> anyhow::Result<Vec<String>> {
    let pem =
        std::fs::read(private_key).with_context(|| format!("reading {}", private_key.display()))?;
    let key = EncodingKey::from_ed_pem(&pem)?;
    let now = jsonwebtoken::get_current_timestamp();
    (0..users)
        .map(|i| {
            let claims = Claims {
                sub: (first_user + i).to_string(),
                iat: now,
                exp: now + 3600,
                jti: uuid::Uuid::new_v4().simple().to_string(),
                role: Role::User,
            };
            Ok(jsonwebtoken::encode(
                &Header::new(Algorithm::EdDSA),
                &claims,
                &key,
            )?)
        })
        .collect()
}

/// What every buyer shares.
struct Shared {
    run: Arc<Run>,
    tokens: Arc<Vec<String>>,
    started: Instant,
    deadline: Instant,
    sent: Arc<AtomicU64>,
    /// A sale's first `INSUFFICIENT_STOCK`, in ms since the start (`u64::MAX`: none yet).
    sold_out_at_ms: Arc<AtomicU64>,
}

impl Shared {
    /// Whether the run is over: its deadline passed, or a sale's tail after the sell-out.
    fn over(&self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return true;
        }
        let sold_out_at = self.sold_out_at_ms.load(Ordering::Relaxed);
        self.run.sale_tail.is_some_and(|tail| {
            sold_out_at != u64::MAX
                && now.duration_since(self.started) >= Duration::from_millis(sold_out_at) + tail
        })
    }

    fn note_answer(&self, status: u16, body: &[u8]) {
        if self.run.sale_tail.is_some()
            && status == 409
            && error_code(status, body) == "INSUFFICIENT_STOCK"
        {
            let at = self.started.elapsed().as_millis() as u64;
            let _ = self.sold_out_at_ms.compare_exchange(
                u64::MAX,
                at,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

async fn buyer(worker: usize, shared: Arc<Shared>, client: awc::Client) -> Tally {
    let Shared {
        run, tokens, sent, ..
    } = &*shared;
    let (workers, started) = (run.concurrency, shared.started);
    let mut tally = Tally::new();
    let body = json!({ "quantity": run.quantity }).to_string();
    let interval = (run.rate > 0.0).then(|| Duration::from_secs_f64(workers as f64 / run.rate));
    let mut next_send = started
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(worker as f64 / workers as f64)
        });
    let mut n = worker;
    while !shared.over() {
        if interval.is_some() {
            let now = Instant::now();
            if next_send > now {
                actix_web::rt::time::sleep(next_send - now).await;
            }
        }
        let scheduled = if interval.is_some() {
            next_send
        } else {
            Instant::now()
        };
        let token = &tokens[n % tokens.len()];
        let item = run.items[n % run.items.len()];
        n += workers;
        let response = client
            .post(format!("{}/api/v1/items/{item}/purchase", run.url))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", "application/json"))
            .send_body(body.clone())
            .await;
        let (status, bytes) = match response {
            Ok(mut response) => {
                let bytes = response.body().await.unwrap_or_default();
                (response.status().as_u16(), bytes)
            }
            Err(_) => (0, Default::default()),
        };
        shared.note_answer(status, &bytes);
        tally.record(
            scheduled.elapsed(),
            started.elapsed(),
            status,
            &bytes,
            run.collect_orders,
        );
        sent.fetch_add(1, Ordering::Relaxed);
        if let Some(interval) = interval {
            next_send += interval;
        }
    }
    tally
}

fn progress_bar(run: &Run) -> indicatif::ProgressBar {
    if !run.progress {
        return indicatif::ProgressBar::hidden();
    }
    let progress = indicatif::ProgressBar::new((run.duration.as_secs_f64() * 10.0) as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed}/{duration} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.set_prefix(if run.label.is_empty() {
        "load".to_owned()
    } else {
        run.label.clone()
    });
    progress
}

fn execute(run: Arc<Run>) -> anyhow::Result<Outcome> {
    let tokens = Arc::new(tokens(&run)?);
    let sent = Arc::new(AtomicU64::new(0));
    let sold_out_at_ms = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + run.duration;

    let progress = progress_bar(&run);
    let ticker = {
        let (sent, done, progress) = (sent.clone(), done.clone(), progress.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let elapsed = started.elapsed().as_secs_f64();
                progress.set_position((elapsed * 10.0) as u64);
                let count = sent.load(Ordering::Relaxed);
                progress.set_message(format!(
                    "{count} requests, {:.0}/s",
                    count as f64 / elapsed.max(0.001)
                ));
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let threads: Vec<_> = (0..run.threads)
        .map(|t| {
            let shared = Arc::new(Shared {
                run: run.clone(),
                tokens: tokens.clone(),
                started,
                deadline,
                sent: sent.clone(),
                sold_out_at_ms: sold_out_at_ms.clone(),
            });
            std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let threads = shared.run.threads;
                    let mine: Vec<usize> = (0..shared.run.concurrency)
                        .filter(|w| w % threads == t)
                        .collect();
                    let client = awc::Client::builder()
                        .connector(awc::Connector::new().limit(mine.len()))
                        .timeout(Duration::from_secs(30))
                        .finish();
                    let buyers = mine
                        .into_iter()
                        .map(|w| buyer(w, shared.clone(), client.clone()));
                    let mut total = Tally::new();
                    for tally in futures_util::future::join_all(buyers).await {
                        total.merge(tally);
                    }
                    total
                })
            })
        })
        .collect();
    let mut total = Tally::new();
    for thread in threads {
        total.merge(
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))?,
        );
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    progress.finish_and_clear();

    Ok(Outcome {
        summary: total.summary(&run, elapsed),
        per_second: total.per_second(),
        order_ids: total.order_ids,
        started,
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
