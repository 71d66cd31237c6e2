//! A purchase is answered 200 only once `REDIS_MIN_REPLICAS_ACKED` replicas have it.
//! Asking for more replicas than the master has makes every acknowledgement fail, as it
//! does for a master whose replicas are gone: the buyer then gets neither 200 nor "try
//! again" but `OUTCOME_UNKNOWN` with the order id, and the order, which the master did
//! take, is kept and persisted like any other (an order MySQL already has is settled
//! as placed: it survives whatever happens to Redis).

use crate::helpers::{assert_envelope, spawn_stack_with, token};
use purchase_service::configuration::Strategy;
use serde_json::json;
use std::time::Duration;

#[actix_web::test]
async fn a_purchase_no_replica_acknowledges_is_outcome_unknown_and_the_order_is_kept() {
    for strategy in [Strategy::Lua, Strategy::Lock] {
        let stack = spawn_stack_with(strategy, |s| {
            s.redis.min_replicas_acked = common::config::ReplicasAcked::Exactly(5);
            s.redis.replica_ack_timeout_ms = 100;
            s.purchase.outcome_timeout_ms = 600;
            // Not persisted while the buyer waits (MySQL having it would settle it).
            s.purchase.relay_after_ms = 2_000;
        })
        .await;
        let item = stack.item(10, None).await;
        let response = stack.buy(1, item, json!(2)).await;
        assert_envelope(&response, 503, "OUTCOME_UNKNOWN");
        let order_id = response.body["order_id"].as_str().unwrap().to_owned();
        assert_eq!(stack.redis_stock(item).await, 8, "{strategy:?}");

        // The relay hands the order to stock-writer: it ends up in MySQL, once.
        let mut persisted = stack.persisted_orders(item).await;
        for _ in 0..100 {
            if !persisted.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            persisted = stack.persisted_orders(item).await;
        }
        assert_eq!(
            persisted.into_iter().collect::<Vec<_>>(),
            [(order_id.clone(), 2)]
        );
        let looked_up = stack
            .client
            .get(&format!("/api/v1/orders/{order_id}"), Some(&token(1)))
            .await;
        assert_eq!(looked_up.status, 200, "{}", looked_up.body);
    }
}

/// A cancel and a payment are state changes a client is told about, like a purchase:
/// neither is answered 200 (nor "not reserved" by a retry) before replicas have it.
#[actix_web::test]
async fn a_cancel_or_payment_no_replica_acknowledges_is_outcome_unknown() {
    let stack = spawn_stack_with(Strategy::Lua, |s| {
        s.redis.min_replicas_acked = common::config::ReplicasAcked::Exactly(5);
        s.redis.replica_ack_timeout_ms = 100;
        s.purchase.outcome_timeout_ms = 600;
    })
    .await;
    let item = stack
        .item_on_terms(10, None, crate::lifecycle::reservable(600))
        .await;
    let mut orders = Vec::new();
    for user in [1, 2] {
        let response = stack.buy(user, item, json!(1)).await;
        let id = match response.status {
            200 => &response.body["order"]["id"],
            _ => {
                assert_envelope(&response, 503, "OUTCOME_UNKNOWN");
                &response.body["order_id"]
            }
        };
        orders.push(id.as_str().unwrap().to_owned());
    }
    testkit::eventually(30, "MySQL has both reservations", || async {
        stack.persisted_orders(item).await.len() == 2
    })
    .await;

    for attempt in ["first", "retry"] {
        let cancel = stack.cancel(1, &orders[0]).await;
        assert_envelope(&cancel, 503, "OUTCOME_UNKNOWN");
        assert_eq!(cancel.body["order_id"], orders[0].as_str(), "{attempt}");
        assert!(cancel.header("Retry-After").is_none(), "{attempt}");
    }
    let paid = stack.pay(&orders[1], "pay-unacked", 1500).await;
    assert_envelope(&paid, 503, "OUTCOME_UNKNOWN");
    assert_eq!(paid.body["order_id"], orders[1].as_str());
}
