//! `sync-stock [ITEM_ID]`: rebuilds an item's Redis state from MySQL, correctly while
//! purchases are in flight. Redis stock must be MySQL's stock (`stock - stock_owed`, see
//! `db::stock`) minus what was sold in Redis but not yet persisted, plus what was
//! released there and not yet persisted (the outbox and parked orders). The item's row is locked
//! (`SELECT ... FOR UPDATE`), which holds back stock-writer's commits for that item, so
//! MySQL's stock and its set of persisted orders cannot move while one Redis script
//! computes the figure from the outbox as it is at that instant and sets it. Purchases
//! before the script are in the outbox it counts; purchases after it decrement the
//! figure it set. The item's distributed lock is held throughout, as catalog-service's
//! admin writes hold it, so a soft delete cannot slip between reading the row and
//! writing the on-sale flag (which would put a deleted item back on sale).

use chrono::NaiveDateTime;
use db::DbPool;
use db::schema::items;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use inventory::room::RoomTerms;
use inventory::stock::SaleTerms;
use inventory::sync::{MysqlFigures, Synced};
use inventory::{DistributedLock, Inventory};

/// What sync-stock did to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub item_id: u64,
    /// `stock - stock_owed`.
    pub mysql_stock: i64,
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
    pub store: Inventory,
    pub lock: DistributedLock,
}

impl StockSync {
    /// Synchronizes one item, or every item (deleted ones too: they go off sale).
    pub async fn run(&self, item: Option<u64>) -> anyhow::Result<Vec<SyncReport>> {
        let mut conn = self.db.get().await?;
        let ids = item_ids(&mut conn, item).await?;
        let reports = self
            .each_item((&self.store, &self.lock), &mut conn, &ids)
            .await?;
        self.store.stock.remember(&ids).await?;
        Ok(reports)
    }
}

impl ItemPass for StockSync {
    type Report = SyncReport;

    async fn on_locked_row(&self, row: LockedRow<'_>) -> Result<SyncReport, SyncError> {
        let outbox_ids = self.store.outbox.message_ids(row.item_id).await?;
        let figures = MysqlFigures {
            stock: row.stock,
            on_sale: row.on_sale,
            max_per_user: row.max_per_user,
            persisted_messages: db::orders::persisted_messages(row.conn, &outbox_ids).await?,
        };
        let synced = self.store.sync(row.item_id, &figures).await?;
        warn_of_shortfall(row.item_id, synced.shortfall);
        Ok(SyncReport {
            item_id: row.item_id,
            mysql_stock: row.stock,
            redis: synced,
        })
    }
}

/// An item's row as read under its lock, and the transaction that holds the lock.
pub(crate) struct LockedRow<'c> {
    pub conn: &'c mut AsyncMysqlConnection,
    pub item_id: u64,
    /// `stock - stock_owed`: negative while sales wait for the releases that freed them.
    pub stock: i64,
    pub max_per_user: Option<u32>,
    /// Not soft-deleted.
    pub on_sale: bool,
    pub terms: SaleTerms,
}

/// A pass that sets each item's Redis state from its MySQL row (sync-stock,
/// rebuild-redis).
pub(crate) trait ItemPass: Sync {
    type Report: Send;

    /// Does the pass's work on one item, inside the transaction that holds its row.
    fn on_locked_row(
        &self,
        row: LockedRow<'_>,
    ) -> impl Future<Output = Result<Self::Report, SyncError>> + Send;

    /// Runs the pass on each item in turn, under the item's distributed lock (the one
    /// catalog-service's admin writes take) and in a transaction holding its row locked
    /// (`SELECT ... FOR UPDATE`), which holds back stock-writer's commits for the item.
    async fn each_item(
        &self,
        (store, lock): (&Inventory, &DistributedLock),
        conn: &mut AsyncMysqlConnection,
        ids: &[u64],
    ) -> Result<Vec<Self::Report>, SyncError> {
        let mut reports = Vec::with_capacity(ids.len());
        for &id in ids {
            let lock_key = store.keys(id).lock();
            let report = lock
                .with_lock(&lock_key, async || {
                    conn.transaction::<_, SyncError, _>(async |c| {
                        let row = locked_row(c, id).await?;
                        store.stock.set_terms(id, &row.terms).await?;
                        self.on_locked_row(row).await
                    })
                    .await
                })
                .await?;
            reports.push(report);
        }
        Ok(reports)
    }
}

/// One item, or every item MySQL has (deleted ones too), by id.
pub(crate) async fn item_ids(
    conn: &mut AsyncMysqlConnection,
    item: Option<u64>,
) -> diesel::QueryResult<Vec<u64>> {
    match item {
        Some(id) => Ok(vec![id]),
        None => {
            items::table
                .select(items::id)
                .order(items::id)
                .load(conn)
                .await
        }
    }
}

async fn locked_row(
    conn: &mut AsyncMysqlConnection,
    item_id: u64,
) -> Result<LockedRow<'_>, SyncError> {
    type Row = (
        u32,
        u32,
        Option<u32>,
        Option<NaiveDateTime>,
        u64,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
        Option<u32>,
        (bool, Option<u32>, u32),
    );
    let (stock, owed, max_per_user, deleted_at, price, starts, ends, window, room): Row =
        items::table
            .find(item_id)
            .select((
                items::stock,
                items::stock_owed,
                items::max_per_user,
                items::deleted_at,
                items::price,
                items::sale_starts_at,
                items::sale_ends_at,
                items::payment_window_secs,
                (items::waiting_room, items::max_admitted, items::pass_secs),
            ))
            .for_update()
            .first(&mut *conn)
            .await
            .optional()?
            .ok_or(SyncError::UnknownItem(item_id))?;
    Ok(LockedRow {
        conn,
        item_id,
        stock: db::stock::net(stock, owed),
        max_per_user,
        on_sale: deleted_at.is_none(),
        terms: SaleTerms {
            price,
            starts_at_ms: starts.map(|at| at.and_utc().timestamp_millis()),
            ends_at_ms: ends.map(|at| at.and_utc().timestamp_millis()),
            payment_window_secs: window,
            room: RoomTerms {
                enabled: room.0,
                max_admitted: room.1,
                pass_secs: room.2,
            },
        },
    })
}

pub(crate) fn warn_of_shortfall(item_id: u64, shortfall: i64) {
    if shortfall > 0 {
        tracing::error!(
            item_id,
            shortfall,
            "MySQL stock cannot cover the sales pending in Redis; Redis set to 0"
        );
    }
}
