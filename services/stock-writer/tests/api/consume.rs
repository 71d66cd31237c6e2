use crate::helpers::{Writer, event, spawn_writer, spawn_writer_with};
use events::StockEvent;
use redis::AsyncCommands;
use std::time::Duration;
use web_layer::service::{Running, Service};

#[tokio::test]
async fn events_become_orders_and_stock_decrements_and_leave_the_outbox() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    let first = event("order-a", 1, 3);
    let keys = writer.store().keys(1);
    let mut redis = writer.env.redis.connection().await;
    redis
        .hset::<_, _, _, ()>(keys.outbox(), &first.order_id, first.to_json())
        .await
        .unwrap();
    redis
        .zadd::<_, _, _, ()>(keys.outbox_times(), &first.order_id, 1)
        .await
        .unwrap();

    writer.publish(&first).await;
    writer.publish(&event("order-b", 1, 2)).await;
    writer.wait_for_orders(2).await;
    assert_eq!(writer.stock(1).await, 5);
    testkit::eventually(5, "outbox cleared", || async {
        let left: u64 = writer
            .env
            .redis
            .connection()
            .await
            .hlen(keys.outbox())
            .await
            .unwrap();
        left == 0
    })
    .await;
    let scheduled: u64 = redis.zcard(keys.outbox_times()).await.unwrap();
    assert_eq!(scheduled, 0);
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    let once = event("order-dup", 1, 4);
    for _ in 0..3 {
        writer.publish(&once).await;
    }
    writer.publish(&event("order-next", 1, 1)).await;
    writer.assert_settled(2, 5).await;
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_queue_and_consumption_goes_on() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 5).await;
    writer.publish_raw("garbage", b"{not json").await;
    writer.publish(&event("order-unknown-item", 99, 1)).await;
    writer.publish(&event("order-good", 1, 2)).await;
    writer.wait_for_orders(1).await;
    assert_eq!(writer.stock(1).await, 3);

    let collected = std::sync::Mutex::new(Vec::new());
    testkit::eventually(10, "two dead letters", || async {
        let messages = writer.env.rabbit.drain_dead_letters().await;
        let mut collected = collected.lock().unwrap();
        collected.extend(messages);
        collected.len() == 2
    })
    .await;
    let dead = collected.into_inner().unwrap();
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            m.headers
                .iter()
                .find(|(k, _)| k == "x-death-reason")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect();
    assert!(reasons[0].contains("malformed"), "{reasons:?}");
    assert!(reasons[1].contains("unknown item 99"), "{reasons:?}");
    assert_eq!(dead[0].body, b"{not json");
    // The rolled-back poison left no order row behind.
    assert_eq!(writer.order_count().await, 1);
}

#[tokio::test]
async fn a_message_carrying_a_batch_applies_each_event_and_refuses_a_bad_one_alone() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 5).await;
    let burst = [
        event("order-b1", 1, 2),
        event("order-b2", 99, 1),
        event("order-b3", 1, 1),
    ];
    let body = events::encode_message(&burst);
    writer
        .publish_raw("batch:order-b1+2", body.as_bytes())
        .await;
    // The same batch again, and one of its orders alone (as the relay may send it).
    writer
        .publish_raw("batch:order-b1+2", body.as_bytes())
        .await;
    writer.publish(&burst[2]).await;
    writer.assert_settled(2, 2).await;

    let collected = std::sync::Mutex::new(Vec::new());
    testkit::eventually(10, "the refused event dead-lettered", || async {
        let drained = writer.env.rabbit.drain_dead_letters().await;
        let mut collected = collected.lock().unwrap();
        collected.extend(drained);
        !collected.is_empty()
    })
    .await;
    let dead = collected.into_inner().unwrap();
    assert_eq!(
        dead[0].body,
        burst[1].to_json().as_bytes(),
        "the refused event alone, not its batch"
    );
    assert_eq!(writer.order_count().await, 2);
}

/// A writer whose item 1's one unit is held by a reservation MySQL has; the reservation's
/// placement.
async fn one_unit_reserved() -> (Writer, StockEvent) {
    let writer = spawn_writer().await;
    writer.insert_item(1, 1).await;
    let first = StockEvent {
        pay_by_ms: Some(chrono::Utc::now().timestamp_millis() + 2000),
        amount: Some(1500),
        ..event("order-first", 1, 1)
    };
    writer.publish(&first).await;
    writer.wait_for_orders(1).await;
    (writer, first)
}

