//! What one buyer can make the system keep is bounded by default: each cancel leaves an
//! ended order behind (a MySQL row; in Redis a settled marker and the order's item
//! index for `SETTLED_TTL_SECS`), so a reserve-and-cancel loop stops at the buyer's
//! cancel allowance per item (`CANCELS_PER_BUYER_PER_ITEM` per `CANCEL_WINDOW_SECS`).

use crate::helpers::{assert_envelope, spawn_stack};
use crate::lifecycle::reservable;
use purchase_service::configuration::Strategy;

/// Bytes Redis uses for every key under the test's prefix.
async fn redis_bytes(stack: &crate::helpers::Stack) -> u64 {
    let mut conn = stack.env.redis.connection().await;
    let mut total = 0;
    for key in stack.env.redis.keys().await {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        total += bytes.unwrap_or(0);
    }
    total
}

#[actix_web::test]
async fn a_reserve_and_cancel_loop_stops_at_the_buyers_cancel_allowance() {
    let stack = spawn_stack(Strategy::Lua).await;
    let allowance = stack.settings.purchase.cancels_per_item;
    assert!(allowance > 0, "bounded by default");
    let item = stack.item_on_terms(1, Some(1), reservable(600)).await;
    let before = redis_bytes(&stack).await;

    let mut cycles = 0;
    let refused = loop {
        assert!(cycles <= allowance, "more cancels than the allowance");
        let order = stack.reserve(1, item).await;
        let cancel = stack.cancel(1, &order).await;
        if cancel.status != 200 {
            break cancel;
        }
        cycles += 1;
    };
    assert_eq!(cycles, allowance);
    assert_envelope(&refused, 429, "TOO_MANY_REQUESTS");
    let retry_after: u64 = refused.header("Retry-After").unwrap().parse().unwrap();
    assert!(
        (1..=stack.settings.purchase.cancel_window_secs).contains(&retry_after),
        "{retry_after}"
    );
    assert_eq!(
        stack.redis_stock(item).await,
        0,
        "the refused cancel kept its unit"
    );
    let kept = redis_bytes(&stack).await.saturating_sub(before);
    eprintln!(
        "note: {cycles} reserve-and-cancel cycles and one open reservation left {kept} bytes in Redis"
    );
}
