//! The flash sale behind a waiting room: [`ROOM_BUYERS`] buyers join an item of
//! [`ROOM_STOCK`] units before its sale opens, the sale opens, and each buyer reads its
//! ticket (at most once a second, as the buyer's page does) and buys when admitted. What
//! it reports: how long the stock lasted, how many purchases reached Redis (the stock, not
//! the crowd), ticket reads served per second, how soon after the last sale the waiting
//! buyers read `sold_out`, 5xx and oversold; and whether the room was fair: admitted in
//! exactly the queue's order, and a queue order unrelated to the join order (Spearman's
//! rank correlation near 0).

use super::Bench;
use anyhow::Context;
use inventory::keys::ItemKeys;
use loadgen::room::{Joined, RoomBuyers, Watched};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Units on sale.
pub const ROOM_STOCK: u64 = 1_000;
/// Buyers, every one joined before the start.
pub const ROOM_BUYERS: u64 = 20_000;
/// Buyers holding an open pass at once: admission comes in waves as they buy.
const ROOM_MAX_ADMITTED: u32 = 100;
/// User ids of the room's buyers start here (the flash sale's start at 1,000,000).
const FIRST_USER: u64 = 5_000_000;
/// From the sale's opening being set until it opens.
const OPENS_IN: Duration = Duration::from_secs(1);

/// The room's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSale {
    pub stock: u64,
    pub buyers: u64,
    pub max_admitted: u32,
    pub concurrency: usize,
    pub joins_per_s: f64,
    /// From the opening to the last purchase answered 200.
    pub sold_out_s: f64,
    pub sold: u64,
    /// Purchases the buyers sent, and those purchase-service took to Redis.
    pub purchase_requests: u64,
    pub purchases_reaching_redis: u64,
    pub ticket_reads_per_s: f64,
    /// From the last sale until each buyer who did not buy read `sold_out`, ms.
    pub told_sold_out_p50_ms: f64,
    pub told_sold_out_p99_ms: f64,
    /// Buyers whose read sent more than a second after the last sale said anything but
    /// `sold_out`.
    pub told_otherwise_after_1s: u64,
    pub server_errors: u64,
    pub oversold: u64,
    /// Buyers admitted out of the queue's order (a later position admitted before an
    /// earlier one, or instead of it).
    pub admitted_out_of_order: u64,
    /// Buyers who bought from beyond the first `stock` positions.
    pub bought_beyond_the_stock: u64,
    /// Spearman's rank correlation between join order and queue position.
    pub join_position_correlation: f64,
    pub drain_s: f64,
}

impl RoomSale {
    /// Its figures for `summary.json`, each as `waiting_room_<figure>`.
    pub fn summary_figures(&self) -> Vec<(String, f64)> {
        [
            ("sold_out_s", self.sold_out_s),
            (
                "purchases_reaching_redis",
                self.purchases_reaching_redis as f64,
            ),
            ("ticket_reads_per_s", self.ticket_reads_per_s),
            ("told_sold_out_p99_ms", self.told_sold_out_p99_ms),
            (
                "told_otherwise_after_1s",
                self.told_otherwise_after_1s as f64,
            ),
            ("5xx", self.server_errors as f64),
            ("oversold", self.oversold as f64),
            ("admitted_out_of_order", self.admitted_out_of_order as f64),
            ("join_position_correlation", self.join_position_correlation),
        ]
        .into_iter()
        .map(|(figure, value)| (format!("waiting_room_{figure}"), value))
        .collect()
    }

    /// The section of `report.md`.
    pub fn markdown(&self) -> String {
        [
            String::new(),
            "## Waiting room".into(),
            String::new(),
            format!(
                "{} buyers with their own tokens join the waiting room of an item of {} units (max_admitted {}) before the sale opens; then each reads its ticket at most once a second and buys when admitted ({} connections, through the gateway). Told sold out: from the last sale to each other buyer's `sold_out` read.",
                self.buyers, self.stock, self.max_admitted, self.concurrency
            ),
            String::new(),
            "| joins/s | sold out after s | sold | purchases sent | reached Redis | ticket reads/s | told sold out p50 / p99 ms | told otherwise > 1 s after | 5xx | oversold | admitted out of order | bought beyond the stock | join/position correlation | MySQL had all after s |".into(),
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|".into(),
            format!(
                "| {:.0} | {:.2} | {} | {} | {} | {:.0} | {:.0} / {:.0} | {} | {} | {} | {} | {} | {:+.3} | {:.1} |",
                self.joins_per_s,
                self.sold_out_s,
                self.sold,
                self.purchase_requests,
                self.purchases_reaching_redis,
                self.ticket_reads_per_s,
                self.told_sold_out_p50_ms,
                self.told_sold_out_p99_ms,
                self.told_otherwise_after_1s,
                self.server_errors,
                self.oversold,
                self.admitted_out_of_order,
                self.bought_beyond_the_stock,
                self.join_position_correlation,
                self.drain_s
            ),
        ]
        .join("\n")
            + "\n"
    }
}

