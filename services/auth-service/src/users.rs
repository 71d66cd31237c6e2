//! The `users` table: the model and the queries auth-service runs against it.

use chrono::NaiveDateTime;
use common::jwt::Role;
use db::schema::users;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::mysql::Mysql))]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl User {
    pub fn role(&self) -> Role {
        if self.role == Role::Admin.as_str() {
            Role::Admin
        } else {
            Role::User
        }
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
}

/// Inserts a user and reads it back in one transaction. A taken email surfaces as a
/// UNIQUE violation, which is what makes racing registrations yield exactly one row.
pub async fn insert(conn: &mut AsyncMysqlConnection, new: NewUser<'_>) -> QueryResult<User> {
    conn.transaction(async |c| {
        diesel::insert_into(users::table)
            .values(&new)
            .execute(&mut *c)
            .await?;
        users::table
            .filter(users::email.eq(new.email))
            .select(User::as_select())
            .first(&mut *c)
            .await
    })
    .await
}

/// The collation `users.email` is compared under (its table's, in the migration): it
/// ignores case and accents, so `ÅDMIN@éxample.com` finds `admin@example.com`.
pub const EMAIL_COLLATION: &str = "utf8mb4_unicode_ci";

/// `email`'s sort key under [`EMAIL_COLLATION`], hex: two emails have the same one
/// exactly when `find_by_email` takes them for the same account. The login limits count
/// by it, so respelling an email does not buy attempts (an unknown email included).
pub async fn email_sort_key(conn: &mut AsyncMysqlConnection, email: &str) -> QueryResult<String> {
    #[derive(QueryableByName)]
    struct SortKey {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sort_key: String,
    }
    let query = format!(
        "SELECT HEX(WEIGHT_STRING(CONVERT(? USING utf8mb4) COLLATE {EMAIL_COLLATION})) AS sort_key"
    );
    let key: SortKey = diesel::sql_query(query)
        .bind::<diesel::sql_types::Text, _>(email)
        .get_result(conn)
        .await?;
    Ok(key.sort_key)
}

pub async fn find_by_email(
    conn: &mut AsyncMysqlConnection,
    email: &str,
) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut AsyncMysqlConnection, id: u64) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn set_password_hash(
    conn: &mut AsyncMysqlConnection,
    id: u64,
    password_hash: &str,
) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::password_hash.eq(password_hash))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn set_role(conn: &mut AsyncMysqlConnection, id: u64, role: Role) -> QueryResult<()> {
    diesel::update(users::table.find(id))
        .set(users::role.eq(role.as_str()))
        .execute(conn)
        .await
        .map(drop)
}
