//! A sale's whole traffic for a drill: buyers of a hot item buying outright, and buyers
//! of an item with a payment window reserving it, then paying (the provider's signed
//! webhook), cancelling or leaving it to expire, and looking the order up. Every
//! purchase carries an `Idempotency-Key`, so a purchase whose answer was lost or unknown
//! can be asked again afterwards ([`Lifecycle::settle_unknown`]) and its outcome learned
//! as a buyer would. Every answer is counted per second by operation and outcome, and
//! every order's fate is kept, so the drill can audit each against MySQL. Runs until
//! its stop flag is set (or its longest duration passes).

mod requests;

use crate::sign_tokens;
use requests::{Answer, client};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A reserving buyer who finds every unit held waits this long before trying again.
const SOLD_OUT_PAUSE: Duration = Duration::from_millis(50);

/// The load's shape.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// The gateway's base URL (`http://127.0.0.1:8080`).
    pub url: String,
    pub hot_item: u64,
    pub hot_buyers: usize,
    /// An item with a payment window, and what one unit of it costs (minor units).
    pub reservable_item: u64,
    pub price: u64,
    pub reserving_buyers: usize,
    /// Signs the buyers' tokens.
    pub private_key: PathBuf,
    /// Signs the payment webhooks (`PAYMENT_WEBHOOK_SECRET`).
    pub webhook_secret: String,
    /// Distinct buyers (tokens): enough that no buyer reaches a per-buyer limit.
    pub users: u64,
    pub longest: Duration,
}

/// What the buyers do: the operations counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Purchase,
    Reserve,
    Pay,
    Cancel,
    Lookup,
}

/// How a purchase or reservation was answered.
enum Placed {
    /// 200, with this order.
    Order(String),
    /// Not clearly: a 5xx or no answer (the order may exist).
    Unknown,
    /// Refused (sold out, over a limit, ...).
    Refused,
}

/// A purchase whose answer said neither yes nor no: asked again with its key later.
#[derive(Debug, Clone)]
struct Unknown {
    op: Op,
    item: u64,
    token: String,
    key: String,
}

/// What a run found: answers per second and every order's fate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LifecycleOutcome {
    /// Answers in second `i` after the start, keyed `"<op> <outcome>"`.
    pub per_second: Vec<BTreeMap<String, u64>>,
    /// Orders of the hot item answered 200.
    pub purchased: Vec<String>,
    /// Reservations answered 200, and what was then done with each.
    pub reserved: Vec<String>,
    pub paid: Vec<String>,
    pub cancelled: Vec<String>,
    /// Reservations whose pay or cancel got no clear answer: any final status is right.
    pub undecided: Vec<String>,
    /// Purchases and reservations asked again with their key after the load: how many
    /// turned out to have happened (now in `purchased` / `reserved`) and not.
    pub unknown_happened: u64,
    pub unknown_not_happened: u64,
    /// Unknowns that still had no clear answer when asked again.
    pub unknown_unresolved: u64,
    #[serde(skip)]
    unknowns: Vec<Unknown>,
    #[serde(skip)]
    pub started: Option<Instant>,
}

impl LifecycleOutcome {
    /// The answers between `from` and `to` (seconds on the load's clock), summed.
    pub fn between(&self, from: f64, to: f64) -> BTreeMap<String, u64> {
        let mut sum = BTreeMap::new();
        let first = from.max(0.0).floor() as usize;
        let last = to.max(0.0).ceil() as usize;
        for second in self.per_second.iter().take(last).skip(first) {
            for (kind, n) in second {
                *sum.entry(kind.clone()).or_default() += n;
            }
        }
        sum
    }

    fn record(&mut self, started: Instant, op: Op, outcome: &str) {
        let second = started.elapsed().as_secs() as usize;
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, BTreeMap::new());
        }
        *self.per_second[second]
            .entry(format!("{} {outcome}", op_name(op)))
            .or_default() += 1;
    }

    fn merge(&mut self, other: LifecycleOutcome) {
        if self.per_second.len() < other.per_second.len() {
            self.per_second
                .resize(other.per_second.len(), BTreeMap::new());
        }
        for (mine, theirs) in self.per_second.iter_mut().zip(other.per_second) {
            for (kind, n) in theirs {
                *mine.entry(kind).or_default() += n;
            }
        }
        self.purchased.extend(other.purchased);
        self.reserved.extend(other.reserved);
        self.paid.extend(other.paid);
        self.cancelled.extend(other.cancelled);
        self.undecided.extend(other.undecided);
        self.unknowns.extend(other.unknowns);
    }
}

