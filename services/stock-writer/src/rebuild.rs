//! `rebuild-redis [ITEM_ID]`: recovery when Redis lost data anyway (a failover before
//! replicas had the writes, a restart without persistence). MySQL holds every persisted
//! sale, so Redis is rebuilt from it, in four steps: the items go off sale (no new
//! sales while figures are read); the orders Redis still has are left to reach MySQL
//! (every outbox empty, the stock queue empty); each item's stock, buyers' counts and
//! limit are rebuilt from MySQL under its lock and row lock (see `inventory::rebuild`);
//! the items MySQL has as live go back on sale. If the orders do not drain in time, the
//! items stay off sale and nothing is rebuilt: run it again once stock-writer and the
//! relay are back.

use crate::sync::{ItemPass, LockedRow, SyncError, item_ids, warn_of_shortfall};
use db::DbPool;
use events::StockEvent;
use inventory::rebuild::{PersistedSales, Rebuilt};
use inventory::{DistributedLock, Inventory};
use std::time::{Duration, Instant};

/// What rebuild-redis did to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub item_id: u64,
    pub mysql_stock: i64,
    pub on_sale: bool,
    pub redis: Rebuilt,
    /// Open reservations MySQL has that Redis had lost, put back (they expire or get
    /// paid as any other).
    pub reservations_restored: usize,
}

/// What rebuild-redis works with.
pub struct RedisRebuild {
    pub db: DbPool,
    pub store: Inventory,
    pub lock: DistributedLock,
    /// The broker's URL and the stock queue, to see it drained.
    pub rabbitmq_url: String,
    pub queue: String,
    /// How long the orders may take to drain before giving up.
    pub drain_timeout: Duration,
}

/// How often the drain is looked at, and how often it is reported.
const DRAIN_POLL: Duration = Duration::from_millis(250);
const DRAIN_REPORT: Duration = Duration::from_secs(5);

impl RedisRebuild {
    /// Rebuilds one item, or every item (deleted ones stay off sale); `progress` hears
    /// each step.
    pub async fn run(
        &self,
        item: Option<u64>,
        progress: impl Fn(&str),
    ) -> anyhow::Result<Vec<RebuildReport>> {
        let mut conn = self.db.get().await?;
        let ids = item_ids(&mut conn, item).await?;
        progress(&format!("taking {} item(s) off sale", ids.len()));
        for id in &ids {
            self.store.stock.set_on_sale(*id, false).await?;
        }
        self.drained(&ids, &progress).await?;
        let reports = self
            .each_item((&self.store, &self.lock), &mut conn, &ids)
            .await?;
        self.store.stock.remember(&ids).await?;
        Ok(reports)
    }

    /// Waits until no order of these items is left in an outbox and the stock queue is
    /// empty, so MySQL has every sale Redis still knows of.
    async fn drained(&self, ids: &[u64], progress: &impl Fn(&str)) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.drain_timeout;
        let mut reported = Instant::now();
        loop {
            let waiting: u64 = self.store.outbox.counts(ids).await?.iter().sum();
            let queued = crate::dlq::message_count(&self.rabbitmq_url, &self.queue).await?;
            if waiting == 0 && queued == 0 {
                progress("every order Redis had is in MySQL");
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{waiting} order(s) still in outboxes and {queued} message(s) in {} after {:?}: \
                     is stock-writer running, and purchase-service (its relay publishes the outbox)? \
                     The items stay off sale; run rebuild-redis again",
                    self.queue,
                    self.drain_timeout
                );
            }
            if reported.elapsed() >= DRAIN_REPORT {
                progress(&format!(
                    "waiting for {waiting} order(s) in outboxes and {queued} message(s) in {} to reach MySQL",
                    self.queue
                ));
                reported = Instant::now();
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}

impl ItemPass for RedisRebuild {
    type Report = RebuildReport;

    /// Rebuilds the item and puts it back on sale unless it was deleted.
    async fn on_locked_row(&self, row: LockedRow<'_>) -> Result<RebuildReport, SyncError> {
        let sales = PersistedSales {
            stock: row.stock,
            max_per_user: row.max_per_user,
            bought: db::orders::bought_per_user(row.conn, row.item_id).await?,
        };
        let redis = self.store.rebuild(row.item_id, &sales).await?;
        warn_of_shortfall(row.item_id, redis.shortfall);
        let open = db::orders::open_reservations(row.conn, row.item_id).await?;
        let reservations: Vec<(String, String, i64)> = open
            .into_iter()
            .map(|order| {
                let pay_by_ms = order.pay_by.map_or(0, |at| at.and_utc().timestamp_millis());
                let event = StockEvent {
                    version: events::EVENT_VERSION,
                    order_id: order.id.clone(),
                    user_id: order.user_id,
                    item_id: row.item_id,
                    quantity: order.quantity,
                    purchased_at_ms: order.purchased_at.and_utc().timestamp_millis(),
                    pay_by_ms: Some(pay_by_ms),
                    amount: Some(order.amount.unwrap_or(0)),
                    ..StockEvent::default()
                };
                (order.id, event.to_json(), pay_by_ms)
            })
            .collect();
        let reservations_restored = self
            .store
            .reservations
            .restore(
                row.item_id,
                &reservations,
                chrono::Utc::now().timestamp_millis(),
            )
            .await?;
        if row.on_sale {
            self.store.stock.set_on_sale(row.item_id, true).await?;
        }
        Ok(RebuildReport {
            item_id: row.item_id,
            mysql_stock: row.stock,
            on_sale: row.on_sale,
            redis,
            reservations_restored,
        })
    }
}
