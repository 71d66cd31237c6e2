//! Every answer is true when Redis is slow or unreachable: a purchase whose reply never
//! came is settled before the buyer is answered: placed (200) if it happened, and
//! exactly once; `SYSTEM_BUSY` only if it certainly did not; `OUTCOME_UNKNOWN` with the
//! order id if that cannot be known in time. Staged with a chaos proxy between
//! purchase-service and Redis that delays one direction (what each strategy does on its
//! own is tested in crates/inventory/tests/purchase.rs), or between it and MySQL for an
//! idempotent retry of a purchase that happened, whose order cannot be read.

use crate::helpers::{Stack, assert_envelope, spawn_stack};

use common::input::JsonObject;
use purchase_service::configuration::Strategy;
use purchase_service::domain::{IdempotencyKey, Quantity};
use purchase_service::order::Order;
use purchase_service::purchases::{PurchaseError, PurchaseRequest, Purchases};
use purchase_service::startup::Application;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use testkit::ChaosProxy;
use web_layer::service::{Running, Service};

/// Why the tests with Redis behind the proxy skip themselves on a Redis Cluster.
const REDIS_BEHIND_A_PROXY: &str = "a chaos proxy in front of it delays or cuts its \
     traffic (a cluster client learns the nodes' own addresses and goes around a proxy)";

/// A stack (purchase-service, stock-writer) and, beside it, the purchase use case of a
/// second purchase-service that reaches Redis through a chaos proxy, gives up on a reply
/// after `response_timeout_ms` and settles for up to `outcome_timeout_ms`: the proxy, the
/// stack and the use case. Called directly, since the HTTP layer would look up the
/// token's revocation through the same slow Redis first. `None` (the test skips itself)
/// on a Redis Cluster: see [`REDIS_BEHIND_A_PROXY`].
async fn purchases_behind_a_redis_proxy(
    outcome_timeout_ms: u64,
    response_timeout_ms: u64,
) -> Option<(ChaosProxy, Stack, Arc<Purchases>)> {
    if testkit::needs_single_redis(REDIS_BEHIND_A_PROXY) {
        return None;
    }
    let proxy = ChaosProxy::to_redis().await;
    let (stack, purchases) = purchases_with(outcome_timeout_ms, |settings| {
        settings.redis.port = proxy.port;
        settings.redis.response_timeout_ms = response_timeout_ms;
    })
    .await;
    Some((proxy, stack, purchases))
}

/// As [`purchases_behind_a_redis_proxy`], with MySQL (not Redis) behind `proxy`.
async fn purchases_with_mysql_through(
    proxy: &ChaosProxy,
    outcome_timeout_ms: u64,
) -> (Stack, Arc<Purchases>) {
    purchases_with(outcome_timeout_ms, |settings| {
        settings.database.port = proxy.port;
    })
    .await
}

async fn purchases_with(
    outcome_timeout_ms: u64,
    customize: impl FnOnce(&mut purchase_service::configuration::Settings),
) -> (Stack, Arc<Purchases>) {
    let stack = spawn_stack(Strategy::Lua).await;
    let mut settings = stack.settings.clone();
    customize(&mut settings);
    settings.purchase.outcome_timeout_ms = outcome_timeout_ms;
    let app = Application::build(settings)
        .await
        .expect("build purchase-service");
    let purchases = app.purchases.clone();
    actix_web::rt::spawn(app.run_until_stopped());
    (stack, purchases)
}

fn request(item_id: u64, quantity: u32) -> PurchaseRequest {
    PurchaseRequest {
        item_id,
        user_id: 1,
        quantity: Quantity::parse(&JsonObject::from(
            json!({ "quantity": quantity })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ))
        .expect("a quantity"),
        idempotency_key: None,
        request_id: None,
    }
}

/// A purchase with an `Idempotency-Key`.
fn keyed(item_id: u64, quantity: u32, key: &str) -> PurchaseRequest {
    PurchaseRequest {
        idempotency_key: Some(IdempotencyKey::parse(key).expect("a key")),
        ..request(item_id, quantity)
    }
}

fn as_confirmed(order: &Order) -> BTreeMap<String, u32> {
    BTreeMap::from([(order.id.clone(), order.quantity)])
}

/// Which way the proxy holds a purchase's traffic back.
#[derive(Clone, Copy)]
enum Late {
    /// The script ran; its reply comes after the client gave up.
    Reply,
    /// The script reaches Redis after the client gave up.
    Request,
}

/// Holds a purchase of `quantity` back one way for a second (the client waits 300 ms),
/// then lets it through: the sale happened, so the buyer is told it was placed, once.
async fn assert_placed_once_when_late(late: Late, quantity: u32) {
    let Some((proxy, stack, purchases)) = purchases_behind_a_redis_proxy(5_000, 300).await else {
        return;
    };
    let item = stack.item(10, None).await;
    let hold_back = |delay| match late {
        Late::Reply => proxy.delay_replies(delay),
        Late::Request => proxy.delay_requests(delay),
    };
    hold_back(Duration::from_millis(1_000));
    let (order, ()) = tokio::join!(purchases.purchase(request(item, quantity)), async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        hold_back(Duration::ZERO);
    });
    let order = order.expect("the sale happened, so it is not refused");
    stack
        .assert_conserved(item, 10, &as_confirmed(&order))
        .await;
}

