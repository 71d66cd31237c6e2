//! A fresh MySQL database per test (migrated, dropped when the test ends) and the
//! few things tests do to it directly: connect, read an item's stock, insert an item.

use crate::unique_suffix;
use common::config::DatabaseSettings;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

/// The MySQL server tests use: `TEST_DB_URL`, default root on 127.0.0.1:3306.
pub fn server_url() -> String {
    std::env::var("TEST_DB_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A database of its own, migrated, dropped when the value is dropped (even on panic).
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    pub async fn new() -> Self {
        let name = format!("test_{}", unique_suffix());
        db::create_database(&server_url(), &name)
            .await
            .expect("create the test database (is MariaDB up? scripts/test starts it)");
        let database = TestDatabase { name };
        db::run_migrations(&database.url())
            .await
            .expect("migrate the test database");
        database
    }

    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name)
    }

    /// Points service settings at this database.
    pub fn apply(&self, settings: &mut DatabaseSettings) {
        let url = server_url();
        let rest = url.trim_start_matches("mysql://");
        let (credentials, address) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (username, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (host, port) = address.rsplit_once(':').unwrap_or((address, "3306"));
        settings.host = host.to_owned();
        settings.port = port.parse().expect("TEST_DB_URL port");
        settings.username = username.to_owned();
        settings.password = password.to_owned();
        settings.database = self.name.clone();
        settings.run_migrations = false;
        settings.pool_size = 8;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside an async runtime, which cannot be blocked on: use a thread.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(db::drop_database(&server_url(), &name)))
        })
        .join();
        if !matches!(dropped, Ok(Ok(Ok(())))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// An item row as a test wants it (catalog-service normally writes these).
#[derive(Debug, Clone, Copy, Default)]
pub struct TestItem {
    /// `None`: the next id.
    pub id: Option<u64>,
    pub stock: u32,
    pub max_per_user: Option<u32>,
    pub deleted: bool,
}

impl TestDatabase {
    pub async fn connect(&self) -> AsyncMysqlConnection {
        AsyncMysqlConnection::establish(&self.url())
            .await
            .expect("connect to the test database")
    }

    /// Inserts an item row and returns its id.
    pub async fn insert_item(&self, item: TestItem) -> u64 {
        use db::schema::items;
        let mut conn = self.connect().await;
        conn.transaction::<_, diesel::result::Error, _>(async |c| {
            diesel::insert_into(items::table)
                .values((
                    item.id.map(|id| items::id.eq(id)),
                    items::name.eq(format!("Item {}", unique_suffix())),
                    items::price.eq(100u64),
                    items::stock.eq(item.stock),
                    items::max_per_user.eq(item.max_per_user),
                    item.deleted
                        .then(|| items::deleted_at.eq(chrono::Utc::now().naive_utc())),
                ))
                .execute(&mut *c)
                .await?;
            items::table
                .select(diesel::dsl::max(items::id))
                .first::<Option<u64>>(&mut *c)
                .await
                .map(|id| item.id.or(id).unwrap_or_default())
        })
        .await
        .expect("insert an item")
    }

    /// An item's stock in MySQL.
    pub async fn stock(&self, item: u64) -> u32 {
        self.stock_columns(item).await.0
    }

    /// The units an item's persisted sales took beyond its stock (see `db::stock`).
    pub async fn stock_owed(&self, item: u64) -> u32 {
        self.stock_columns(item).await.1
    }

    /// An item's row's `stock` and `stock_owed`.
    async fn stock_columns(&self, item: u64) -> (u32, u32) {
        use db::schema::items;
        items::table
            .find(item)
            .select((items::stock, items::stock_owed))
            .first(&mut self.connect().await)
            .await
            .expect("the item's row")
    }
}
