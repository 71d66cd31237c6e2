//! The payment webhook against the real stack: signatures, payment of a reservation,
//! redelivery, wrong amounts, late payments (a refund announced on RabbitMQ), and
//! payments racing the expiry worker.

use crate::helpers::{STRATEGIES, Stack, WEBHOOK_SECRET, assert_envelope, spawn_stack};
use crate::lifecycle::{mysql_statuses, reservable};
use purchase_service::configuration::Strategy;
use serde_json::{Value, json};
use std::time::Duration;

/// The refund announcements waiting in RabbitMQ.
async fn refunds(stack: &Stack) -> Vec<Value> {
    let queue = stack.env.rabbit.topology().refund_queue;
    stack
        .env
        .rabbit
        .drain(&queue)
        .await
        .iter()
        .map(|message| serde_json::from_slice(&message.body).unwrap())
        .collect()
}

/// Whether MySQL holds the order, with this status.
async fn persisted_as(stack: &Stack, item: u64, order: &str, status: &str) -> bool {
    mysql_statuses(stack, item)
        .await
        .get(order)
        .map(String::as_str)
        == Some(status)
}

/// A stack selling `stock` units on a `window_secs` payment window, one of them reserved
/// by user 1: the stack, the item and that order's id.
async fn spawn_stack_reserving(
    strategy: Strategy,
    stock: u32,
    window_secs: u32,
) -> (Stack, u64, String) {
    let stack = spawn_stack(strategy).await;
    let item = stack
        .item_on_terms(stock, None, reservable(window_secs))
        .await;
    let order = stack.reserve(1, item).await;
    (stack, item, order)
}

#[actix_web::test]
async fn only_a_fresh_signature_made_with_the_secret_is_accepted() {
    let (stack, _, order) = spawn_stack_reserving(Strategy::Lua, 2, 600).await;
    let body = json!({"event": "payment.succeeded", "order_id": order, "payment_id": "pi_1", "amount": 1500}).to_string();
    let now = chrono::Utc::now().timestamp();
    let sign = common::webhook_signature::sign;
    for signature in [
        None,
        Some("garbage".to_owned()),
        Some(sign("another-secret", now, body.as_bytes())),
        Some(sign(WEBHOOK_SECRET, now - 301, body.as_bytes())),
        Some(sign(WEBHOOK_SECRET, now, b"{\"amount\":1}")),
    ] {
        let response = stack.webhook(&body, signature.as_deref()).await;
        assert_envelope(&response, 401, "UNAUTHENTICATED");
    }
    let shown = stack.get_as(1, &format!("/api/v1/orders/{order}")).await;
    assert_eq!(shown.body["status"], "reserved", "nothing changed");
    let signed = sign(WEBHOOK_SECRET, now, body.as_bytes());
    assert_eq!(stack.webhook(&body, Some(&signed)).await.status, 200);
}

#[actix_web::test]
async fn a_payment_pays_its_reservation_once_and_a_redelivery_changes_nothing() {
    for strategy in STRATEGIES {
        let (stack, item, order) = spawn_stack_reserving(strategy, 3, 600).await;

        let short = stack.pay(&order, "pi_short", 1000).await;
        assert_envelope(&short, 422, "VALIDATION_FAILED");
        assert!(short.body["errors"]["amount"].is_array(), "{}", short.body);

        let paid = stack.pay(&order, "pi_1", 1500).await;
        assert_eq!(paid.status, 200, "{strategy:?}: {}", paid.body);
        assert_eq!(paid.body["status"], "paid");
        let again = stack.pay(&order, "pi_1", 1500).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.body["status"], "paid");
        assert!(refunds(&stack).await.is_empty());

        // A second, different payment of a paid order: refused, and its money goes back.
        let double = stack.pay(&order, "pi_2", 1500).await;
        assert_envelope(&double, 409, "ORDER_NOT_RESERVED");
        assert_eq!(double.body["status"], "paid");
        let announced = refunds(&stack).await;
        assert_eq!(announced.len(), 1, "{announced:?}");
        assert_eq!(announced[0]["payment_id"], "pi_2");
        assert_eq!(announced[0]["event"], "payment.refund_required");

        let shown = stack.get_as(1, &format!("/api/v1/orders/{order}")).await;
        assert_eq!(shown.body["status"], "paid", "{}", shown.body);
        let cancel = stack.cancel(1, &order).await;
        assert_envelope(&cancel, 409, "ORDER_NOT_RESERVED");
        testkit::eventually(30, "MySQL has the order paid, stock taken once", || async {
            persisted_as(&stack, item, &order, "paid").await
                && stack.mysql_stock(item).await == 2
                && stack.store.outbox.len(item).await.unwrap() == 0
        })
        .await;
        assert_eq!(stack.redis_stock(item).await, 2);

        assert_envelope(
            &stack.pay("0000-no-such-order", "pi_3", 1500).await,
            404,
            "NOT_FOUND",
        );
        let other = json!({"event": "payment.created", "id": "x"}).to_string();
        let signature = common::webhook_signature::sign(
            WEBHOOK_SECRET,
            chrono::Utc::now().timestamp(),
            other.as_bytes(),
        );
        assert_eq!(stack.webhook(&other, Some(&signature)).await.status, 200);
    }
}