impl Bench<'_> {
    /// Runs the waiting-room sale through the gateway and checks it.
    pub(super) async fn waiting_room(&mut self) -> anyhow::Result<RoomSale> {
        let name = self.item_name();
        let item = self
            .admin
            .create_room_item(&name, ROOM_STOCK, ROOM_MAX_ADMITTED)
            .await?;
        let concurrency = self.plan.top();
        let mut crowd = RoomBuyers::new(
            format!("http://127.0.0.1:{}", self.stack.gateway_port),
            item,
            ROOM_BUYERS,
            FIRST_USER,
            &self.stack.settings.jwt.private_key_path,
        )?;
        crowd.concurrency = concurrency;
        crate::step(format!(
            "waiting room: {ROOM_BUYERS} buyers join before the start ({concurrency} connections)"
        ));
        let crowd = std::sync::Arc::new(crowd);
        let joined = blocking(&crowd, |crowd| crowd.join()).await?;
        anyhow::ensure!(
            joined.order.len() as u64 == ROOM_BUYERS,
            "only {} of {ROOM_BUYERS} joins answered 200: {:?}",
            joined.order.len(),
            joined.statuses
        );
        let queue = self.queue_order(item, &crowd).await?;

        let ports = self.stack.ports("purchase-service");
        let reached_before = purchases_reaching_redis(&ports).await?;
        let opens_at = Instant::now() + OPENS_IN;
        self.admin.open_sale_in(item, OPENS_IN).await?;
        crate::step("waiting room: the sale opens; buyers watch their tickets and buy");
        let watched = blocking(&crowd, |crowd| crowd.watch()).await?;
        let reached = purchases_reaching_redis(&ports).await? - reached_before;
        super::write_json(&self.out.join("waiting-room-joins.json"), &joined)?;
        super::write_json(&self.out.join("waiting-room-watch.json"), &watched)?;

        let drain_s = self.drain(&[item]).await?;
        let oversold = self.check("waiting-room", item, ROOM_STOCK).await?;
        Ok(figures(
            &joined,
            &watched,
            &queue,
            crowd.ms_at(opens_at),
            Counts {
                concurrency,
                reached,
                oversold,
                drain_s,
            },
        ))
    }

    /// The buyers in the room's queue order, read from Redis before the sale opens.
    async fn queue_order(&mut self, item: u64, crowd: &RoomBuyers) -> anyhow::Result<Vec<usize>> {
        let key = ItemKeys::new(&self.backends.keyspace, item).room_queue();
        let members: Vec<u64> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.backends.redis)
            .await
            .with_context(|| format!("reading {key}"))?;
        members
            .into_iter()
            .map(|user| {
                crowd
                    .index_of(user)
                    .with_context(|| format!("{key} holds user {user}, not a buyer of the bench"))
            })
            .collect()
    }
}

/// What the crowd's answers do not say.
struct Counts {
    concurrency: usize,
    reached: u64,
    oversold: u64,
    drain_s: f64,
}

