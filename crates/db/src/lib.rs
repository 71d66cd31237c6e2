//! MySQL access shared by the services: the schema, the embedded migrations (run through
//! diesel_async's sync wrapper, so no libmysqlclient is needed), the pooled pure-Rust
//! connection, every query on `orders` ([`orders`]) and the items' stock arithmetic.

pub mod orders;
pub mod schema;
pub mod stock;

use anyhow::{Context, anyhow};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::time::Duration;

pub use diesel_async::pooled_connection::deadpool::{Object as PooledConnection, PoolError};

pub type DbPool = Pool<AsyncMysqlConnection>;

/// What a query can run into: MySQL out of reach (the pool gave no connection in
/// time), or the query itself failing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no MySQL connection available: {0}")]
    Unavailable(#[from] PoolError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Builds the pool; connections are opened lazily, so a service starts while MySQL is
/// down and its requests fail fast until it returns.
pub fn pool(url: &str, max_size: usize) -> anyhow::Result<DbPool> {
    let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url);
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(3)))
        .create_timeout(Some(Duration::from_secs(3)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .build()
        .context("cannot build the MySQL pool")
}

/// Applies pending migrations; returns the versions applied.
pub async fn run_migrations(url: &str) -> anyhow::Result<Vec<String>> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            <AsyncConnectionWrapper<AsyncMysqlConnection> as diesel::Connection>::establish(&url)
                .context("cannot connect to MySQL to migrate")?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow!("migration failed: {e}"))?;
        Ok(applied.iter().map(ToString::to_string).collect())
    })
    .await?
}

/// A database name safe to splice into DDL (diesel cannot bind identifiers).
pub fn checked_database_name(name: &str) -> anyhow::Result<&str> {
    let safe = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if safe {
        Ok(name)
    } else {
        Err(anyhow!(
            "database name {name:?} must be 1-64 letters, digits or underscores"
        ))
    }
}

/// Creates the database on the server if it does not exist yet.
pub async fn create_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let name = checked_database_name(name)?;
    let mut conn = AsyncMysqlConnection::establish(server_url)
        .await
        .context("cannot connect to MySQL")?;
    diesel::sql_query(format!(
        "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    ))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Drops a database, first ending every other session using it: a session left inside a
/// transaction would otherwise hold its tables' metadata locks and block the drop.
pub async fn drop_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    use diesel::sql_types::{Bigint, Text, Unsigned};
    #[derive(diesel::QueryableByName)]
    struct Session {
        #[diesel(sql_type = Unsigned<Bigint>)]
        id: u64,
    }
    let name = checked_database_name(name)?;
    let mut conn = AsyncMysqlConnection::establish(server_url).await?;
    let sessions: Vec<Session> = diesel::sql_query(
        "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
    )
    .bind::<Text, _>(name)
    .load(&mut conn)
    .await?;
    for session in sessions {
        // The session may have ended on its own meanwhile.
        let _ = diesel::sql_query(format!("KILL CONNECTION {}", session.id))
            .execute(&mut conn)
            .await;
    }
    diesel::sql_query(format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// `SELECT 1` through the pool, for `/readyz`.
pub async fn ping(pool: &DbPool) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A pooled connection, or [`Error::Unavailable`] when MySQL cannot be reached in time.
pub async fn connection(pool: &DbPool) -> Result<PooledConnection<AsyncMysqlConnection>, Error> {
    Ok(pool.get().await?)
}

/// The `/readyz` check of a service that uses MySQL.
pub fn readiness_check(
    pool: DbPool,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
+ Send
+ Sync
+ 'static {
    move || {
        let pool = pool.clone();
        Box::pin(async move { ping(&pool).await })
    }
}

/// Whether a diesel error is a UNIQUE constraint violation.
pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_checked_before_ddl() {
        assert!(checked_database_name("test_abc123").is_ok());
        assert!(checked_database_name("x`; DROP DATABASE y").is_err());
        assert!(checked_database_name("").is_err());
    }
}
