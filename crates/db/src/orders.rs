//! Queries on `orders` that more than one service runs.

use crate::schema::orders;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

/// Which of these order ids MySQL already has (the idempotency check of stock-writer,
/// sync-stock's outbox cleanup, and the order listings' dedup of pending orders).
pub async fn persisted_among<S: AsRef<str>>(
    conn: &mut AsyncMysqlConnection,
    ids: &[S],
) -> QueryResult<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    orders::table
        .filter(orders::id.eq_any(ids))
        .select(orders::id)
        .load(conn)
        .await
}
