//! A buyer's orders: only their own, pending until persisted (on every instance at once),
//! paginated, and read at a cost that depends on their orders alone.

use crate::helpers::{Stack, assert_envelope, spawn_stack, spawn_stack_with};
use events::StockEvent;
use purchase_service::configuration::Strategy;
use redis::AsyncCommands;
use serde_json::json;
use testkit::ChaosProxy;

/// A stack without its writer, so that orders stay pending, selling an item of 10 units.
async fn spawn_stack_keeping_orders_pending() -> (Stack, u64) {
    let mut stack = spawn_stack(Strategy::Lua).await;
    stack.stop_writer().await;
    let item = stack.item(10, None).await;
    (stack, item)
}

#[actix_web::test]
async fn orders_show_only_the_callers_own_and_turn_confirmed() {
    let (mut stack, item) = spawn_stack_keeping_orders_pending().await;
    let mine = stack.buy(1, item, json!(1)).await;
    stack.buy(1, item, json!(2)).await;
    let theirs = stack.buy(2, item, json!(3)).await;
    let my_id = mine.body["order"]["id"].as_str().unwrap().to_owned();
    let their_id = theirs.body["order"]["id"].as_str().unwrap().to_owned();

    let listed = stack.get_as(1, "/api/v1/orders").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["total"], 2);
    let data = listed.body["data"].as_array().unwrap();
    assert!(data.iter().all(|o| o["status"] == "pending"));
    assert!(data.iter().all(|o| o["id"] != their_id.as_str()));

    let show = stack.get_as(1, &format!("/api/v1/orders/{my_id}")).await;
    assert_eq!(show.body["status"], "pending");
    let theirs = format!("/api/v1/orders/{their_id}");
    for path in [theirs.as_str(), "/api/v1/orders/no-such-order"] {
        assert_envelope(&stack.get_as(1, path).await, 404, "NOT_FOUND");
    }
    assert_envelope(
        &stack.client.get("/api/v1/orders", None).await,
        401,
        "UNAUTHENTICATED",
    );

    stack.writer = Some(crate::helpers::start_writer(&stack.env).await);
    testkit::eventually(20, "orders confirmed", || async {
        stack
            .get_as(1, &format!("/api/v1/orders/{my_id}"))
            .await
            .body["status"]
            == "confirmed"
    })
    .await;
    testkit::eventually(20, "outbox drained", || async {
        stack.store.outbox.len(item).await.unwrap() == 0
    })
    .await;
    let listed = stack.get_as(1, "/api/v1/orders?per_page=1").await;
    assert_eq!(listed.body["total"], 2);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["data"][0]["status"], "confirmed");
    assert_envelope(&stack.get_as(1, &theirs).await, 404, "NOT_FOUND");
    assert_envelope(
        &stack.get_as(1, "/api/v1/orders?per_page=500").await,
        422,
        "VALIDATION_FAILED",
    );
}

#[actix_web::test]
async fn an_order_placed_on_one_instance_is_listed_at_once_by_another() {
    let (mut stack, second) = crate::instances::two_instances(|_| {}).await;
    stack.stop_writer().await;
    let item = stack.item(10, None).await;
    let mut redis = stack.env.redis.connection().await;
    for round in 0..3 {
        let bought = stack.buy(1, item, json!(1)).await;
        assert_eq!(bought.status, 200, "{}", bought.body);
        let order_id = bought.body["order"]["id"].as_str().unwrap().to_owned();
        // The purchase script listed it in the item's slot; nothing else was written.
        let listed: bool = redis
            .sismember(stack.store.keys(item).buyer_pending(1), &order_id)
            .await
            .unwrap();
        assert!(listed, "round {round}");

        let orders = second
            .client
            .get("/api/v1/orders", Some(&crate::helpers::token(1)))
            .await;
        assert_eq!(orders.body["total"], round + 1, "{}", orders.body);
        assert_eq!(orders.body["data"][0]["id"], order_id.as_str());
        assert_eq!(orders.body["data"][0]["status"], "pending");
        let order = second
            .client
            .get(
                &format!("/api/v1/orders/{order_id}"),
                Some(&crate::helpers::token(1)),
            )
            .await;
        assert_eq!(order.body["status"], "pending", "{}", order.body);
        let other_buyer = second
            .client
            .get(
                &format!("/api/v1/orders/{order_id}"),
                Some(&crate::helpers::token(2)),
            )
            .await;
        assert_envelope(&other_buyer, 404, "NOT_FOUND");
    }

    // Persisted, each order leaves the buyer's set and is listed from MySQL.
    stack.writer = Some(crate::helpers::start_writer(&stack.env).await);
    testkit::eventually(20, "the buyer's pending set emptied", || async {
        let left: u64 = redis
            .clone()
            .scard(stack.store.keys(item).buyer_pending(1))
            .await
            .unwrap();
        left == 0
    })
    .await;
    let orders = second
        .client
        .get("/api/v1/orders", Some(&crate::helpers::token(1)))
        .await;
    assert_eq!(orders.body["total"], 3, "{}", orders.body);
    let data = orders.body["data"].as_array().unwrap();
    assert!(data.iter().all(|o| o["status"] == "confirmed"), "{data:?}");
    second.stop().await;
}