/// Whether an answer's kind (`"<op> <outcome>"`) is a failure: a 5xx, or no answer.
pub fn is_failure(kind: &str) -> bool {
    let outcome = kind.split_once(' ').map_or(kind, |(_, outcome)| outcome);
    outcome.starts_with('5') || outcome == "connection error" || outcome == "timeout"
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Purchase => "purchase",
        Op::Reserve => "reserve",
        Op::Pay => "pay",
        Op::Cancel => "cancel",
        Op::Lookup => "lookup",
    }
}

/// The buyers' shared view: the client, tokens, when to stop.
struct Buyers {
    run: Lifecycle,
    client: awc::Client,
    tokens: Vec<String>,
    started: Instant,
    stop: Arc<AtomicBool>,
}

impl Buyers {
    fn over(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.started.elapsed() >= self.run.longest
    }

    /// The next purchase (or reservation) of `item` by the next of this buyer's tokens,
    /// with a fresh idempotency key: counted in `outcome`, and kept as unknown when it
    /// was not clearly answered. The token, for what follows with the order.
    async fn place(
        &self,
        n: &mut usize,
        op: Op,
        item: u64,
        outcome: &mut LifecycleOutcome,
    ) -> (&String, Placed) {
        let token = &self.tokens[*n % self.tokens.len()];
        *n += self.run.hot_buyers + self.run.reserving_buyers;
        let key = uuid::Uuid::new_v4().simple().to_string();
        let answer = self.purchase(item, token, &key).await;
        outcome.record(self.started, op, &answer.outcome);
        let placed = match (answer.status, answer.order_id()) {
            (200, Some(id)) => Placed::Order(id),
            _ if !answer.decided() => {
                outcome.unknowns.push(Unknown {
                    op,
                    item,
                    token: token.clone(),
                    key,
                });
                Placed::Unknown
            }
            _ => Placed::Refused,
        };
        (token, placed)
    }

    /// A hot-item buyer: buys one unit after another.
    async fn buy_hot(&self, buyer: usize) -> LifecycleOutcome {
        let mut outcome = LifecycleOutcome::default();
        let mut n = buyer;
        while !self.over() {
            let item = self.run.hot_item;
            let (_, placed) = self.place(&mut n, Op::Purchase, item, &mut outcome).await;
            if let Placed::Order(id) = placed {
                outcome.purchased.push(id);
            }
        }
        outcome
    }

    /// A reserving buyer: reserves, then pays, cancels or leaves it (in turn), and looks
    /// the order up.
    async fn reserve_and_settle(&self, buyer: usize) -> LifecycleOutcome {
        let mut outcome = LifecycleOutcome::default();
        let mut n = buyer;
        let mut turn = buyer;
        while !self.over() {
            let item = self.run.reservable_item;
            let (token, placed) = self.place(&mut n, Op::Reserve, item, &mut outcome).await;
            let order_id = match placed {
                Placed::Order(id) => id,
                Placed::Unknown => continue,
                Placed::Refused => {
                    actix_web::rt::time::sleep(SOLD_OUT_PAUSE).await;
                    continue;
                }
            };
            outcome.reserved.push(order_id.clone());
            turn += 1;
            match turn % 3 {
                0 => {
                    let paid = self.pay(&order_id).await;
                    outcome.record(self.started, Op::Pay, &paid.outcome);
                    match paid.status {
                        200 => outcome.paid.push(order_id.clone()),
                        _ if !paid.decided() => outcome.undecided.push(order_id.clone()),
                        _ => {}
                    }
                }
                1 => {
                    let cancelled = self.cancel(&order_id, token).await;
                    outcome.record(self.started, Op::Cancel, &cancelled.outcome);
                    match cancelled.status {
                        200 => outcome.cancelled.push(order_id.clone()),
                        _ if !cancelled.decided() => outcome.undecided.push(order_id.clone()),
                        _ => {}
                    }
                }
                _ => {}
            }
            let looked_up = self.lookup(&order_id, token).await;
            outcome.record(self.started, Op::Lookup, &looked_up.outcome);
        }
        outcome
    }
}

