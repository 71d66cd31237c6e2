//! The order lifecycle of a flash sale: sale windows checked against the Redis server's
//! clock, for both strategies.

use crate::helpers::{STRATEGIES, Stack, assert_envelope, spawn_stack};
use chrono::DateTime;
use inventory::store::SaleTerms;
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
