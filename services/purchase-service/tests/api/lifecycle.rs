//! The order lifecycle of a flash sale: sale windows checked against the Redis server's
//! clock, for both strategies.

use crate::helpers::{STRATEGIES, Stack, assert_envelope, spawn_stack};
use chrono::DateTime;
use inventory::stock::SaleTerms;
use serde_json::json;
use std::time::Duration;

/// The Redis server's clock, the one the purchase script checks windows against.
async fn redis_now_ms(stack: &Stack) -> i64 {
    let mut conn = stack.env.redis.connection().await;
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    secs * 1000 + micros / 1000
}

async fn sleep_until_redis_time(stack: &Stack, at_ms: i64) {
    let left = at_ms - redis_now_ms(stack).await;
    if left > 0 {
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
}

fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[actix_web::test]
async fn a_sale_opens_and_closes_on_the_redis_clock_to_the_second() {
    for strategy in STRATEGIES {
        let stack = spawn_stack(strategy).await;
        let now = redis_now_ms(&stack).await;
        let (starts, ends) = (now + 1_500, now + 3_000);
        let item = stack
            .item_on_terms(
                10,
                None,
                SaleTerms {
                    starts_at_ms: Some(starts),
                    ends_at_ms: Some(ends),
                    ..SaleTerms::default()
                },
            )
            .await;

        let early = stack.buy(1, item, json!(1)).await;
        assert_envelope(&early, 409, "SALE_NOT_STARTED");
        assert_eq!(early.body["starts_at"], rfc3339(starts), "{strategy:?}");

        sleep_until_redis_time(&stack, starts).await;
        let open = stack.buy(1, item, json!(1)).await;
        assert_eq!(open.status, 200, "{strategy:?}: {}", open.body);

        sleep_until_redis_time(&stack, ends).await;
        let late = stack.buy(2, item, json!(1)).await;
        assert_envelope(&late, 409, "SALE_ENDED");
        assert_eq!(late.body["ended_at"], rfc3339(ends), "{strategy:?}");

        assert_eq!(
            stack.redis_stock(item).await,
            9,
            "{strategy:?}: one sale only"
        );
    }
}

#[actix_web::test]
async fn a_sale_without_a_window_is_open_and_a_closed_one_refuses_everyone() {
    let stack = spawn_stack(purchase_service::configuration::Strategy::Lua).await;
    let now = redis_now_ms(&stack).await;
    let closed = stack
        .item_on_terms(
            5,
            None,
            SaleTerms {
                ends_at_ms: Some(now - 1),
                ..SaleTerms::default()
            },
        )
        .await;
    for user in 1..=3 {
        let response = stack.buy(user, closed, json!(1)).await;
        assert_envelope(&response, 409, "SALE_ENDED");
    }
    assert_eq!(stack.redis_stock(closed).await, 5);
    let open = stack.item(5, None).await;
    assert_eq!(stack.buy(1, open, json!(1)).await.status, 200);
}

pub fn reservable(window_secs: u32) -> SaleTerms {
    SaleTerms {
        price: 1500,
        payment_window_secs: Some(window_secs),
        ..SaleTerms::default()
    }
}

/// order id → status in MySQL, for one item.
pub async fn mysql_statuses(
    stack: &Stack,
    item: u64,
) -> std::collections::BTreeMap<String, String> {
    use db::schema::orders;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let mut conn = stack.env.database.connect().await;
    orders::table
        .filter(orders::item_id.eq(item))
        .select((orders::id, orders::status))
        .load(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[actix_web::test]
async fn a_reservation_holds_units_until_its_buyer_cancels_it() {
    for strategy in STRATEGIES {
        let stack = spawn_stack(strategy).await;
        let item = stack.item_on_terms(5, Some(2), reservable(600)).await;
        let reserved = stack.buy(1, item, json!(2)).await;
        assert_eq!(reserved.status, 200, "{strategy:?}: {}", reserved.body);
        let order = &reserved.body["order"];
        assert_eq!(order["status"], "reserved", "{strategy:?}");
        assert!(order["pay_by"].is_string(), "{}", reserved.body);
        let id = order["id"].as_str().unwrap().to_owned();
        assert_eq!(stack.redis_stock(item).await, 3);
        let limited = stack.buy(1, item, json!(1)).await;
        assert_envelope(&limited, 409, "PURCHASE_LIMIT_EXCEEDED");

        let stranger = stack.cancel(2, &id).await;
        assert_envelope(&stranger, 404, "NOT_FOUND");
        let cancel = stack.cancel(1, &id).await;
        assert_eq!(cancel.status, 200, "{strategy:?}: {}", cancel.body);
        assert_eq!(cancel.body["status"], "cancelled");
        assert_eq!(stack.redis_stock(item).await, 5, "units back at once");
        let again = stack.cancel(1, &id).await;
        assert_envelope(&again, 409, "ORDER_NOT_RESERVED");
        assert_eq!(again.body["status"], "cancelled");
        // The buyer's count came back with the units.
        assert_eq!(stack.buy(1, item, json!(2)).await.status, 200);

        testkit::eventually(30, "MySQL has both orders in their end status", || async {
            let statuses = mysql_statuses(&stack, item).await;
            statuses.get(&id).map(String::as_str) == Some("cancelled") && statuses.len() == 2
        })
        .await;
        testkit::eventually(
            30,
            "MySQL stock holds the second reservation only",
            || async {
                stack.mysql_stock(item).await == 3
                    && stack.store.outbox.len(item).await.unwrap() == 0
            },
        )
        .await;
        assert_eq!(stack.redis_stock(item).await, 3);
    }
}

#[actix_web::test]
async fn unpaid_reservations_expire_and_their_units_sell_again() {
    for strategy in STRATEGIES {
        let stack = spawn_stack(strategy).await;
        let item = stack.item_on_terms(3, None, reservable(1)).await;
        let ids = stack.reserve_each(item, 1..=3).await;
        assert_envelope(
            &stack.buy(4, item, json!(1)).await,
            409,
            "INSUFFICIENT_STOCK",
        );
        testkit::eventually(10, "every reservation expired", || async {
            stack.redis_stock(item).await == 3
        })
        .await;
        let shown = stack
            .get_as(1, &format!("/api/v1/orders/{}", ids[0].1))
            .await;
        assert_eq!(shown.body["status"], "expired", "{}", shown.body);
        let resold = stack.buy(4, item, json!(3)).await;
        assert_eq!(resold.status, 200, "{}", resold.body);
        testkit::eventually(
            30,
            "MySQL: three expired, one reserved, stock 0",
            || async {
                let statuses = mysql_statuses(&stack, item).await;
                statuses.values().filter(|s| *s == "expired").count() == 3
                    && statuses.len() == 4
                    && stack.mysql_stock(item).await == 0
            },
        )
        .await;
    }
}

#[actix_web::test]
async fn cancels_racing_the_expiry_worker_end_each_order_exactly_once() {
    let stack = spawn_stack(purchase_service::configuration::Strategy::Lua).await;
    let item = stack.item_on_terms(200, None, reservable(1)).await;
    let ids = stack.reserve_each(item, 1..=200).await;
    // Cancels arrive around the deadline, while the worker expires the same orders.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let cancels = ids.iter().map(|(user, id)| {
        let stack = &stack;
        async move { stack.cancel(*user, id).await }
    });
    let answers = futures_util::future::join_all(cancels).await;
    let cancelled = answers.iter().filter(|a| a.status == 200).count();
    for answer in &answers {
        assert!(
            answer.status == 200 || (answer.status == 409 && answer.body["status"] == "expired"),
            "{} {}",
            answer.status,
            answer.body
        );
    }
    testkit::eventually(
        30,
        "every order ended once in MySQL, stock whole",
        || async {
            let statuses = mysql_statuses(&stack, item).await;
            statuses.len() == 200
                && statuses
                    .values()
                    .all(|s| s == "cancelled" || s == "expired")
                && stack.store.outbox.len(item).await.unwrap() == 0
        },
    )
    .await;
    let statuses = mysql_statuses(&stack, item).await;
    assert_eq!(
        statuses.values().filter(|s| *s == "cancelled").count(),
        cancelled
    );
    assert_eq!(
        stack.redis_stock(item).await,
        200,
        "Redis: every unit back, once"
    );
    assert_eq!(
        stack.mysql_stock(item).await,
        200,
        "MySQL: every unit back, once"
    );
}