impl Lifecycle {
    /// Runs the buyers on a thread of their own until `stop` is set or
    /// [`Lifecycle::longest`] passes.
    pub fn execute(&self, stop: Arc<AtomicBool>) -> anyhow::Result<LifecycleOutcome> {
        let tokens = sign_tokens(&self.private_key, 5_000_000, self.users)?;
        let run = self.clone();
        actix_web::rt::System::new().block_on(async move {
            let started = Instant::now();
            // One thread: the buyers share it through an Rc (awc's client is not Send).
            let buyers = Rc::new(Buyers {
                client: client(run.hot_buyers + run.reserving_buyers),
                run,
                tokens,
                started,
                stop,
            });
            let hot = (0..buyers.run.hot_buyers).map(|b| {
                let buyers = buyers.clone();
                actix_web::rt::spawn(async move { buyers.buy_hot(b).await })
            });
            let reserving = (0..buyers.run.reserving_buyers).map(|b| {
                let buyers = buyers.clone();
                let b = buyers.run.hot_buyers + b;
                actix_web::rt::spawn(async move { buyers.reserve_and_settle(b).await })
            });
            let mut total = LifecycleOutcome::default();
            for joined in futures_util::future::join_all(hot.chain(reserving)).await {
                total.merge(joined.map_err(|_| anyhow::anyhow!("a buyer panicked"))?);
            }
            total.started = Some(started);
            Ok(total)
        })
    }

    /// Asks every purchase whose answer was unknown again, with its key: a 200 is an
    /// order that happened (added to the purchases or reservations), a 4xx one that did
    /// not. What was reserved that way is left to expire.
    pub fn settle_unknown(&self, outcome: &mut LifecycleOutcome) {
        let unknowns = std::mem::take(&mut outcome.unknowns);
        let run = self.clone();
        let answers: Vec<(Op, Answer)> = actix_web::rt::System::new().block_on(async move {
            let buyers = Buyers {
                client: client(1),
                run,
                tokens: Vec::new(),
                started: Instant::now(),
                stop: Arc::new(AtomicBool::new(false)),
            };
            let mut answers = Vec::new();
            for unknown in unknowns {
                let answer = buyers
                    .purchase(unknown.item, &unknown.token, &unknown.key)
                    .await;
                answers.push((unknown.op, answer));
            }
            answers
        });
        for (op, answer) in answers {
            match (answer.status, answer.order_id()) {
                (200, Some(id)) => {
                    outcome.unknown_happened += 1;
                    match op {
                        Op::Reserve => outcome.reserved.push(id),
                        _ => outcome.purchased.push(id),
                    }
                }
                _ if answer.decided() => outcome.unknown_not_happened += 1,
                _ => outcome.unknown_unresolved += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_5xx_and_unanswered_requests() {
        for kind in [
            "purchase 503 OUTCOME_UNKNOWN",
            "reserve 502 BAD_GATEWAY",
            "lookup connection error",
            "pay timeout",
        ] {
            assert!(is_failure(kind), "{kind}");
        }
        for kind in [
            "purchase 200",
            "reserve 409 INSUFFICIENT_STOCK",
            "cancel 404 NOT_FOUND",
        ] {
            assert!(!is_failure(kind), "{kind}");
        }
    }

    #[test]
    fn answers_are_counted_per_second_and_summed_over_a_window() {
        let started = Instant::now();
        let mut outcome = LifecycleOutcome::default();
        outcome.record(started, Op::Purchase, "200");
        outcome.record(started, Op::Purchase, "200");
        let mut later = LifecycleOutcome {
            per_second: vec![BTreeMap::new(), BTreeMap::new()],
            ..LifecycleOutcome::default()
        };
        later.per_second[1].insert("reserve connection error".into(), 3);
        outcome.merge(later);
        assert_eq!(outcome.per_second.len(), 2);
        assert_eq!(outcome.between(0.0, 1.0)["purchase 200"], 2);
        let window = outcome.between(0.5, 2.0);
        assert_eq!(window["reserve connection error"], 3);
        assert_eq!(window["purchase 200"], 2, "second 0 overlaps the window");
        assert!(outcome.between(2.0, 9.0).is_empty());
    }
}
