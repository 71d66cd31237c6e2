//! The stack's MySQL database and Redis, as the tools read them to check the stack's
//! work: connections made from the services' own settings, keys under their prefix.

use crate::native::Settings;
use anyhow::Context;
use common::redis::Keyspace;
use devstack::StockAccount;
use diesel_async::{AsyncConnection, AsyncMysqlConnection};

pub struct Backends {
    pub mysql: AsyncMysqlConnection,
    pub redis: redis::aio::MultiplexedConnection,
    /// `REDIS_KEY_PREFIX`, as the services use it.
    pub keyspace: Keyspace,
}

impl Backends {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let mysql = AsyncMysqlConnection::establish(&settings.database.url())
            .await
            .with_context(|| {
                format!(
                    "connecting to MySQL database {}",
                    settings.database.database
                )
            })?;
        let redis = redis::Client::open(settings.redis.url())?
            .get_multiplexed_async_connection()
            .await
            .context("connecting to Redis")?;
        Ok(Backends {
            mysql,
            redis,
            keyspace: Keyspace::new(settings.redis.key_prefix.clone()),
        })
    }

    /// The item's stock in MySQL and Redis (the conservation check).
    pub async fn account(&mut self, item: u64, initial: u64) -> anyhow::Result<StockAccount> {
        StockAccount::measure(
            &mut self.mysql,
            &mut self.redis,
            &self.keyspace,
            item,
            initial,
        )
        .await
    }
}
