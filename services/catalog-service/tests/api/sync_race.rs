//! sync-stock racing the admin's soft delete: a deleted item must never end up on sale
//! (sync-stock read the row before the delete committed, then wrote the on-sale flag
//! after the delete had cleared it). Both hold the item's distributed lock.

use crate::helpers::spawn_app;
use common::redis::Keyspace;
use futures_util::future::join_all;
use inventory::{DistributedLock, Inventory};
use redis::AsyncCommands;
use stock_writer::sync::StockSync;

#[actix_web::test]
async fn sync_stock_racing_a_delete_never_puts_the_item_back_on_sale() {
    let app = spawn_app().await;
    let redis = common::redis::client(&app.settings.redis).unwrap();
    let sync = StockSync {
        db: db::pool(&app.settings.database.url(), 4).unwrap(),
        store: Inventory::new(redis.clone(), Keyspace::new(app.env.redis.prefix.clone())),
        lock: DistributedLock::new(redis, app.settings.lock.clone()),
    };
    let mut items = Vec::new();
    for _ in 0..30 {
        items.push(app.item_with_stock(10).await);
    }
    join_all(items.iter().map(|&id| {
        let (app, sync) = (&app, &sync);
        async move {
            let path = format!("/api/v1/items/{id}");
            let (deleted, synced) = tokio::join!(
                app.client
                    .send("DELETE", &path, Some(&app.admin), &[], None),
                sync.run(Some(id))
            );
            assert_eq!(deleted.status, 204, "{}", deleted.body);
            synced.expect("sync-stock");
        }
    }))
    .await;
    let mut conn = app.env.redis.connection().await;
    for id in items {
        let on_sale: String = conn.hget(app.keys(id).meta(), "on_sale").await.unwrap();
        assert_eq!(on_sale, "0", "item {id} was deleted, yet it is on sale");
    }
}
