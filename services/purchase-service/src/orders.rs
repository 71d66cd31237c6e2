//! The `orders` table as purchase-service reads it: a user's persisted orders.

use chrono::NaiveDateTime;
use db::schema::orders;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orders)]
#[diesel(check_for_backend(diesel::mysql::Mysql))]
pub struct OrderRow {
    pub id: String,
    pub user_id: u64,
    pub item_id: u64,
    pub quantity: u32,
    pub purchased_at: NaiveDateTime,
    pub persisted_at: NaiveDateTime,
    pub status: String,
    pub pay_by: Option<NaiveDateTime>,
    pub amount: Option<u64>,
}

/// A user's persisted orders, newest first, and how many there are.
pub async fn page_for_user(
    conn: &mut AsyncMysqlConnection,
    user_id: u64,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<OrderRow>, i64)> {
    let rows = orders::table
        .filter(orders::user_id.eq(user_id))
        .order((orders::purchased_at.desc(), orders::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)
        .await?;
    let total = orders::table
        .filter(orders::user_id.eq(user_id))
        .count()
        .get_result(conn)
        .await?;
    Ok((rows, total))
}

pub async fn find(conn: &mut AsyncMysqlConnection, id: &str) -> QueryResult<Option<OrderRow>> {
    orders::table
        .find(id)
        .select(OrderRow::as_select())
        .first(conn)
        .await
        .optional()
}
