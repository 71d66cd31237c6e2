//! The driver: client threads, each with its own actix runtime and connection pool, whose
//! buyers send purchases in a closed loop (the next when the answer came) or an open one
//! (at a fixed rate, latency measured from the scheduled send so that a stalled server is
//! not hidden), until the deadline or a sale's tail; a progress bar beside them.

use crate::run::Run;
use crate::summary::Outcome;
use crate::tally::{Tally, error_code};
use crate::tokens::sign_tokens;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

pub(crate) fn execute(run: Arc<Run>) -> anyhow::Result<Outcome> {
    let tokens = Arc::new(sign_tokens(&run.private_key, 1_000_000, run.users)?);
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