#[actix_web::test]
async fn a_purchase_whose_reply_came_too_late_is_answered_as_placed_once() {
    assert_placed_once_when_late(Late::Reply, 2).await;
}

#[actix_web::test]
async fn a_purchase_that_reached_redis_after_its_client_gave_up_is_answered_as_placed_once() {
    assert_placed_once_when_late(Late::Request, 3).await;
}

#[actix_web::test]
async fn an_outcome_that_cannot_be_learned_in_time_is_outcome_unknown_never_busy() {
    let Some((proxy, stack, purchases)) = purchases_behind_a_redis_proxy(1_000, 300).await else {
        return;
    };
    let item = stack.item(10, None).await;
    proxy.break_all();
    let refused = purchases.purchase(request(item, 1)).await;
    proxy.restore();
    let Err(PurchaseError::OutcomeUnknown { order_id }) = refused else {
        panic!("expected OUTCOME_UNKNOWN, got {refused:?}");
    };
    // Redis never got it: the order does not exist, and stock is untouched.
    let looked_up = stack.get_as(1, &format!("/api/v1/orders/{order_id}")).await;
    assert_envelope(&looked_up, 404, "NOT_FOUND");
    assert_eq!(stack.redis_stock(item).await, 10);
}

#[actix_web::test]
async fn a_reservation_whose_reply_came_too_late_is_answered_as_reserved() {
    let Some((proxy, stack, purchases)) = purchases_behind_a_redis_proxy(5_000, 300).await else {
        return;
    };
    let item = stack
        .item_on_terms(10, None, crate::lifecycle::reservable(600))
        .await;
    proxy.delay_replies(Duration::from_millis(1_000));
    let (order, ()) = tokio::join!(purchases.purchase(request(item, 1)), async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        proxy.delay_replies(Duration::ZERO);
    });
    let order = order.expect("the sale happened, so it is not refused");
    assert_eq!(
        order.status.as_str(),
        "reserved",
        "settled from its outbox entry"
    );
    assert!(order.pay_by.is_some());
    assert_eq!(stack.redis_stock(item).await, 9);
}

#[actix_web::test]
async fn a_retry_of_a_purchase_that_happened_is_never_busy_when_its_order_cannot_be_read() {
    let proxy = ChaosProxy::to_mysql().await;
    let (stack, purchases) = purchases_with_mysql_through(&proxy, 1_000).await;
    let item = stack.item(10, None).await;
    let placed = purchases
        .purchase(keyed(item, 2, "retry-1"))
        .await
        .expect("placed");

    // MySQL stays away: the retry cannot read its order, which exists.
    proxy.break_all();
    let retried = purchases.purchase(keyed(item, 2, "retry-1")).await;
    let Err(PurchaseError::OutcomeUnknown { order_id }) = retried else {
        panic!("expected OUTCOME_UNKNOWN, got {retried:?}");
    };
    assert_eq!(order_id, placed.id);

    // MySQL back within the wait: the retry gets its order.
    let (retried, ()) = tokio::join!(purchases.purchase(keyed(item, 2, "retry-1")), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.restore();
    });
    let retried = retried.expect("the order, once MySQL answers");
    assert_eq!(retried.id, placed.id);
    stack
        .assert_conserved(item, 10, &as_confirmed(&placed))
        .await;
}

/// A purchase is answered within `PURCHASE_OUTCOME_TIMEOUT_MS` of its start however slow
/// Redis is. Here each reply comes 2 s late, under the client's 3 s timeout, so nothing
/// fails and the purchase's two round trips take 4 s: the buyer is told
/// `OUTCOME_UNKNOWN` with the order id at the 0.5 s deadline, and the purchase, left to
/// go on, happens under that id.
#[actix_web::test]
async fn a_purchase_slower_than_its_deadline_is_answered_outcome_unknown_and_goes_on() {
    let Some((proxy, stack, purchases)) = purchases_behind_a_redis_proxy(500, 3_000).await else {
        return;
    };
    let item = stack.item(10, None).await;
    proxy.delay_replies(Duration::from_millis(2_000));
    let answered =
        tokio::time::timeout(Duration::from_secs(3), purchases.purchase(request(item, 1)))
            .await
            .expect("answered at its deadline, before the 4 s the purchase takes");
    let Err(PurchaseError::OutcomeUnknown { order_id }) = answered else {
        panic!("expected OUTCOME_UNKNOWN, got {answered:?}");
    };
    let mut looked_up = stack.get_as(1, &format!("/api/v1/orders/{order_id}")).await;
    for _ in 0..100 {
        if looked_up.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        looked_up = stack.get_as(1, &format!("/api/v1/orders/{order_id}")).await;
    }
    assert_eq!(looked_up.status, 200, "{}", looked_up.body);
    assert_eq!(looked_up.body["quantity"], 1);
    assert_eq!(stack.redis_stock(item).await, 9);
}
