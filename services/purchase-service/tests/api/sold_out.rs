//! Sold-out marks: a sold-out item is answered 409 from memory, never for longer than
//! the re-check interval after a unit comes back (and as soon as the stock-back notice
//! arrives), never for a retry with an Idempotency-Key, and not at all once this
//! instance gave units back itself.

use crate::helpers::{assert_envelope, spawn_stack, spawn_stack_with};
use crate::lifecycle::reservable;
use purchase_service::configuration::Strategy;
use serde_json::json;
use std::time::Duration;

/// How many purchases this instance answered from its sold-out marks (its metrics).
async fn answered_from_marks(stack: &crate::helpers::Stack) -> u64 {
    let metrics = stack.client.get("/metrics", None).await;
    String::from_utf8_lossy(&metrics.raw)
        .lines()
        .find(|line| line.starts_with("purchase_outcomes_total") && line.contains("sold_out_mark"))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_sold_out_item_is_answered_from_memory_and_sells_again_after_a_restock() {
    let stack = spawn_stack(Strategy::Lua).await;
    let item = stack.item(1, None).await;
    assert_eq!(stack.buy(1, item, json!(1)).await.status, 200);
    for user in 2..=21 {
        let refused = stack.buy(user, item, json!(1)).await;
        assert_envelope(&refused, 409, "INSUFFICIENT_STOCK");
        assert_eq!(refused.body["current_stock"], 0);
    }
    assert!(
        answered_from_marks(&stack).await > 0,
        "no purchase was answered from the mark"
    );

    // A restock this instance knows nothing of: after the re-check interval, it sells.
    stack.store.stock.add_stock(item, 1, "r-1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(
        stack.settings.purchase.sold_out_recheck_ms + 50,
    ))
    .await;
    assert_eq!(stack.buy(30, item, json!(1)).await.status, 200);
    assert_eq!(stack.redis_stock(item).await, 0);
}

#[actix_web::test]
async fn a_restock_elsewhere_clears_the_mark_by_its_notice_long_before_the_recheck() {
    // A re-check interval of a minute: only the notice can put the unit back on sale.
    let stack = spawn_stack_with(Strategy::Lua, |s| s.purchase.sold_out_recheck_ms = 60_000).await;
    let item = stack.item(1, None).await;
    assert_eq!(stack.buy(1, item, json!(1)).await.status, 200);
    assert_envelope(
        &stack.buy(2, item, json!(1)).await,
        409,
        "INSUFFICIENT_STOCK",
    );
    let before = answered_from_marks(&stack).await;
    assert_envelope(
        &stack.buy(3, item, json!(1)).await,
        409,
        "INSUFFICIENT_STOCK",
    );
    assert_eq!(
        answered_from_marks(&stack).await,
        before + 1,
        "marked sold out"
    );

    // Another process (the catalog) restocks through the store, which announces it.
    stack.store.stock.add_stock(item, 1, "r-1").await.unwrap();
    let restocked = std::time::Instant::now();
    let mut user = 10;
    loop {
        let answer = stack.buy(user, item, json!(1)).await;
        if answer.status == 200 {
            break;
        }
        assert_envelope(&answer, 409, "INSUFFICIENT_STOCK");
        assert!(
            restocked.elapsed() < Duration::from_secs(5),
            "the restocked unit was still refused from the mark after 5 s"
        );
        user += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stack.redis_stock(item).await, 0);
}

#[actix_web::test]
async fn a_retry_with_its_idempotency_key_is_never_answered_from_the_mark() {
    let stack = spawn_stack(Strategy::Lua).await;
    let item = stack.item(1, None).await;
    let first = stack.buy_with_key(1, item, 1, "retry-me").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_envelope(
        &stack.buy(2, item, json!(1)).await,
        409,
        "INSUFFICIENT_STOCK",
    );
    let retry = stack.buy_with_key(1, item, 1, "retry-me").await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["order"]["id"], first.body["order"]["id"]);
}

#[actix_web::test]
async fn units_this_instance_gives_back_are_on_sale_at_once() {
    let stack = spawn_stack(Strategy::Lua).await;
    let item = stack.item_on_terms(1, None, reservable(600)).await;
    let order = stack.reserve(1, item).await;
    assert_envelope(
        &stack.buy(2, item, json!(1)).await,
        409,
        "INSUFFICIENT_STOCK",
    );
    assert_eq!(stack.cancel(1, &order).await.status, 200);
    let bought = stack.buy(2, item, json!(1)).await;
    assert_eq!(bought.status, 200, "{}", bought.body);
}
