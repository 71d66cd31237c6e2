//! `rebuild-redis [ITEM_ID]`: recovery when Redis lost data anyway (a failover before
//! replicas had the writes, a restart without persistence). MySQL holds every persisted
//! sale, so Redis is rebuilt from it, in four steps: the items go off sale (no new
//! sales while figures are read); the orders Redis still has are left to reach MySQL
//! (every outbox empty, the stock queue empty); each item's stock, buyers' counts and
//! limit are rebuilt from MySQL under its lock and row lock (see `inventory::rebuild`);
//! the items MySQL has as live go back on sale. If the orders do not drain in time, the
//! items stay off sale and nothing is rebuilt: run it again once stock-writer and the
//! relay are back.

use crate::sync::SyncError;
use db::DbPool;
use db::schema::items;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use inventory::rebuild::{PersistedSales, Rebuilt};
use inventory::{DistributedLock, ItemStore};
use std::time::{Duration, Instant};

/// What rebuild-redis did to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub item_id: u64,
    pub mysql_stock: u32,
    pub on_sale: bool,
    pub redis: Rebuilt,
}

/// What rebuild-redis works with.
pub struct RedisRebuild {
    pub db: DbPool,
    pub store: ItemStore,
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
        let ids: Vec<u64> = match item {
            Some(id) => vec![id],
            None => {
                items::table
                    .select(items::id)
                    .order(items::id)
                    .load(&mut conn)
                    .await?
            }
        };
        progress(&format!("taking {} item(s) off sale", ids.len()));
        for id in &ids {
            self.store.set_on_sale(*id, false).await?;
        }
        self.drained(&ids, &progress).await?;
        let mut reports = Vec::with_capacity(ids.len());
        for id in &ids {
            let lock_key = self.store.keys(*id).lock();
            let report = self
                .lock
                .with_lock(&lock_key, async || self.rebuild_item(&mut conn, *id).await)
                .await?;
            if report.on_sale {
                self.store.set_on_sale(*id, true).await?;
            }
            reports.push(report);
        }
        self.store.remember(&ids).await?;
        Ok(reports)
    }

    /// Waits until no order of these items is left in an outbox and the stock queue is
    /// empty, so MySQL has every sale Redis still knows of.
    async fn drained(&self, ids: &[u64], progress: &impl Fn(&str)) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.drain_timeout;
        let mut reported = Instant::now();
        loop {
            let waiting: u64 = self.store.outbox_counts(ids).await?.iter().sum();
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

    async fn rebuild_item(
        &self,
        conn: &mut AsyncMysqlConnection,
        item_id: u64,
    ) -> Result<RebuildReport, SyncError> {
        conn.transaction::<_, SyncError, _>(async |c| {
            let row: Option<(u32, Option<u32>, Option<chrono::NaiveDateTime>)> = items::table
                .find(item_id)
                .select((items::stock, items::max_per_user, items::deleted_at))
                .for_update()
                .first(&mut *c)
                .await
                .optional()?;
            let (stock, max_per_user, deleted_at) = row.ok_or(SyncError::UnknownItem(item_id))?;
            let bought = db::orders::bought_per_user(&mut *c, item_id).await?;
            let redis = self
                .store
                .rebuild(
                    item_id,
                    &PersistedSales {
                        stock,
                        max_per_user,
                        bought,
                    },
                )
                .await?;
            if redis.shortfall > 0 {
                tracing::error!(
                    item_id,
                    shortfall = redis.shortfall,
                    "MySQL stock cannot cover the sales pending in Redis; Redis set to 0"
                );
            }
            Ok(RebuildReport {
                item_id,
                mysql_stock: stock,
                on_sale: deleted_at.is_none(),
                redis,
            })
        })
        .await
    }
}
