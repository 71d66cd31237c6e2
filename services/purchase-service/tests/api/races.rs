//! Concurrency claims, proved by racing many real HTTP clients against the real stack.

use crate::helpers::{STRATEGIES, confirmed, spawn_stack};
use futures_util::future::join_all;
use purchase_service::configuration::Strategy;
use serde_json::json;

#[actix_web::test]
async fn five_hundred_buyers_never_oversell_one_hundred_units() {
    for strategy in STRATEGIES {
        let stack = spawn_stack(strategy).await;
        let item = stack.item(100, None).await;
        let attempts = (0..500u64).map(|i| stack.buy(1 + i % 250, item, json!(1)));
        let responses = join_all(attempts).await;
        let placed = confirmed(&responses);
        for response in &responses {
            let code = response.body["error_code"].as_str().unwrap_or("");
            assert!(
                response.status == 200
                    || code == "INSUFFICIENT_STOCK"
                    || (strategy == Strategy::Lock && code == "SYSTEM_BUSY"),
                "{strategy:?}: unexpected {} {}",
                response.status,
                response.body
            );
        }
        match strategy {
            Strategy::Lua => assert_eq!(placed.len(), 100, "lua sells exactly the stock"),
            Strategy::Lock => assert!(
                !placed.is_empty() && placed.len() <= 100,
                "lock sold {}",
                placed.len()
            ),
        }
        stack.assert_conserved(item, 100, &placed).await;
    }
}

#[actix_web::test]
async fn racing_retries_of_one_idempotency_key_buy_once() {
    for strategy in STRATEGIES {
        let stack = spawn_stack(strategy).await;
        let item = stack.item(50, None).await;
        let responses =
            join_all((0..25).map(|_| stack.buy_with_key(7, item, 2, "one-click"))).await;
        let placed = confirmed(&responses);
        assert_eq!(
            placed.len(),
            1,
            "{strategy:?}: every 200 names the same order"
        );
        assert!(
            responses.iter().all(|r| r.status == 200 || r.status == 503),
            "{strategy:?}"
        );
        stack.assert_conserved(item, 50, &placed).await;
    }
}

#[actix_web::test]
async fn racing_purchases_of_one_user_never_pass_the_limit() {
    for strategy in STRATEGIES {
        let stack = spawn_stack(strategy).await;
        let item = stack.item(100, Some(3)).await;
        let responses = join_all((0..30).map(|_| stack.buy(9, item, json!(1)))).await;
        let placed = confirmed(&responses);
        match strategy {
            Strategy::Lua => assert_eq!(placed.len(), 3),
            Strategy::Lock => assert!(placed.len() <= 3, "lock placed {}", placed.len()),
        }
        let refused = responses
            .iter()
            .filter(|r| r.body["error_code"] == "PURCHASE_LIMIT_EXCEEDED")
            .count();
        assert!(refused > 0 || strategy == Strategy::Lock);
        stack.assert_conserved(item, 100, &placed).await;
    }
}
