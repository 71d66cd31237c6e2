//! The `items` table: the model and the queries catalog-service runs against it.
//! Reads skip soft-deleted rows; stock only moves by checked relative updates.

use crate::domain::{ItemChanges, NewItem, SaleSchedule};
use chrono::{DateTime, NaiveDateTime, Utc};
use db::schema::items;
use diesel::prelude::*;
use diesel::sql_types::{Bigint, Datetime, Nullable, Unsigned};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use inventory::room::RoomTerms;
use inventory::stock::{ItemState, SaleTerms};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = items)]
#[diesel(check_for_backend(diesel::mysql::Mysql))]
pub struct Item {
    pub id: u64,
    pub name: String,
    pub description: Option<String>,
    pub price: u64,
    pub stock: u32,
    pub max_per_user: Option<u32>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    pub sale_starts_at: Option<NaiveDateTime>,
    pub sale_ends_at: Option<NaiveDateTime>,
    pub payment_window_secs: Option<u32>,
    pub waiting_room: bool,
    pub max_admitted: Option<u32>,
    pub pass_secs: u32,
}

impl Item {
    pub fn state(&self) -> ItemState {
        ItemState {
            id: self.id,
            stock: self.stock,
            max_per_user: self.max_per_user,
            on_sale: self.deleted_at.is_none(),
            terms: self.terms(),
        }
    }

    pub fn terms(&self) -> SaleTerms {
        let millis = |at: Option<NaiveDateTime>| at.map(|at| at.and_utc().timestamp_millis());
        SaleTerms {
            price: self.price,
            starts_at_ms: millis(self.sale_starts_at),
            ends_at_ms: millis(self.sale_ends_at),
            payment_window_secs: self.payment_window_secs,
            room: self.room(),
        }
    }

    pub fn room(&self) -> RoomTerms {
        RoomTerms {
            enabled: self.waiting_room,
            max_admitted: self.max_admitted,
            pass_secs: self.pass_secs,
        }
    }

    pub fn schedule(&self) -> SaleSchedule {
        SaleSchedule {
            sale_starts_at: self.sale_starts_at.map(|at| at.and_utc()),
            sale_ends_at: self.sale_ends_at.map(|at| at.and_utc()),
            payment_window_secs: self.payment_window_secs,
            room: self.room(),
        }
    }
}

fn naive(at: Option<DateTime<Utc>>) -> Option<NaiveDateTime> {
    at.map(|at| at.naive_utc())
}

#[derive(Insertable)]
#[diesel(table_name = items)]
struct NewRow<'a> {
    name: &'a str,
    description: Option<&'a str>,
    price: u64,
    stock: u32,
    max_per_user: Option<u32>,
    sale_starts_at: Option<NaiveDateTime>,
    sale_ends_at: Option<NaiveDateTime>,
    payment_window_secs: Option<u32>,
    waiting_room: bool,
    max_admitted: Option<u32>,
    pass_secs: u32,
}

#[derive(AsChangeset)]
#[diesel(table_name = items)]
struct ChangeRow<'a> {
    name: Option<&'a str>,
    description: Option<Option<&'a str>>,
    price: Option<u64>,
    max_per_user: Option<Option<u32>>,
    sale_starts_at: Option<Option<NaiveDateTime>>,
    sale_ends_at: Option<Option<NaiveDateTime>>,
    payment_window_secs: Option<Option<u32>>,
    waiting_room: Option<bool>,
    max_admitted: Option<Option<u32>>,
    pass_secs: Option<u32>,
}

pub async fn page(
    conn: &mut AsyncMysqlConnection,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Item>, i64)> {
    let rows = items::table
        .filter(items::deleted_at.is_null())
        .order(items::id.asc())
        .offset(offset)
        .limit(limit)
        .select(Item::as_select())
        .load(conn)
        .await?;
    let total = items::table
        .filter(items::deleted_at.is_null())
        .count()
        .get_result(conn)
        .await?;
    Ok((rows, total))
}

pub async fn find_live(conn: &mut AsyncMysqlConnection, id: u64) -> QueryResult<Option<Item>> {
    items::table
        .find(id)
        .filter(items::deleted_at.is_null())
        .select(Item::as_select())
        .first(conn)
        .await
        .optional()
}

/// Every item, deleted ones included, for warming Redis.
pub async fn all(conn: &mut AsyncMysqlConnection) -> QueryResult<Vec<Item>> {
    items::table
        .order(items::id.asc())
        .select(Item::as_select())
        .load(conn)
        .await
}

/// Inserts an item and returns it; call inside a transaction (LAST_INSERT_ID is per
/// connection).
pub async fn insert(conn: &mut AsyncMysqlConnection, new: &NewItem) -> QueryResult<Item> {
    diesel::insert_into(items::table)
        .values(NewRow {
            name: new.name.as_str(),
            description: new.description.as_deref(),
            price: new.price,
            stock: new.stock,
            max_per_user: new.max_per_user,
            sale_starts_at: naive(new.schedule.sale_starts_at),
            sale_ends_at: naive(new.schedule.sale_ends_at),
            payment_window_secs: new.schedule.payment_window_secs,
            waiting_room: new.schedule.room.enabled,
            max_admitted: new.schedule.room.max_admitted,
            pass_secs: new.schedule.room.pass_secs,
        })
        .execute(conn)
        .await?;
    let id: u64 = diesel::select(diesel::dsl::sql::<Unsigned<Bigint>>("LAST_INSERT_ID()"))
        .get_result(conn)
        .await?;
    items::table
        .find(id)
        .select(Item::as_select())
        .first(conn)
        .await
}

/// Applies changes to a live item; false when there is no such item.
pub async fn update(
    conn: &mut AsyncMysqlConnection,
    id: u64,
    changes: &ItemChanges,
) -> QueryResult<bool> {
    let row = ChangeRow {
        name: changes.name.as_ref().map(|n| n.as_str()),
        description: changes.description.as_ref().map(|d| d.as_deref()),
        price: changes.price,
        max_per_user: changes.max_per_user,
        sale_starts_at: changes.sale_starts_at.map(naive),
        sale_ends_at: changes.sale_ends_at.map(naive),
        payment_window_secs: changes.payment_window_secs,
        waiting_room: changes.room.waiting_room,
        max_admitted: changes.room.max_admitted,
        pass_secs: changes.room.pass_secs,
    };
    let updated = diesel::update(items::table.find(id).filter(items::deleted_at.is_null()))
        .set(row)
        .execute(conn)
        .await?;
    Ok(updated == 1)
}

pub async fn soft_delete(conn: &mut AsyncMysqlConnection, id: u64) -> QueryResult<bool> {
    let updated = diesel::update(items::table.find(id).filter(items::deleted_at.is_null()))
        .set(items::deleted_at.eq(diesel::dsl::sql::<Nullable<Datetime>>(
            "CURRENT_TIMESTAMP(6)",
        )))
        .execute(conn)
        .await?;
    Ok(updated == 1)
}

pub async fn find_live_by_name(
    conn: &mut AsyncMysqlConnection,
    name: &str,
) -> QueryResult<Option<Item>> {
    items::table
        .filter(items::name.eq(name))
        .filter(items::deleted_at.is_null())
        .select(Item::as_select())
        .first(conn)
        .await
        .optional()
}
