use crate::helpers::{
    STRATEGIES, assert_envelope, confirmed, spawn_stack, spawn_stack_selling, token,
};
use redis::AsyncCommands;
use serde_json::json;

#[actix_web::test]
async fn a_purchase_succeeds_and_is_persisted() {
    for strategy in STRATEGIES {
        let (stack, item) = spawn_stack_selling(strategy, 10, None).await;
        let response = stack.buy(1, item, json!(3)).await;
        assert_eq!(response.status, 200, "{strategy:?}: {}", response.body);
        assert_eq!(response.body["message"], "Purchase successful!");
        let order = &response.body["order"];
        assert_eq!(order["item_id"], item);
        assert_eq!(order["quantity"], 3);
        assert_eq!(order["status"], "pending");
        assert!(order["id"].as_str().is_some_and(|id| id.len() == 36));
        assert_eq!(stack.redis_stock(item).await, 7);
        stack
            .assert_conserved(item, 10, &confirmed(&[response]))
            .await;
    }
}

#[actix_web::test]
async fn insufficient_stock_changes_nothing() {
    for strategy in STRATEGIES {
        let (stack, item) = spawn_stack_selling(strategy, 2, None).await;
        let response = stack.buy(1, item, json!(3)).await;
        assert_envelope(&response, 409, "INSUFFICIENT_STOCK");
        assert_eq!(response.body["current_stock"], 2);
        assert_eq!(stack.redis_stock(item).await, 2);
        assert_eq!(stack.mysql_stock(item).await, 2);
        assert_eq!(stack.store.outbox.len(item).await.unwrap(), 0);
    }
}

#[actix_web::test]
async fn bad_quantities_are_422_and_change_nothing() {
    let stack = spawn_stack(purchase_service::configuration::Strategy::Lua).await;
    let item = stack.item(5, None).await;
    for quantity in [
        json!(0),
        json!("abc"),
        json!(2000),
        json!(null),
        json!(-1),
        json!(1.5),
    ] {
        let response = stack.buy(1, item, quantity.clone()).await;
        assert_envelope(&response, 422, "VALIDATION_FAILED");
        assert!(
            response.body["errors"]["quantity"].is_array(),
            "{quantity}: {}",
            response.body
        );
    }
    let missing = stack.post_purchase(item, Some(&token(1)), &json!({})).await;
    assert_envelope(&missing, 422, "VALIDATION_FAILED");
    assert!(missing.body["errors"]["quantity"].is_array());
    let no_body = stack.send_purchase(1, item, &[], None).await;
    assert_envelope(&no_body, 422, "VALIDATION_FAILED");
    let bad_key = stack.buy_with_key(1, item, 1, "has spaces in it").await;
    assert_envelope(&bad_key, 422, "VALIDATION_FAILED");
    assert!(bad_key.body["errors"]["idempotency_key"].is_array());
    let bad_id = stack
        .post_purchase("abc", Some(&token(1)), &json!({"quantity": 1}))
        .await;
    assert_envelope(&bad_id, 422, "VALIDATION_FAILED");
    assert_eq!(stack.redis_stock(item).await, 5);
}

/// An empty key is no key (the gateway forwards an empty header as none): two purchases
/// with one are two orders, not a replay.
#[actix_web::test]
async fn an_empty_idempotency_key_is_no_key() {
    let stack = spawn_stack(purchase_service::configuration::Strategy::Lua).await;
    let item = stack.item(5, None).await;
    let first = stack.buy_with_key(1, item, 1, "").await;
    let second = stack.buy_with_key(1, item, 1, "").await;
    assert_eq!((first.status, second.status), (200, 200), "{}", second.body);
    assert_ne!(first.body["order"]["id"], second.body["order"]["id"]);
    assert_eq!(stack.redis_stock(item).await, 3);
}