#[actix_web::test]
async fn a_payment_after_expiry_or_cancel_is_refused_and_refunded() {
    let (stack, item, late) = spawn_stack_reserving(Strategy::Lua, 2, 1).await;
    let cancelled = stack.reserve(2, item).await;
    let cancel = stack.cancel(2, &cancelled).await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    tokio::time::sleep(Duration::from_millis(1_300)).await;

    assert_envelope(
        &stack.pay(&late, "pi_late", 1500).await,
        409,
        "ORDER_EXPIRED",
    );
    let refused = stack.pay(&cancelled, "pi_cancelled", 1500).await;
    assert_envelope(&refused, 409, "ORDER_NOT_RESERVED");
    assert_eq!(refused.body["status"], "cancelled");
    let announced: Vec<(String, String)> = refunds(&stack)
        .await
        .iter()
        .map(|r| {
            (
                r["payment_id"].as_str().unwrap().to_owned(),
                r["order_status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        announced,
        [
            ("pi_late".into(), "expired".into()),
            ("pi_cancelled".into(), "cancelled".into())
        ]
    );
    assert_eq!(stack.redis_stock(item).await, 2, "both units back");
}

#[actix_web::test]
async fn payments_racing_the_expiry_worker_end_each_order_exactly_once() {
    let stack = spawn_stack(Strategy::Lua).await;
    let item = stack.item_on_terms(200, None, reservable(1)).await;
    let orders = stack.reserve_each(item, 1..=200).await;
    tokio::time::sleep(Duration::from_millis(850)).await;
    let payments = orders.iter().enumerate().map(|(n, (_, order))| {
        let stack = &stack;
        async move {
            (
                order.clone(),
                stack.pay(order, &format!("pi_{n}"), 1500).await,
            )
        }
    });
    let answers = futures_util::future::join_all(payments).await;
    let mut paid = Vec::new();
    for (order, answer) in &answers {
        match answer.status {
            200 => paid.push(order.clone()),
            409 => assert_eq!(
                answer.body["error_code"], "ORDER_EXPIRED",
                "{}",
                answer.body
            ),
            status => panic!("{status}: {}", answer.body),
        }
    }
    testkit::eventually(30, "every order ended once in MySQL", || async {
        let statuses = mysql_statuses(&stack, item).await;
        statuses.len() == 200
            && statuses.values().all(|s| s == "paid" || s == "expired")
            && stack.store.outbox.len(item).await.unwrap() == 0
    })
    .await;
    let statuses = mysql_statuses(&stack, item).await;
    for (order, status) in &statuses {
        assert_eq!(status == "paid", paid.contains(order), "{order}: {status}");
    }
    let unpaid = 200 - paid.len() as u32;
    assert_eq!(
        refunds(&stack).await.len() as u32,
        unpaid,
        "each refused payment refunded"
    );
    assert_eq!(stack.redis_stock(item).await, i64::from(unpaid));
    assert_eq!(stack.mysql_stock(item).await, unpaid);
}

#[actix_web::test]
async fn a_thousand_reservations_half_paid_the_rest_return_and_sell_again() {
    let stack = spawn_stack(Strategy::Lua).await;
    let item = stack.item_on_terms(1000, None, reservable(2)).await;
    let buys = (1..=1000u64).map(|user| {
        let stack = &stack;
        async move { stack.buy(user, item, json!(1)).await }
    });
    let answers = futures_util::future::join_all(buys).await;
    let orders: Vec<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 200, "{}", a.body);
            a.body["order"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_envelope(
        &stack.buy(5000, item, json!(1)).await,
        409,
        "INSUFFICIENT_STOCK",
    );
    // Half are paid while a second wave of buyers races for what comes back.
    let pays = orders.iter().step_by(2).enumerate().map(|(n, order)| {
        let stack = &stack;
        async move { stack.pay(order, &format!("pi_{n}"), 1500).await }
    });
    for answer in futures_util::future::join_all(pays).await {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    testkit::eventually(10, "the 500 unpaid reservations expired", || async {
        stack.redis_stock(item).await == 500
    })
    .await;
    // The second wave's reservations must still be open when MySQL is checked below,
    // however long persisting takes on a loaded machine: they get a long window.
    stack.set_terms(item, reservable(600)).await;
    let second_wave = (2001..=2600u64).map(|user| {
        let stack = &stack;
        async move { stack.buy(user, item, json!(1)).await }
    });
    let resold = futures_util::future::join_all(second_wave).await;
    let sold_again = resold.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        sold_again, 500,
        "every returned unit sold again, none twice"
    );
    assert!(
        resold
            .iter()
            .all(|a| a.status == 200 || a.body["error_code"] == "INSUFFICIENT_STOCK")
    );
    assert_eq!(stack.redis_stock(item).await, 0);
    // Polled by hand so that a failure shows what MySQL and the outbox held.
    let wanted = (500, 500, 500, 0);
    let mut seen = (0, 0, 0, u64::MAX);
    for _ in 0..600 {
        let statuses = mysql_statuses(&stack, item).await;
        let count = |s: &str| statuses.values().filter(|v| *v == s).count();
        seen = (
            count("paid"),
            count("expired"),
            count("reserved"),
            stack.store.outbox.len(item).await.unwrap(),
        );
        if seen == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen, wanted,
        "MySQL (paid, expired, reserved) and the outbox's length after 60 s"
    );
    // Conservation: initial = stock + reserved + paid.
    assert_eq!(stack.mysql_stock(item).await, 0);
}

#[actix_web::test]
async fn a_redelivered_payment_redis_forgot_is_recognised_from_mysql_and_not_refunded() {
    use redis::AsyncCommands;
    let (stack, item, order) = spawn_stack_reserving(Strategy::Lua, 3, 600).await;
    assert_eq!(stack.pay(&order, "pi_forgotten", 1500).await.status, 200);
    testkit::eventually(30, "MySQL has the order paid", || {
        persisted_as(&stack, item, &order, "paid")
    })
    .await;
    // Seven days later, or a Redis that lost data: the payment's id and the order's
    // settled marker are gone.
    let keys = stack.store.keys(item);
    let mut redis = stack.env.redis.connection().await;
    let forgotten: u64 = redis
        .del(&[keys.payment("pi_forgotten"), keys.settled(&order)])
        .await
        .unwrap();
    assert_eq!(forgotten, 2);

    let again = stack.pay(&order, "pi_forgotten", 1500).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["status"], "paid");
    assert!(
        refunds(&stack).await.is_empty(),
        "a refund for an applied payment"
    );
    let shown = stack.get_as(1, &format!("/api/v1/orders/{order}")).await;
    assert_eq!(shown.body["status"], "paid", "{}", shown.body);
    assert_eq!(stack.redis_stock(item).await, 2);
}

#[actix_web::test]
async fn a_refund_no_queue_takes_is_answered_503_and_announced_on_the_retry() {
    let (stack, _, late) = spawn_stack_reserving(Strategy::Lua, 2, 1).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    // The publisher's channel declared the topology when the reservation was published;
    // then the refund queue goes: the broker would confirm a refund and drop it.
    let queue = stack.env.rabbit.topology().refund_queue;
    stack.env.rabbit.delete_queue(&queue).await;

    let refused = stack.pay(&late, "pi_unrouted", 1500).await;
    assert_envelope(&refused, 503, "SYSTEM_BUSY");
    assert!(refused.header("Retry-After").is_some());
    // The provider retries: the publisher reconnects, declares the queue again, and the
    // refund is announced before the 409.
    let answered = std::sync::Mutex::new(None);
    testkit::eventually(10, "a retry answered 409", || async {
        let retry = stack.pay(&late, "pi_unrouted", 1500).await;
        let done = retry.status == 409;
        *answered.lock().unwrap() = Some(retry);
        done
    })
    .await;
    let retry = answered.into_inner().unwrap().unwrap();
    assert_envelope(&retry, 409, "ORDER_EXPIRED");
    let announced = refunds(&stack).await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0]["payment_id"], "pi_unrouted");
}