#[tokio::test]
async fn a_resale_in_the_same_batch_as_the_release_it_needs_is_applied() {
    let (writer, first) = one_unit_reserved().await;
    assert_eq!(writer.stock(1).await, 0);
    // In Redis the reservation expired, then its unit was sold again; both events reach
    // the writer in one message, the resale first.
    let expired = StockEvent {
        kind: events::EventType::Expired,
        at_ms: Some(chrono::Utc::now().timestamp_millis()),
        ..first.clone()
    };
    let resale = event("order-resale", 1, 1);
    let body = events::encode_message(&[resale, expired]);
    writer
        .publish_raw("batch:order-resale+1", body.as_bytes())
        .await;
    writer.assert_settled(2, 0).await;
    assert!(
        writer.env.rabbit.drain_dead_letters().await.is_empty(),
        "the resale was refused as overselling"
    );
}

#[tokio::test]
async fn a_resale_that_arrives_before_its_release_is_applied_owing_the_unit_until_then() {
    let (writer, first) = one_unit_reserved().await;
    // In Redis the reservation was cancelled and its unit sold again; the resale's
    // message reaches the writer first, alone.
    writer.publish(&event("order-resale", 1, 1)).await;
    writer.wait_for_orders(2).await;
    assert_eq!(
        (
            writer.stock(1).await,
            writer.env.database.stock_owed(1).await
        ),
        (0, 1),
        "the resale persisted, owing the unit its release will give back"
    );
    let cancelled = StockEvent {
        kind: events::EventType::Cancelled,
        at_ms: Some(chrono::Utc::now().timestamp_millis()),
        ..first
    };
    writer.publish(&cancelled).await;
    testkit::eventually(10, "the release settled what was owed", || async {
        writer.env.database.stock_owed(1).await == 0
    })
    .await;
    assert_eq!(writer.stock(1).await, 0);
    assert!(writer.env.rabbit.drain_dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_backlog_is_applied_in_batches() {
    let writer = spawn_writer_with(|s| s.writer.batch_max = 50).await;
    writer.insert_item(1, 1000).await;
    writer.stop.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..300 {
        writer.publish(&event(&format!("order-{i:04}"), 1, 1)).await;
    }
    // A second writer on the same queues drains the backlog.
    let second = stock_writer::startup::Application::build(writer.settings.clone())
        .await
        .unwrap();
    let stop = second.stopper();
    tokio::spawn(second.run_until_stopped());
    writer.wait_for_orders(300).await;
    assert_eq!(writer.stock(1).await, 700);
    stop.trigger();
}

/// A reservation's events: its placement, then `kind` at `at_ms`.
fn step(order: &str, kind: events::EventType) -> events::StockEvent {
    events::StockEvent {
        kind,
        pay_by_ms: Some(1_700_000_060_000),
        amount: Some(300),
        at_ms: (kind != events::EventType::Placed).then_some(1_700_000_001_000),
        payment_id: (kind == events::EventType::Paid).then(|| "pay_1".to_owned()),
        ..event(order, 1, 3)
    }
}

#[tokio::test]
async fn reservation_steps_apply_once_in_any_order() {
    use events::EventType::{Cancelled, Expired, Paid, Placed};
    let writer = spawn_writer().await;
    writer.insert_item(1, 20).await;
    // In order, each twice: paid keeps the units, expired gives them back.
    for kind in [Placed, Placed, Paid, Paid] {
        writer.publish(&step("paid-in-order", kind)).await;
    }
    for kind in [Placed, Expired, Expired, Placed] {
        writer.publish(&step("expired-in-order", kind)).await;
    }
    // Out of order: the release before its placement (nothing taken, nothing given
    // back), the payment before its placement (taken once).
    for kind in [Cancelled, Placed, Cancelled] {
        writer.publish(&step("cancelled-first", kind)).await;
    }
    for kind in [Paid, Placed] {
        writer.publish(&step("paid-first", kind)).await;
    }
    writer.wait_for_orders(4).await;
    testkit::eventually(10, "every step applied", || async {
        writer.stock(1).await == 14
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        writer.stock(1).await,
        14,
        "20 - 3 paid in order - 3 paid first"
    );
    let mut conn = writer.env.database.connect().await;
    use db::schema::orders;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let statuses: std::collections::BTreeMap<String, (String, Option<String>)> = orders::table
        .select((orders::id, (orders::status, orders::payment_id)))
        .load(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        statuses,
        std::collections::BTreeMap::from([
            ("cancelled-first".into(), ("cancelled".into(), None)),
            ("expired-in-order".into(), ("expired".into(), None)),
            ("paid-first".into(), ("paid".into(), Some("pay_1".into()))),
            (
                "paid-in-order".into(),
                ("paid".into(), Some("pay_1".into()))
            ),
        ])
    );
}

/// A reservation of 3 units of item 1 placed and persisted, for a later step to act on.
async fn persisted_reservation(writer: &crate::helpers::Writer, order: &str) -> StockEvent {
    let placed = StockEvent {
        pay_by_ms: Some(chrono::Utc::now().timestamp_millis() + 60_000),
        amount: Some(300),
        ..event(order, 1, 3)
    };
    writer.publish(&placed).await;
    writer.wait_for_orders(1).await;
    placed
}

async fn status_and_payment(
    writer: &crate::helpers::Writer,
    order: &str,
) -> (String, Option<String>) {
    use db::schema::orders;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    orders::table
        .find(order)
        .select((orders::status, orders::payment_id))
        .first(&mut writer.env.database.connect().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn events_the_columns_cannot_hold_are_dead_lettered_alone_and_later_messages_apply() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    let reserved = persisted_reservation(&writer, "order-reserved").await;
    // orders.payment_id is VARCHAR(255); a DATETIME ends with the year 9999.
    let long_payment = StockEvent {
        kind: events::EventType::Paid,
        at_ms: Some(chrono::Utc::now().timestamp_millis()),
        payment_id: Some("p".repeat(300)),
        ..reserved
    };
    let year_10000 = StockEvent {
        purchased_at_ms: 253_402_300_800_000,
        ..event("order-year-10000", 1, 1)
    };
    // The long payment id travels in a batch with a good placement.
    let body = events::encode_message(&[long_payment.clone(), event("order-beside", 1, 1)]);
    writer
        .publish_raw("batch:order-reserved:paid+1", body.as_bytes())
        .await;
    writer.publish(&year_10000).await;
    writer.publish(&event("order-after", 1, 2)).await;
    writer.wait_for_orders(3).await;
    assert_eq!(writer.stock(1).await, 10 - 3 - 1 - 2);
    assert_eq!(
        status_and_payment(&writer, "order-reserved").await,
        ("reserved".to_owned(), None),
        "the payment MySQL cannot store was not applied"
    );

    let dead = writer.dead_letters(2).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0].0.contains("payment_id"), "{:?}", dead[0].0);
    assert_eq!(dead[0].1, long_payment.to_json().as_bytes());
    assert!(dead[1].0.contains("purchased_at_ms"), "{:?}", dead[1].0);
    assert_eq!(dead[1].1, year_10000.to_json().as_bytes());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        writer.order_count().await,
        3,
        "the year-10000 order was stored"
    );
}

#[tokio::test]
async fn an_event_mysql_refuses_for_good_is_dead_lettered_not_retried_forever() {
    let writer = spawn_writer().await;
    writer.insert_item(1, 10).await;
    let reserved = persisted_reservation(&writer, "order-reserved").await;
    // Giving the 3 units back would take INT UNSIGNED past its end: MySQL answers "Out
    // of range value" whatever the attempt, which no check before the write foresees.
    {
        use db::schema::items;
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        diesel::update(items::table.find(1u64))
            .set(items::stock.eq(u32::MAX - 1))
            .execute(&mut writer.env.database.connect().await)
            .await
            .unwrap();
    }
    let cancelled = StockEvent {
        kind: events::EventType::Cancelled,
        at_ms: Some(chrono::Utc::now().timestamp_millis()),
        ..reserved
    };
    writer.publish(&cancelled).await;
    writer.publish(&event("order-after", 1, 1)).await;
    writer.wait_for_orders(2).await;
    assert_eq!(writer.stock(1).await, u32::MAX - 2);
    let dead = writer.dead_letters(1).await;
    assert!(dead[0].0.contains("Out of range"), "{:?}", dead[0].0);
    assert_eq!(dead[0].1, cancelled.to_json().as_bytes());
    assert_eq!(
        status_and_payment(&writer, "order-reserved").await,
        ("reserved".to_owned(), None)
    );
}
