//! `rebuild-redis`: after Redis lost an item's figures, they come back from MySQL
//! (stock, each buyer's count, the limit), counting the orders Redis still held once.

use crate::helpers::{event, spawn_writer};
use diesel_async::RunQueryDsl;
use redis::AsyncCommands;
use std::collections::BTreeMap;
use std::time::Duration;
use stock_writer::rebuild::RedisRebuild;

fn rebuild(writer: &crate::helpers::Writer) -> RedisRebuild {
    stock_writer::startup::redis_rebuild(&writer.settings, Duration::from_secs(20))
        .expect("rebuild-redis")
}

async fn sql(writer: &crate::helpers::Writer, statement: &str) {
    diesel::sql_query(statement)
        .execute(&mut writer.env.database.connect().await)
        .await
        .unwrap();
}

#[tokio::test]
async fn rebuild_redis_brings_stock_buyers_and_limit_back_from_mysql() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    writer.insert_item(2, 4).await;
    sql(&writer, "INSERT INTO orders (id, user_id, item_id, quantity, purchased_at) VALUES ('a', 7, 1, 3, NOW()), ('b', 8, 1, 2, NOW()), ('c', 7, 1, 1, NOW())").await;
    sql(
        &writer,
        "UPDATE items SET stock = 4, max_per_user = 5, price = 100, sale_ends_at = '2030-01-01 00:00:00', payment_window_secs = 60, waiting_room = TRUE, max_admitted = 7, pass_secs = 45 WHERE id = 1",
    )
    .await;
    sql(&writer, "UPDATE items SET deleted_at = NOW() WHERE id = 2").await;
    // Redis lost everything of both items.

    let reports = rebuild(&writer).run(None, |_| {}).await.unwrap();

    let store = writer.store();
    let mut redis = writer.env.redis.connection().await;
    let keys = store.keys(1);
    let stock: i64 = redis.get(keys.stock()).await.unwrap();
    let bought: BTreeMap<u64, u64> = redis.hgetall(keys.bought()).await.unwrap();
    let meta: BTreeMap<String, i64> = redis.hgetall(keys.meta()).await.unwrap();
    assert_eq!(stock, 4);
    assert_eq!(bought, BTreeMap::from([(7, 4), (8, 2)]));
    assert_eq!(
        meta,
        BTreeMap::from([
            ("limit".into(), 5),
            ("on_sale".into(), 1),
            ("price".into(), 100),
            ("starts_ms".into(), 0),
            ("ends_ms".into(), 1_893_456_000_000),
            ("pay_window_ms".into(), 60_000),
            ("room".into(), 1),
            ("room_max".into(), 7),
            ("pass_ms".into(), 45_000),
        ]),
        "the sale terms come back from MySQL too"
    );
    assert_eq!(reports[0].redis.stock_before, None);
    assert_eq!(reports[0].redis.bought_after, (2, 6));
    let deleted_on_sale: i64 = redis.hget(store.keys(2).meta(), "on_sale").await.unwrap();
    assert_eq!(deleted_on_sale, 0, "a deleted item stays off sale");
}

#[tokio::test]
async fn rebuild_redis_waits_for_the_orders_redis_still_has_to_reach_mysql() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    let store = writer.store();
    let keys = store.keys(1);
    let mut redis = writer.env.redis.connection().await;
    // What survived in Redis: a sale not yet persisted, in the outbox; the stock and
    // the buyer's count were lost.
    let pending = event("pending-1", 1, 2);
    redis
        .hset::<_, _, _, ()>(keys.outbox(), &pending.order_id, pending.to_json())
        .await
        .unwrap();
    // The relay publishes it a moment later; stock-writer persists it and clears it.
    let publish = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        writer.publish(&pending).await;
    };
    let steps = std::sync::Mutex::new(Vec::new());
    let rebuilder = rebuild(&writer);
    let (reports, ()) = tokio::join!(
        rebuilder.run(Some(1), |step| steps.lock().unwrap().push(step.to_owned())),
        publish
    );
    let reports = reports.unwrap();

    assert_eq!(
        writer.stock(1).await,
        8,
        "persisted before the rebuild read MySQL"
    );
    let stock: i64 = redis.get(keys.stock()).await.unwrap();
    let bought: BTreeMap<u64, u64> = redis.hgetall(keys.bought()).await.unwrap();
    assert_eq!((stock, reports[0].redis.pending), (8, 0), "counted once");
    assert_eq!(bought, BTreeMap::from([(7, 2)]));
    let on_sale: i64 = redis.hget(keys.meta(), "on_sale").await.unwrap();
    assert_eq!(on_sale, 1);
    let steps = steps.into_inner().unwrap();
    assert_eq!(
        <[String]>::first(&steps).map(String::as_str),
        Some("taking 1 item(s) off sale")
    );
    assert!(steps.iter().any(|s| s.contains("in MySQL")), "{steps:?}");
}

