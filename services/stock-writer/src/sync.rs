//! `sync-stock [ITEM_ID]`: rebuilds an item's Redis state from MySQL, correctly while
//! purchases are in flight. Redis stock must be MySQL stock minus what was sold in Redis
//! but not yet persisted (the outbox). The item's row is locked (`SELECT ... FOR
//! UPDATE`), which holds back stock-writer's commits for that item, so MySQL's stock and
//! its set of persisted orders cannot move while one Redis script computes the figure
//! from the outbox as it is at that instant and sets it. Purchases before the script are
//! in the outbox it counts; purchases after it decrement the figure it set.

use db::DbPool;
use db::schema::{items, orders};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use inventory::ItemStore;
use redis::Script;
use std::sync::LazyLock;

/// KEYS: stock, meta, outbox, outbox times.
/// ARGV: MySQL stock, on-sale flag, limit, then the outbox order ids MySQL has.
const SYNC_LUA: &str = r#"
local persisted = {}
for i = 4, #ARGV do persisted[ARGV[i]] = true end
local entries = redis.call('HGETALL', KEYS[3])
local pending, cleaned = 0, 0
for i = 1, #entries, 2 do
  if persisted[entries[i]] then
    redis.call('HDEL', KEYS[3], entries[i])
    redis.call('ZREM', KEYS[4], entries[i])
    cleaned = cleaned + 1
  else
    pending = pending + cjson.decode(entries[i + 1])['quantity']
  end
end
local target = tonumber(ARGV[1]) - pending
local shortfall = 0
if target < 0 then
  shortfall = -target
  target = 0
end
local before = redis.call('GET', KEYS[1]) or '-1'
redis.call('SET', KEYS[1], target)
redis.call('HSET', KEYS[2], 'on_sale', ARGV[2], 'limit', ARGV[3])
return {before, tostring(target), tostring(pending), tostring(cleaned), tostring(shortfall)}
"#;

static SYNC: LazyLock<Script> = LazyLock::new(|| Script::new(SYNC_LUA));

/// What sync-stock did to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub item_id: u64,
    pub mysql_stock: u32,
    /// Redis stock before (`None` when Redis had none).
    pub before: Option<i64>,
    pub after: i64,
    /// Units sold in Redis and not yet persisted.
    pub pending: i64,
    /// Persisted orders that were still in the outbox, now removed.
    pub cleaned: i64,
    /// Pending sales MySQL's stock could not cover (0 unless the two had drifted).
    pub shortfall: i64,
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

impl From<redis::RedisError> for SyncError {
    fn from(error: redis::RedisError) -> Self {
        SyncError::Redis(error.into())
    }
}

/// Synchronizes one item, or every item (deleted ones too: they go off sale).
pub async fn sync_stock(
    db: &DbPool,
    store: &ItemStore,
    item: Option<u64>,
) -> anyhow::Result<Vec<SyncReport>> {
    let mut conn = db.get().await?;
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
        reports.push(sync_item(&mut conn, store, *id).await?);
    }
    store.remember(&ids).await?;
    Ok(reports)
}

async fn sync_item(
    conn: &mut AsyncMysqlConnection,
    store: &ItemStore,
    item_id: u64,
) -> Result<SyncReport, SyncError> {
    let keys = store.keys(item_id);
    conn.transaction::<_, SyncError, _>(async |c| {
        let row: Option<(u32, Option<u32>, Option<chrono::NaiveDateTime>)> = items::table
            .find(item_id)
            .select((items::stock, items::max_per_user, items::deleted_at))
            .for_update()
            .first(&mut *c)
            .await
            .optional()?;
        let (mysql_stock, max_per_user, deleted_at) = row.ok_or(SyncError::UnknownItem(item_id))?;
        let mut redis = store.redis().get().await.map_err(inventory::Error::from)?;
        let outbox_ids: Vec<String> = redis::cmd("HKEYS")
            .arg(keys.outbox())
            .query_async(&mut redis)
            .await?;
        let persisted: Vec<String> = if outbox_ids.is_empty() {
            Vec::new()
        } else {
            orders::table
                .filter(orders::id.eq_any(&outbox_ids))
                .select(orders::id)
                .load(&mut *c)
                .await?
        };
        let reply: Vec<String> = SYNC
            .key(keys.stock())
            .key(keys.meta())
            .key(keys.outbox())
            .key(keys.outbox_times())
            .arg(mysql_stock)
            .arg(u8::from(deleted_at.is_none()))
            .arg(max_per_user.unwrap_or(0))
            .arg(&persisted)
            .invoke_async(&mut redis)
            .await?;
        let number = |i: usize| {
            reply
                .get(i)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let report = SyncReport {
            item_id,
            mysql_stock,
            before: Some(number(0)).filter(|b| *b >= 0),
            after: number(1),
            pending: number(2),
            cleaned: number(3),
            shortfall: number(4),
        };
        if report.shortfall > 0 {
            tracing::error!(
                item_id,
                shortfall = report.shortfall,
                "MySQL stock cannot cover the pending sales; Redis set to 0"
            );
        }
        Ok(report)
    })
    .await
}