#[actix_web::test]
async fn unknown_and_deleted_items_are_404() {
    for strategy in STRATEGIES {
        let stack = spawn_stack(strategy).await;
        assert_envelope(&stack.buy(1, 424242, json!(1)).await, 404, "NOT_FOUND");
        let item = stack.item(5, None).await;
        stack.store.stock.set_on_sale(item, false).await.unwrap();
        assert_envelope(&stack.buy(1, item, json!(1)).await, 404, "NOT_FOUND");
        assert_eq!(stack.redis_stock(item).await, 5);
    }
}

#[actix_web::test]
async fn purchases_need_a_live_token() {
    use common::auth::Authenticator;
    use common::jwt::JwtVerifier;
    use common::redis::Keyspace;
    use common::revocation::FeedSettings;
    let stack = spawn_stack(purchase_service::configuration::Strategy::Lua).await;
    let item = stack.item(5, None).await;
    let revoked = token(1);
    // Revoked as auth-service revokes (another instance, on the same Redis).
    let jwt = &stack.settings.jwt;
    let auth_service = Authenticator::new(
        JwtVerifier::from_settings(jwt).unwrap(),
        common::redis::client(&stack.settings.redis).unwrap(),
        Keyspace::new(stack.env.redis.prefix.clone()),
        FeedSettings::from_jwt(jwt),
    );
    let claims = auth_service.verifier.verify(&revoked).unwrap();
    assert!(auth_service.revoke(&claims).await.unwrap());
    // Refused within REVOCATION_FEED_MAX_LAG_MS: waited for with a read, not a purchase.
    testkit::eventually(5, "the revocation refused by purchase-service", || async {
        stack
            .client
            .get("/api/v1/orders", Some(&revoked))
            .await
            .status
            == 401
    })
    .await;
    for (caller, token) in [("anonymous", None), ("revoked", Some(revoked.as_str()))] {
        let response = stack
            .post_purchase(item, token, &json!({"quantity": 1}))
            .await;
        assert_envelope(&response, 401, "UNAUTHENTICATED");
        assert_eq!(response.body["message"], "Unauthenticated.", "{caller}");
        assert_eq!(stack.redis_stock(item).await, 5, "{caller}");
    }
}

#[actix_web::test]
async fn the_per_user_limit_is_enforced() {
    for strategy in STRATEGIES {
        let stack = spawn_stack(strategy).await;
        let item = stack.item(10, Some(2)).await;
        assert_eq!(stack.buy(1, item, json!(2)).await.status, 200);
        let over = stack.buy(1, item, json!(1)).await;
        assert_envelope(&over, 409, "PURCHASE_LIMIT_EXCEEDED");
        assert_eq!(over.body["limit"], 2);
        assert_eq!(over.body["already_bought"], 2);
        assert_eq!(
            stack.buy(2, item, json!(2)).await.status,
            200,
            "another user has their own allowance"
        );
        assert_eq!(stack.redis_stock(item).await, 6);
    }
}

#[actix_web::test]
async fn a_retried_idempotency_key_returns_the_same_order() {
    for strategy in STRATEGIES {
        let (stack, item) = spawn_stack_selling(strategy, 10, None).await;
        let first = stack.buy_with_key(1, item, 2, "retry-me").await;
        assert_eq!(first.status, 200);
        let again = stack.buy_with_key(1, item, 2, "retry-me").await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body["order"]["id"], first.body["order"]["id"]);
        assert_eq!(
            again.body["order"]["purchased_at"], first.body["order"]["purchased_at"],
            "a replay answers the original purchase"
        );
        assert_eq!(stack.redis_stock(item).await, 8);
        let other_user = stack.buy_with_key(2, item, 2, "retry-me").await;
        assert_ne!(
            other_user.body["order"]["id"], first.body["order"]["id"],
            "keys are per user"
        );
        stack
            .assert_conserved(item, 10, &confirmed(&[first, other_user]))
            .await;
        let after_persist = stack.buy_with_key(1, item, 2, "retry-me").await;
        assert_eq!(after_persist.body["order"]["status"], "confirmed");
    }
}

