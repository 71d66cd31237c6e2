use crate::helpers::{event, spawn_writer};
use inventory::stock::ItemState;
use redis::AsyncCommands;

#[tokio::test]
async fn sync_stock_sets_mysql_stock_minus_unpersisted_sales() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 7).await;
    let store = writer.store();
    store
        .stock
        .put(&ItemState {
            id: 1,
            stock: 999,
            max_per_user: Some(5),
            ..ItemState::on_sale(1, 999)
        })
        .await
        .unwrap();
    let keys = store.keys(1);
    let mut redis = writer.env.redis.connection().await;
    // One order persisted (MySQL stock already reflects it) but still in the outbox,
    // one order sold in Redis and not yet persisted.
    let persisted = event("persisted-1", 1, 3);
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("INSERT INTO orders (id, user_id, item_id, quantity, purchased_at) VALUES ('persisted-1', 7, 1, 3, NOW())"),
        &mut writer.env.database.connect().await,
    )
    .await
    .unwrap();
    let pending = event("pending-1", 1, 2);
    for e in [&persisted, &pending] {
        redis
            .hset::<_, _, _, ()>(keys.outbox(), &e.order_id, e.to_json())
            .await
            .unwrap();
    }
    assert_eq!(writer.stock(1).await, 7);

    let reports = writer.stock_sync().run(Some(1)).await.unwrap();
    let report = &reports[0];
    assert_eq!(
        (
            report.mysql_stock,
            report.redis.pending,
            report.redis.cleaned,
            report.redis.after
        ),
        (7, 2, 1, 5)
    );
    assert_eq!(report.redis.before, Some(999));
    let stock: i64 = redis.get(keys.stock()).await.unwrap();
    assert_eq!(stock, 5);
    let left: Vec<String> = redis.hkeys(keys.outbox()).await.unwrap();
    assert_eq!(left, ["pending-1"]);
    let limit: i64 = redis.hget(keys.meta(), "limit").await.unwrap();
    assert_eq!(limit, 0, "MySQL has no limit for this item");
}

#[tokio::test]
async fn sync_stock_takes_deleted_items_off_sale_and_covers_all_items() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    writer.insert_item(2, 20).await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE items SET deleted_at = NOW() WHERE id = 2"),
        &mut writer.env.database.connect().await,
    )
    .await
    .unwrap();
    let store = writer.store();
    let sync = writer.stock_sync();
    let reports = sync.run(None).await.unwrap();
    assert_eq!(reports.len(), 2);
    let mut redis = writer.env.redis.connection().await;
    let on_sale: Vec<i64> = redis
        .hget(store.keys(2).meta(), "on_sale")
        .await
        .map(|v: i64| vec![v])
        .unwrap();
    assert_eq!(on_sale, [0]);
    let stock: i64 = redis.get(store.keys(1).stock()).await.unwrap();
    assert_eq!(stock, 10);
    let mut known = store.stock.known_item_ids().await.unwrap();
    known.sort();
    assert_eq!(known, [1, 2]);
    assert!(
        sync.run(Some(42)).await.is_err(),
        "an unknown item is an error"
    );
}

#[tokio::test]
async fn sync_stock_counts_a_reservations_pending_steps_by_type() {
    use events::EventType::{Expired, Paid};
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    let run = async |statement: &str| {
        diesel_async::RunQueryDsl::execute(
            diesel::sql_query(statement),
            &mut writer.env.database.connect().await,
        )
        .await
        .unwrap();
    };
    // MySQL has reservations a (2 units) and c (1 unit): stock 7.
    run("INSERT INTO orders (id, user_id, item_id, quantity, purchased_at, status) VALUES ('a', 7, 1, 2, NOW(), 'reserved'), ('c', 7, 1, 1, NOW(), 'reserved')").await;
    run("UPDATE items SET stock = 7 WHERE id = 1").await;
    // Redis, not yet in MySQL: a expired (its 2 units already back in Redis), b placed
    // (3 units taken in Redis), c paid (moves no unit).
    let step = |order: &str, quantity: u32, kind| events::StockEvent {
        kind,
        at_ms: Some(1_700_000_001_000),
        pay_by_ms: Some(1_700_000_000_500),
        ..event(order, 1, quantity)
    };
    let pending = [step("a", 2, Expired), event("b", 1, 3), step("c", 1, Paid)];
    let keys = writer.store().keys(1);
    let mut redis = writer.env.redis.connection().await;
    for e in &pending {
        redis
            .hset::<_, _, _, ()>(keys.outbox(), e.message_id(), e.to_json())
            .await
            .unwrap();
    }

    let report = &writer.stock_sync().run(Some(1)).await.unwrap()[0];
    assert_eq!(
        (report.redis.pending, report.redis.after),
        (1, 6),
        "7 + 2 - 3"
    );

    // MySQL catches up with a's expiry (units back: 9); its outbox entry goes, and the
    // figure stays.
    run("UPDATE orders SET status = 'expired', released_at = NOW() WHERE id = 'a'").await;
    run("UPDATE items SET stock = 9 WHERE id = 1").await;
    let report = &writer.stock_sync().run(Some(1)).await.unwrap()[0];
    assert_eq!(
        (
            report.redis.pending,
            report.redis.cleaned,
            report.redis.after
        ),
        (3, 1, 6)
    );
    let mut left: Vec<String> = redis.hkeys(keys.outbox()).await.unwrap();
    left.sort();
    assert_eq!(left, ["b", "c:paid"]);

    // d (5 units) expired in Redis, and b and e took 7; both reached MySQL before d's
    // expiry did: MySQL's 4 went and 3 more are owed until the expiry arrives.
    run("INSERT INTO orders (id, user_id, item_id, quantity, purchased_at, status) VALUES ('d', 7, 1, 5, NOW(), 'reserved')").await;
    run("UPDATE items SET stock = 4 WHERE id = 1").await;
    let d_expired = step("d", 5, Expired);
    redis
        .hset::<_, _, _, ()>(keys.outbox(), d_expired.message_id(), d_expired.to_json())
        .await
        .unwrap();
    run("INSERT INTO orders (id, user_id, item_id, quantity, purchased_at, status) VALUES ('b', 7, 1, 3, NOW(), 'confirmed'), ('e', 7, 1, 4, NOW(), 'confirmed')").await;
    run("UPDATE items SET stock = 0, stock_owed = 3 WHERE id = 1").await;
    let report = &writer.stock_sync().run(Some(1)).await.unwrap()[0];
    assert_eq!(
        (report.mysql_stock, report.redis.pending, report.redis.after),
        (-3, -5, 2),
        "MySQL's 0 less the 3 it owes, plus d's 5 on their way"
    );
}
