//! Admin writes whose Redis change no replica acknowledges (`REDIS_MIN_REPLICAS_ACKED`
//! more than the server has, as for a master whose replicas are gone): each is refused,
//! and its Redis change is undone, so nothing MySQL does not have can be sold.

use crate::helpers::{assert_envelope, spawn_app_in};
use common::config::ReplicasAcked;
use inventory::keys::{LIMIT, ON_SALE};
use redis::AsyncCommands;
use serde_json::json;
use testkit::{TestEnv, TestItem};

#[actix_web::test]
async fn unacknowledged_admin_writes_change_neither_mysql_nor_redis() {
    let env = TestEnv::new().await;
    let id = env
        .database
        .insert_item(TestItem {
            stock: 50,
            ..TestItem::default()
        })
        .await;
    let app = spawn_app_in(env, |s| {
        s.redis.min_replicas_acked = ReplicasAcked::Exactly(5);
        s.redis.replica_ack_timeout_ms = 50;
    })
    .await;
    let keys = inventory::ItemKeys::new(
        &common::redis::Keyspace::new(app.env.redis.prefix.clone()),
        id,
    );
    let mut redis = app.env.redis.connection().await;
    let known_before: Vec<String> = app.env.redis.keys().await;

    let restock = app.restock(id, json!(7)).await;
    assert_envelope(&restock, 503, "SYSTEM_BUSY");
    let limit = app.patch_item(id, &json!({"max_per_user": 3})).await;
    assert_envelope(&limit, 503, "SYSTEM_BUSY");
    let delete = app.delete_item(id).await;
    assert_envelope(&delete, 503, "SYSTEM_BUSY");
    let created = app
        .create_item(json!({"name": "Ghost", "price": 100, "stock": 10}))
        .await;
    assert_envelope(&created, 503, "SYSTEM_BUSY");

    let stock: i64 = redis.get(keys.stock()).await.unwrap();
    assert_eq!(
        (stock, app.env.database.stock(id).await),
        (50, 50),
        "the restock is in neither"
    );
    let meta: std::collections::BTreeMap<String, i64> = redis.hgetall(keys.meta()).await.unwrap();
    assert_eq!((meta[ON_SALE], meta[LIMIT]), (1, 0), "on sale, no limit");
    let shown = app.client.get(&format!("/api/v1/items/{id}"), None).await;
    assert_eq!(shown.status, 200, "not deleted: {}", shown.body);
    let mut known_after: Vec<String> = app.env.redis.keys().await;
    known_after.retain(|key| !key.contains(":restock:") && key.contains(":stock"));
    let mut known_before = known_before;
    known_before.retain(|key| key.contains(":stock"));
    assert_eq!(
        known_after, known_before,
        "no stock for the item never created"
    );
}
