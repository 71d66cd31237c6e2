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

/// Units each buyer has of an item in MySQL: (user id, units), by user id.
pub async fn bought_per_user(
    conn: &mut AsyncMysqlConnection,
    item_id: u64,
) -> QueryResult<Vec<(u64, u64)>> {
    use diesel::dsl::sql;
    use diesel::sql_types::Unsigned;
    orders::table
        .filter(orders::item_id.eq(item_id))
        .group_by(orders::user_id)
        .select((
            orders::user_id,
            sql::<Unsigned<diesel::sql_types::BigInt>>("CAST(SUM(quantity) AS UNSIGNED)"),
        ))
        .order(orders::user_id)
        .load(conn)
        .await
}