#[actix_web::test]
async fn an_idempotency_key_reused_for_another_quantity_is_refused_and_changes_nothing() {
    for strategy in STRATEGIES {
        let (stack, item) = spawn_stack_selling(strategy, 10, None).await;
        let first = stack.buy_with_key(1, item, 2, "reused").await;
        assert_eq!(first.status, 200, "{}", first.body);
        let other = stack.buy_with_key(1, item, 3, "reused").await;
        assert_envelope(&other, 422, "IDEMPOTENCY_KEY_REUSED");
        assert_eq!(stack.redis_stock(item).await, 8, "{strategy:?}");
        let replay = stack.buy_with_key(1, item, 2, "reused").await;
        assert_eq!(replay.body["order"]["id"], first.body["order"]["id"]);
        stack.assert_conserved(item, 10, &confirmed(&[first])).await;
    }
}

#[actix_web::test]
async fn an_unexpected_reply_from_redis_is_a_500_never_a_business_answer() {
    for strategy in STRATEGIES {
        let (stack, item) = spawn_stack_selling(strategy, 10, None).await;
        let key = stack.store.keys(item).idempotency(1, "mangled");
        stack
            .env
            .redis
            .connection()
            .await
            .set_ex::<_, _, ()>(&key, "not-a-record", 60)
            .await
            .unwrap();
        let response = stack.buy_with_key(1, item, 1, "mangled").await;
        assert_envelope(&response, 500, "INTERNAL_ERROR");
        assert_eq!(stack.redis_stock(item).await, 10, "{strategy:?}");
    }
}

#[actix_web::test]
async fn bodies_are_held_to_the_contract_integral_numbers_in_unknown_fields_out() {
    let stack = spawn_stack(purchase_service::configuration::Strategy::Lua).await;
    let item = stack.item(500, None).await;
    let extra = stack
        .post_purchase(
            item,
            Some(&token(1)),
            &json!({"quantity": 1, "x-schemathesis-unknown-property": 42}),
        )
        .await;
    assert_envelope(&extra, 422, "VALIDATION_FAILED");
    assert_eq!(
        extra.body["errors"]["x-schemathesis-unknown-property"][0],
        "The x-schemathesis-unknown-property field is not allowed."
    );
    assert_eq!(stack.redis_stock(item).await, 500);

    let integral = stack.buy(1, item, json!(208.0)).await;
    assert_eq!(integral.status, 200, "{}", integral.body);
    assert_eq!(integral.body["order"]["quantity"], 208);
    assert_eq!(stack.redis_stock(item).await, 292);

    // Reads as the float 1.0, but is no integer: only JSON integers are quantities.
    for literal in ["0.9999999999999999999", "1.0000000000000000001"] {
        let body = format!(r#"{{"quantity": {literal}}}"#).into_bytes();
        let inexact = stack.send_purchase(1, item, &[], Some(body)).await;
        assert_envelope(&inexact, 422, "VALIDATION_FAILED");
        assert_eq!(
            inexact.body["errors"]["quantity"][0], "The quantity must be an integer.",
            "{literal}: {}",
            inexact.body
        );
    }
    assert_eq!(stack.redis_stock(item).await, 292);
}

#[actix_web::test]
async fn a_known_path_with_another_method_is_405_listing_the_allowed_ones() {
    let stack = spawn_stack(purchase_service::configuration::Strategy::Lua).await;
    let item = stack.item(5, None).await;
    for (method, path, allowed) in [
        ("GET", format!("/api/v1/items/{item}/purchase"), "POST"),
        ("PUT", "/api/v1/orders".to_owned(), "GET"),
        ("DELETE", "/api/v1/orders/some-order".to_owned(), "GET"),
        ("QUERY", "/readyz".to_owned(), "GET"),
    ] {
        let response = stack
            .client
            .send(method, &path, Some(&token(1)), &[], None)
            .await;
        assert_envelope(&response, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(response.header("allow"), Some(allowed), "{method} {path}");
    }
    assert_eq!(stack.redis_stock(item).await, 5);
}