#[tokio::test]
async fn rebuild_redis_puts_back_the_open_reservations_redis_lost() {
    use inventory::lifecycle::{Ended, Step};
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    // MySQL: one open reservation of user 7 (pay by 1.5 s from now), one that expired
    // (its units back in the stock already); Redis lost everything.
    sql(&writer, "INSERT INTO orders (id, user_id, item_id, quantity, purchased_at, status, pay_by, amount) VALUES ('open', 7, 1, 2, NOW(3), 'reserved', NOW(3) + INTERVAL 1500000 MICROSECOND, 200)").await;
    sql(&writer, "INSERT INTO orders (id, user_id, item_id, quantity, purchased_at, status, pay_by, released_at, amount) VALUES ('gone', 7, 1, 3, NOW(3), 'expired', NOW(3), NOW(3), 300)").await;
    sql(
        &writer,
        "UPDATE items SET stock = 8, payment_window_secs = 60 WHERE id = 1",
    )
    .await;

    let reports = rebuild(&writer).run(Some(1), |_| {}).await.unwrap();

    assert_eq!(reports[0].reservations_restored, 1);
    let store = writer.store();
    let keys = store.keys(1);
    let mut redis = writer.env.redis.connection().await;
    let bought: BTreeMap<u64, u64> = redis.hgetall(keys.bought()).await.unwrap();
    assert_eq!(
        bought,
        BTreeMap::from([(7, 2)]),
        "the released order holds nothing"
    );
    assert_eq!(store.reservations.item_of("open").await.unwrap(), Some(1));
    let open = store.reservations.open(1).await.unwrap();
    assert_eq!(open.len(), 1);
    assert!(open[0].1.contains(r#""amount":200"#), "{}", open[0].1);
    // A second rebuild puts nothing back twice.
    let again = rebuild(&writer).run(Some(1), |_| {}).await.unwrap();
    assert_eq!(again[0].reservations_restored, 0);

    // It expires as any other, giving its units and the buyer's count back.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let due = store.reservations.due(&[1], 10).await.unwrap();
    assert_eq!(due, [(1, "open".to_owned())]);
    let ended = store
        .reservations
        .end(1, "open", Step::Expire)
        .await
        .unwrap();
    assert!(matches!(ended, Ended::Expired { .. }), "{ended:?}");
    let stock: i64 = redis.get(keys.stock()).await.unwrap();
    assert_eq!(stock, 10);
    let bought: BTreeMap<u64, u64> = redis.hgetall(keys.bought()).await.unwrap();
    assert!(bought.is_empty(), "{bought:?}");
}

#[tokio::test]
async fn rebuild_redis_never_brings_back_a_reservation_redis_knows_ended() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    // MySQL still has four open reservations; Redis knows two of them ended (a settled
    // marker; a payment parked on its way to MySQL) and still holds a third.
    for order in ["settled", "parked", "held", "lost"] {
        sql(&writer, &format!("INSERT INTO orders (id, user_id, item_id, quantity, purchased_at, status, pay_by, amount) VALUES ('{order}', 7, 1, 1, NOW(3), 'reserved', NOW(3) + INTERVAL 1 HOUR, 100)")).await;
    }
    sql(
        &writer,
        "UPDATE items SET stock = 6, payment_window_secs = 3600 WHERE id = 1",
    )
    .await;
    let store = writer.store();
    let keys = store.keys(1);
    let mut redis = writer.env.redis.connection().await;
    redis
        .set::<_, _, ()>(keys.settled("settled"), "cancelled")
        .await
        .unwrap();
    let paid = serde_json::json!({"version": 2, "type": "paid", "order_id": "parked", "user_id": 7,
        "item_id": 1, "quantity": 1, "purchased_at_ms": 1, "payment_id": "pay-1"});
    let parked = serde_json::json!({"event": paid.to_string(), "reason": "test"});
    redis
        .hset::<_, _, _, ()>(keys.parked(), "parked:paid", parked.to_string())
        .await
        .unwrap();
    redis
        .hset::<_, _, _, ()>(keys.reserved(), "held", "{\"kept\":true}")
        .await
        .unwrap();

    let reports = rebuild(&writer).run(Some(1), |_| {}).await.unwrap();

    assert_eq!(reports[0].reservations_restored, 1);
    let open: BTreeMap<String, String> = redis.hgetall(keys.reserved()).await.unwrap();
    assert_eq!(
        open.keys().collect::<Vec<_>>(),
        ["held", "lost"],
        "only the one Redis lost is back"
    );
    assert_eq!(
        open["held"], "{\"kept\":true}",
        "the one Redis held is left alone"
    );
    assert_eq!(store.reservations.item_of("lost").await.unwrap(), Some(1));
    assert_eq!(store.reservations.item_of("settled").await.unwrap(), None);
}