#[actix_web::test]
async fn malformed_or_over_long_order_ids_are_404() {
    let stack = spawn_stack(Strategy::Lua).await;
    for id in ["%C3%A9", "%00", &"a".repeat(65), "a%20b", "x'--"] {
        let response = stack.get_as(1, &format!("/api/v1/orders/{id}")).await;
        assert_envelope(&response, 404, "NOT_FOUND");
    }
}

#[actix_web::test]
async fn pages_of_pending_orders_hold_per_page_at_most() {
    let (stack, item) = spawn_stack_keeping_orders_pending().await;
    let mut bought = Vec::new();
    for _ in 0..5 {
        let response = stack.buy(1, item, json!(1)).await;
        bought.push(response.body["order"]["id"].as_str().unwrap().to_owned());
    }
    let mut listed = Vec::new();
    for (page, expected) in [(1, 2), (2, 2), (3, 1), (4, 0)] {
        let response = stack
            .get_as(1, &format!("/api/v1/orders?page={page}&per_page=2"))
            .await;
        assert_eq!(response.body["total"], 5);
        let data = response.body["data"].as_array().unwrap();
        assert_eq!(data.len(), expected, "page {page}: {}", response.body);
        listed.extend(data.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
    }
    bought.reverse();
    assert_eq!(listed, bought, "newest first, each once");
}

#[actix_web::test]
async fn listing_orders_reads_the_callers_orders_not_every_outbox() {
    if testkit::needs_single_redis(
        "it counts the bytes Redis sends through a chaos proxy in front of it",
    ) {
        return;
    }
    let proxy = ChaosProxy::to_redis().await;
    let mut stack = spawn_stack_with(Strategy::Lua, |s| s.redis.port = proxy.port).await;
    stack.stop_writer().await;
    let item = stack.item(100, None).await;
    let mine = stack.buy(1, item, json!(1)).await;
    assert_eq!(mine.status, 200);
    // A broker or writer outage: thousands of other buyers' orders wait in the outbox.
    let outbox = stack.store.keys(item).outbox();
    let mut redis = stack.env.redis.connection().await;
    let mut pipe = redis::pipe();
    for n in 0..3_000u64 {
        let event = StockEvent {
            version: events::EVENT_VERSION,
            order_id: format!("other-{n}"),
            user_id: 1_000 + n,
            item_id: item,
            quantity: 1,
            purchased_at_ms: 1_700_000_000_000,
            request_id: Some("0123456789abcdef0123456789abcdef".into()),
            ..StockEvent::default()
        };
        pipe.hset(&outbox, &event.order_id, event.to_json())
            .ignore();
    }
    pipe.query_async::<()>(&mut redis).await.unwrap();
    let before = proxy.bytes_from_server();
    let listed = stack.get_as(1, "/api/v1/orders").await;
    let read = proxy.bytes_from_server() - before;
    assert_eq!(listed.body["total"], 1, "{}", listed.body);
    assert_eq!(listed.body["data"][0]["id"], mine.body["order"]["id"]);
    let my_id = mine.body["order"]["id"].as_str().unwrap();
    let single = stack.get_as(1, &format!("/api/v1/orders/{my_id}")).await;
    assert_eq!(single.body["status"], "pending");
    let outbox_size: u64 = redis.hlen(&outbox).await.unwrap();
    assert_eq!(outbox_size, 3_001);
    assert!(
        read < 16 * 1024,
        "listing one buyer's orders read {read} bytes from Redis (the outbox holds ~500 KB)"
    );
}

#[actix_web::test]
async fn cancelling_ones_own_order_before_it_is_persisted_is_not_reserved() {
    let (stack, item) = spawn_stack_keeping_orders_pending().await;
    let bought = stack.buy(1, item, json!(1)).await;
    let id = bought.body["order"]["id"].as_str().unwrap().to_owned();

    let cancel = stack.cancel(1, &id).await;
    assert_envelope(&cancel, 409, "ORDER_NOT_RESERVED");
    assert_eq!(cancel.body["status"], "pending", "{}", cancel.body);
    assert_envelope(&stack.cancel(2, &id).await, 404, "NOT_FOUND");
    assert_eq!(stack.redis_stock(item).await, 9, "nothing given back");
}
