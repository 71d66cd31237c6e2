use crate::helpers::{assert_envelope, spawn_app};
use redis::AsyncCommands;
use serde_json::json;
use std::time::Duration;

#[actix_web::test]
async fn a_held_lock_gives_503_and_changes_nothing() {
    let app = spawn_app().await;
    let id = app.item_with_stock(10).await;
    let mut redis = app.env.redis.connection().await;
    redis
        .set::<_, _, ()>(app.keys(id).lock(), "another-admin")
        .await
        .unwrap();

    let busy = app.restock(id, json!(5)).await;
    assert_envelope(&busy, 503, "SYSTEM_BUSY");
    assert!(busy.header("retry-after").is_some());
    let delete = app.delete_item(id).await;
    assert_envelope(&delete, 503, "SYSTEM_BUSY");
    assert_eq!(app.mysql_stock(id).await, 10);
    assert_eq!(app.redis_stock(id).await, Some(10));
    assert_eq!(app.redis_on_sale(id).await, Some(1));
    // The foreign holder's lock was not touched.
    let holder: String = redis.get(app.keys(id).lock()).await.unwrap();
    assert_eq!(holder, "another-admin");
}

#[actix_web::test]
async fn a_waiting_operation_proceeds_once_the_lock_is_released() {
    let app = spawn_app().await;
    let id = app.item_with_stock(10).await;
    let mut redis = app.env.redis.connection().await;
    let lock_key = app.keys(id).lock();
    redis
        .set::<_, _, ()>(&lock_key, "another-admin")
        .await
        .unwrap();
    let release = async {
        tokio::time::sleep(Duration::from_millis(40)).await;
        redis.del::<_, ()>(&lock_key).await.unwrap();
    };
    let (restocked, ()) = futures_util::join!(app.restock(id, json!(5)), release);
    assert_eq!(restocked.status, 200, "{}", restocked.body);
    assert_eq!(app.mysql_stock(id).await, 15);
    assert_eq!(app.redis_stock(id).await, Some(15));
}

#[actix_web::test]
async fn racing_restocks_never_corrupt_stock() {
    let app = spawn_app().await;
    let id = app.item_with_stock(100).await;
    let restocks = (0..30).map(|_| app.restock(id, json!(1)));
    let responses = futures_util::future::join_all(restocks).await;
    let succeeded = responses.iter().filter(|r| r.status == 200).count() as u32;
    let busy = responses.iter().filter(|r| r.status == 503).count() as u32;
    assert_eq!(succeeded + busy, 30, "only 200 or 503 expected");
    assert!(succeeded > 0);
    assert_eq!(app.mysql_stock(id).await, 100 + succeeded);
    assert_eq!(app.redis_stock(id).await, Some(i64::from(100 + succeeded)));
}
