use crate::helpers::{assert_envelope, spawn_stack, token};
use purchase_service::configuration::Strategy;
use serde_json::json;

#[actix_web::test]
async fn orders_show_only_the_callers_own_and_turn_confirmed() {
    let mut stack = spawn_stack(Strategy::Lua).await;
    // Without a writer the orders stay pending.
    stack.writer.take().unwrap().send(true).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let item = stack.item(10, None).await;
    let mine = stack.buy(1, item, json!(1)).await;
    stack.buy(1, item, json!(2)).await;
    let theirs = stack.buy(2, item, json!(3)).await;
    let my_id = mine.body["order"]["id"].as_str().unwrap().to_owned();
    let their_id = theirs.body["order"]["id"].as_str().unwrap().to_owned();

    let listed = stack.client.get("/api/v1/orders", Some(&token(1))).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["total"], 2);
    let data = listed.body["data"].as_array().unwrap();
    assert!(data.iter().all(|o| o["status"] == "pending"));
    assert!(data.iter().all(|o| o["id"] != their_id.as_str()));

    let show = stack
        .client
        .get(&format!("/api/v1/orders/{my_id}"), Some(&token(1)))
        .await;
    assert_eq!(show.body["status"], "pending");
    assert_envelope(
        &stack
            .client
            .get(&format!("/api/v1/orders/{their_id}"), Some(&token(1)))
            .await,
        404,
        "NOT_FOUND",
    );
    assert_envelope(
        &stack
            .client
            .get("/api/v1/orders/no-such-order", Some(&token(1)))
            .await,
        404,
        "NOT_FOUND",
    );
    assert_envelope(
        &stack.client.get("/api/v1/orders", None).await,
        401,
        "UNAUTHENTICATED",
    );

    stack.writer =
        Some(crate::helpers::start_writer(&stack.database, &stack.redis, &stack.rabbit).await);
    testkit::eventually(20, "orders confirmed", || async {
        stack
            .client
            .get(&format!("/api/v1/orders/{my_id}"), Some(&token(1)))
            .await
            .body["status"]
            == "confirmed"
    })
    .await;
    testkit::eventually(20, "outbox drained", || async {
        stack.store.outbox_len(item).await.unwrap() == 0
    })
    .await;
    let listed = stack
        .client
        .get("/api/v1/orders?per_page=1", Some(&token(1)))
        .await;
    assert_eq!(listed.body["total"], 2);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["data"][0]["status"], "confirmed");
    assert_envelope(
        &stack
            .client
            .get(&format!("/api/v1/orders/{their_id}"), Some(&token(1)))
            .await,
        404,
        "NOT_FOUND",
    );
    assert_envelope(
        &stack
            .client
            .get("/api/v1/orders?per_page=500", Some(&token(1)))
            .await,
        422,
        "VALIDATION_FAILED",
    );
}