fn figures(
    joined: &Joined,
    watched: &Watched,
    queue: &[usize],
    opened_ms: f64,
    counts: Counts,
) -> RoomSale {
    let buyers = &watched.buyers;
    let last_sale_ms = buyers
        .iter()
        .filter_map(|b| b.bought_at_ms)
        .fold(opened_ms, f64::max);
    let mut told: Vec<f64> = buyers
        .iter()
        .filter(|b| b.bought_at_ms.is_none() && b.last_state.as_deref() == Some("sold_out"))
        .map(|b| (b.last_read_at_ms - last_sale_ms).max(0.0))
        .collect();
    told.sort_by(f64::total_cmp);
    let told_otherwise_after_1s = buyers
        .iter()
        .filter(|b| {
            b.last_hopeful_read_sent_ms
                .is_some_and(|sent| sent > last_sale_ms + 1000.0)
        })
        .count() as u64;
    let admitted: Vec<Option<&str>> = queue
        .iter()
        .map(|&b| buyers[b].admitted_until.as_deref())
        .collect();
    let bought_beyond_the_stock = queue
        .iter()
        .skip(ROOM_STOCK as usize)
        .filter(|&&b| buyers[b].bought_at_ms.is_some())
        .count() as u64;
    RoomSale {
        stock: ROOM_STOCK,
        buyers: ROOM_BUYERS,
        max_admitted: ROOM_MAX_ADMITTED,
        concurrency: counts.concurrency,
        joins_per_s: joined.order.len() as f64 / joined.seconds.max(0.001),
        sold_out_s: (last_sale_ms - opened_ms).max(0.0) / 1000.0,
        sold: buyers.iter().filter(|b| b.bought_at_ms.is_some()).count() as u64,
        purchase_requests: watched.purchases,
        purchases_reaching_redis: counts.reached,
        ticket_reads_per_s: watched.ticket_reads as f64 / watched.seconds.max(0.001),
        told_sold_out_p50_ms: percentile(&told, 0.50),
        told_sold_out_p99_ms: percentile(&told, 0.99),
        told_otherwise_after_1s,
        server_errors: watched
            .statuses
            .iter()
            .chain(&joined.statuses)
            .filter(|(status, _)| **status >= 500 || **status == 0)
            .map(|(_, n)| n)
            .sum(),
        oversold: counts.oversold,
        admitted_out_of_order: out_of_order(&admitted),
        bought_beyond_the_stock,
        join_position_correlation: spearman(&joined.order, queue),
        drain_s: counts.drain_s,
    }
}

/// Passes along the queue's order (`None`: never admitted) that break it: one given
/// after a later position's never-admitted gap, or closing before the previous one's.
fn out_of_order(passes: &[Option<&str>]) -> u64 {
    let mut broken = 0;
    let mut gap_seen = false;
    let mut last: Option<&str> = None;
    for pass in passes {
        match pass {
            None => gap_seen = true,
            Some(until) => {
                // RFC 3339 in UTC with milliseconds: the text orders as the time does.
                if gap_seen || last.is_some_and(|last| *until < last) {
                    broken += 1;
                }
                last = Some(until);
            }
        }
    }
    broken
}

/// Spearman's rank correlation of the buyers' ranks in two orders of the same buyers.
fn spearman(first: &[usize], second: &[usize]) -> f64 {
    let n = first.len().min(second.len());
    if n < 2 {
        return 0.0;
    }
    let mut rank_in_second = vec![usize::MAX; second.iter().max().map_or(0, |m| m + 1)];
    for (rank, &buyer) in second.iter().enumerate() {
        rank_in_second[buyer] = rank;
    }
    let squared: f64 = first
        .iter()
        .enumerate()
        .filter_map(|(rank, &buyer)| {
            let other = *rank_in_second.get(buyer)?;
            (other != usize::MAX).then(|| (rank as f64 - other as f64).powi(2))
        })
        .sum();
    let n = n as f64;
    1.0 - 6.0 * squared / (n * (n * n - 1.0))
}

fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].round()
}

/// Purchases purchase-service's instances on `ports` answered from Redis's script: every
/// counted outcome but those answered before it (marks, rate limits, deadlines).
async fn purchases_reaching_redis(ports: &[u16]) -> anyhow::Result<u64> {
    let [all, marks, rate_limited, deadline] = super::sale::purchase_outcomes(
        ports,
        [
            "outcome=",
            "outcome=\"sold_out_mark\"",
            "outcome=\"rate_limited\"",
            "outcome=\"deadline\"",
        ],
    )
    .await?;
    Ok((all - marks - rate_limited - deadline).max(0.0) as u64)
}

/// Runs `work` on the crowd on a blocking thread (the crowd runs its own actix system).
async fn blocking<T: Send + 'static>(
    crowd: &std::sync::Arc<RoomBuyers>,
    work: fn(&RoomBuyers) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let crowd = crowd.clone();
    tokio::task::spawn_blocking(move || work(&crowd)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_out_of_the_queues_order_are_counted() {
        let a = "2026-12-06T10:00:00.000Z";
        let b = "2026-12-06T10:00:01.000Z";
        assert_eq!(out_of_order(&[Some(a), Some(a), Some(b), None, None]), 0);
        assert_eq!(out_of_order(&[Some(b), Some(a)]), 1);
        assert_eq!(out_of_order(&[Some(a), None, Some(b)]), 1);
    }

    #[test]
    fn spearman_is_one_for_the_same_order_and_minus_one_reversed() {
        let order: Vec<usize> = (0..100).collect();
        let reversed: Vec<usize> = order.iter().rev().copied().collect();
        assert!((spearman(&order, &order) - 1.0).abs() < 1e-9);
        assert!((spearman(&order, &reversed) + 1.0).abs() < 1e-9);
    }

    #[test]
    fn percentiles_are_of_the_sorted_values() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
