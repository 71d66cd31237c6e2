//! Admission: each buyer's token bucket refuses a hammering buyer with 429 before Redis
//! is asked, and leaves every other buyer alone.

use crate::helpers::{assert_envelope, spawn_stack_with};
use purchase_service::configuration::Strategy;
use serde_json::json;
use std::time::Duration;

#[actix_web::test]
async fn a_buyer_past_their_rate_gets_429_and_nothing_changes() {
    let stack = spawn_stack_with(Strategy::Lua, |settings| {
        settings.purchase.rate_per_user = 1;
        settings.purchase.burst_per_user = 2;
    })
    .await;
    let item = stack.item(100, None).await;
    for _ in 0..2 {
        assert_eq!(stack.buy(1, item, json!(1)).await.status, 200);
    }
    let refused = stack.buy(1, item, json!(1)).await;
    assert_envelope(&refused, 429, "TOO_MANY_REQUESTS");
    assert_eq!(refused.headers.get("retry-after").unwrap(), "1");
    assert_eq!(refused.body["retry_after"], 1);
    assert_eq!(
        stack.redis_stock(item).await,
        98,
        "the refused purchase took nothing"
    );
    assert_eq!(
        stack.buy(2, item, json!(1)).await.status,
        200,
        "another buyer"
    );
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(
        stack.buy(1, item, json!(1)).await.status,
        200,
        "a token came back"
    );
}
