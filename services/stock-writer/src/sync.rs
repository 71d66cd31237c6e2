//! `sync-stock [ITEM_ID]`: rebuilds an item's Redis state from MySQL, correctly while
//! purchases are in flight. Redis stock must be MySQL stock minus what was sold in Redis
//! but not yet persisted (the outbox and parked orders). The item's row is locked
//! (`SELECT ... FOR UPDATE`), which holds back stock-writer's commits for that item, so
//! MySQL's stock and its set of persisted orders cannot move while one Redis script
//! computes the figure from the outbox as it is at that instant and sets it. Purchases
//! before the script are in the outbox it counts; purchases after it decrement the
//! figure it set. The item's distributed lock is held throughout, as catalog-service's
//! admin writes hold it, so a soft delete cannot slip between reading the row and
//! writing the on-sale flag (which would put a deleted item back on sale).

use db::DbPool;
use db::schema::items;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use inventory::sync::{MysqlFigures, Synced};
use inventory::{DistributedLock, ItemStore};

/// What sync-stock did to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub item_id: u64,
    pub mysql_stock: u32,
    pub redis: Synced,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no item {0}")]
    UnknownItem(u64),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Redis(#[from] inventory::Error),
}

/// What sync-stock works with.
pub struct StockSync {
    pub db: DbPool,
    pub store: ItemStore,
    pub lock: DistributedLock,
}

impl StockSync {
    /// Synchronizes one item, or every item (deleted ones too: they go off sale).
    pub async fn run(&self, item: Option<u64>) -> anyhow::Result<Vec<SyncReport>> {
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
        let mut reports = Vec::with_capacity(ids.len());
        for id in &ids {
            let lock_key = self.store.keys(*id).lock();
            let report = self
                .lock
                .with_lock(&lock_key, async || self.sync_item(&mut conn, *id).await)
                .await?;
            reports.push(report);
        }
        self.store.remember(&ids).await?;
        Ok(reports)
    }

    async fn sync_item(
        &self,
        conn: &mut AsyncMysqlConnection,
        item_id: u64,
    ) -> Result<SyncReport, SyncError> {
        conn.transaction::<_, SyncError, _>(async |c| {
            let row: Option<(u32, Option<u32>, Option<chrono::NaiveDateTime>)> = items::table
                .find(item_id)
                .select((items::stock, items::max_per_user, items::deleted_at))
                .for_update()
                .first(&mut *c)
                .await
                .optional()?;
            let (mysql_stock, max_per_user, deleted_at) =
                row.ok_or(SyncError::UnknownItem(item_id))?;
            let outbox_ids = self.store.outbox_order_ids(item_id).await?;
            let persisted_order_ids = db::orders::persisted_among(&mut *c, &outbox_ids).await?;
            let synced = self
                .store
                .sync(
                    item_id,
                    &MysqlFigures {
                        stock: mysql_stock,
                        on_sale: deleted_at.is_none(),
                        max_per_user,
                        persisted_order_ids,
                    },
                )
                .await?;
            if synced.shortfall > 0 {
                tracing::error!(
                    item_id,
                    shortfall = synced.shortfall,
                    "MySQL stock cannot cover the pending sales; Redis set to 0"
                );
            }
            Ok(SyncReport {
                item_id,
                mysql_stock,
                redis: synced,
            })
        })
        .await
    }
}
