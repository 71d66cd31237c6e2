//! `loadgen`: many concurrent buyers, each with its own JWT, hammering purchase
//! endpoints in a closed loop (each buyer waits for its answer) or an open loop (a fixed
//! request rate, latency measured from the scheduled send time so a stalled server is
//! not hidden). Prints a progress bar while it runs and a JSON summary at the end:
//! purchases/s, latency percentiles from an HDR histogram, counts per status and error
//! code.

use anyhow::Context;
use clap::Parser;
use common::jwt::{Claims, Role};
use hdrhistogram::Histogram;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Clone)]
#[command(name = "loadgen", version)]
struct Args {
    /// Base URL: the gateway or a service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Item ids to buy, comma separated; buyers spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    items: Vec<u64>,
    /// Concurrent buyers (connections).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Distinct users (tokens); buyers cycle through them.
    #[arg(long, default_value_t = 1000)]
    users: u64,
    /// Units per purchase.
    #[arg(long, default_value_t = 1)]
    quantity: u32,
    /// Open loop at this many requests/s in total (0: closed loop).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The Ed25519 private key that signs the buyers' tokens.
    #[arg(long, default_value = "run/keys/jwt_private.pem")]
    private_key: String,
    /// Write the id of every order answered 200 to this file, one per line.
    #[arg(long)]
    orders_out: Option<String>,
    /// A label copied into the summary.
    #[arg(long, default_value = "")]
    label: String,
}

struct Tally {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    error_codes: BTreeMap<String, u64>,
    order_ids: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            statuses: BTreeMap::new(),
            error_codes: BTreeMap::new(),
            order_ids: Vec::new(),
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latency_us.add(&other.latency_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (code, n) in other.error_codes {
            *self.error_codes.entry(code).or_default() += n;
        }
        self.order_ids.extend(other.order_ids);
    }
}

fn tokens(args: &Args) -> anyhow::Result<Vec<String>> {
    let pem = std::fs::read(&args.private_key)
        .with_context(|| format!("reading {}", args.private_key))?;
    let key = EncodingKey::from_ed_pem(&pem)?;
    let now = jsonwebtoken::get_current_timestamp();
    (0..args.users)
        .map(|i| {
            let claims = Claims {
                sub: (1_000_000 + i).to_string(),
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
struct Run {
    args: Arc<Args>,
    tokens: Arc<Vec<String>>,
    workers: usize,
    started: Instant,
    deadline: Instant,
    sent: Arc<AtomicU64>,
}

async fn buyer(worker: usize, run: Arc<Run>, client: awc::Client) -> Tally {
    let Run {
        args,
        tokens,
        workers,
        started,
        deadline,
        sent,
    } = &*run;
    let (workers, started, deadline) = (*workers, *started, *deadline);
    let mut tally = Tally::new();
    let body = json!({ "quantity": args.quantity }).to_string();
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(workers as f64 / args.rate));
    let mut next_send = started
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(worker as f64 / workers as f64)
        });
    let mut n = worker;
    while Instant::now() < deadline {
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
        let item = args.items[n % args.items.len()];
        n += workers;
        let response = client
            .post(format!("{}/api/v1/items/{item}/purchase", args.url))
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
        let elapsed = scheduled.elapsed();
        let _ = tally.latency_us.record(elapsed.as_micros().max(1) as u64);
        *tally.statuses.entry(status).or_default() += 1;
        if status == 200
            && args.orders_out.is_some()
            && let Some(id) = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["order"]["id"].as_str().map(str::to_owned))
        {
            tally.order_ids.push(id);
        }
        if status != 200 {
            let code = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["error_code"].as_str().map(str::to_owned))
                .unwrap_or_else(|| {
                    if status == 0 {
                        "CONNECTION_ERROR".into()
                    } else {
                        format!("HTTP_{status}")
                    }
                });
            *tally.error_codes.entry(code).or_default() += 1;
        }
        sent.fetch_add(1, Ordering::Relaxed);
        if let Some(interval) = interval {
            next_send += interval;
        }
    }
    tally
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    anyhow::ensure!(
        args.concurrency >= args.threads && args.threads > 0,
        "need at least one buyer per thread"
    );
    let tokens = Arc::new(tokens(&args)?);
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_secs);

    let progress = indicatif::ProgressBar::new((args.duration_secs * 10.0) as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed}/{duration} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.set_prefix(if args.label.is_empty() {
        "load".to_owned()
    } else {
        args.label.clone()
    });
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

    let workers = args.concurrency;
    let threads: Vec<_> = (0..args.threads)
        .map(|t| {
            let run = Arc::new(Run {
                args: args.clone(),
                tokens: tokens.clone(),
                workers,
                started,
                deadline,
                sent: sent.clone(),
            });
            std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let mine: Vec<usize> =
                        (0..workers).filter(|w| w % run.args.threads == t).collect();
                    let client = awc::Client::builder()
                        .connector(awc::Connector::new().limit(mine.len()))
                        .timeout(Duration::from_secs(30))
                        .finish();
                    let buyers = mine
                        .into_iter()
                        .map(|w| buyer(w, run.clone(), client.clone()));
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
    let elapsed = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    progress.finish_and_clear();

    let requests: u64 = total.statuses.values().sum();
    let ok = total.statuses.get(&200).copied().unwrap_or(0);
    let percentile = |q: f64| total.latency_us.value_at_quantile(q) as f64 / 1000.0;
    let summary = json!({
        "label": args.label,
        "url": args.url,
        "items": args.items,
        "concurrency": args.concurrency,
        "mode": if args.rate > 0.0 { "open" } else { "closed" },
        "duration_s": elapsed,
        "requests": requests,
        "ok": ok,
        "ok_per_s": ok as f64 / elapsed,
        "requests_per_s": requests as f64 / elapsed,
        "statuses": total.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "error_codes": total.error_codes,
        "latency_ms": {
            "p50": percentile(0.50),
            "p95": percentile(0.95),
            "p99": percentile(0.99),
            "max": total.latency_us.max() as f64 / 1000.0,
            "mean": total.latency_us.mean() / 1000.0,
        },
    });
    if let Some(path) = &args.orders_out {
        std::fs::write(path, total.order_ids.join("\n") + "\n")
            .with_context(|| format!("writing {path}"))?;
    }
    println!("{summary}");
    Ok(())
}
