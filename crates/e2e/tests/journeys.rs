//! Journeys through the real gateway to the real service binaries.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use e2e::Stack;
use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::Response;

async fn admin_token(stack: &Stack) -> String {
    let created = stack.run_cli(
        "auth-service",
        &["create-admin", "--email", "boss@example.com"],
        &[("ADMIN_PASSWORD", "boss-password")],
    );
    assert!(
        created.status.success(),
        "create-admin: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    token_of(&login(stack, "boss@example.com", "boss-password").await)
}

async fn login(stack: &Stack, email: &str, password: &str) -> Response {
    stack
        .gateway
        .post(
            "/api/v1/auth/login",
            None,
            &json!({ "email": email, "password": password }),
        )
        .await
}

fn token_of(response: &Response) -> String {
    assert_eq!(response.status, 200, "{}", response.body);
    response.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

async fn create_item(stack: &Stack, admin: &str, stock: u32) -> u64 {
    let created = stack
        .gateway
        .post(
            "/api/v1/items",
            Some(admin),
            &json!({ "name": "Flash Lamp", "price": 1999, "stock": stock }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_u64().unwrap()
}

async fn buyer(stack: &Stack, email: &str) -> String {
    let registered = stack
        .gateway
        .post(
            "/api/v1/auth/register",
            None,
            &json!({ "name": "Buyer", "email": email, "password": "buyer-password" }),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    token_of(&login(stack, email, "buyer-password").await)
}

async fn mysql_stock(stack: &Stack, item: u64) -> u32 {
    let mut conn = AsyncMysqlConnection::establish(&stack.database.url())
        .await
        .unwrap();
    db::schema::items::table
        .find(item)
        .select(db::schema::items::stock)
        .first(&mut conn)
        .await
        .unwrap()
}

async fn persisted_order(stack: &Stack, order_id: &str) -> Option<(u64, u32)> {
    use db::schema::orders;
    let mut conn = AsyncMysqlConnection::establish(&stack.database.url())
        .await
        .unwrap();
    orders::table
        .find(order_id)
        .select((orders::item_id, orders::quantity))
        .first(&mut conn)
        .await
        .optional()
        .unwrap()
}

fn assert_envelope(response: &Response, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.body["error_code"], code, "{}", response.body);
    assert!(response.body["message"].is_string());
}

#[actix_web::test]
async fn a_buyers_journey_from_registration_to_a_dead_token() {
    let stack = Stack::start().await;
    let admin = admin_token(&stack).await;
    let item = create_item(&stack, &admin, 10).await;
    let token = buyer(&stack, "buyer@example.com").await;

    let listed = stack.gateway.get("/api/v1/items", None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["data"][0]["stock"], 10);

    let body = json!({ "quantity": 2 }).to_string().into_bytes();
    let path = format!("/api/v1/items/{item}/purchase");
    let bought = stack
        .gateway
        .send(
            "POST",
            &path,
            Some(&token),
            &[("X-Request-Id", "e2e-journey-1")],
            Some(body),
        )
        .await;
    assert_eq!(bought.status, 200, "{}", bought.body);
    assert_eq!(bought.header("x-request-id"), Some("e2e-journey-1"));
    let order_id = bought.body["order"]["id"].as_str().unwrap().to_owned();

    testkit::eventually(20, "the order confirmed", || async {
        stack
            .gateway
            .get(&format!("/api/v1/orders/{order_id}"), Some(&token))
            .await
            .body["status"]
            == "confirmed"
    })
    .await;
    assert_eq!(persisted_order(&stack, &order_id).await, Some((item, 2)));
    assert_eq!(mysql_stock(&stack, item).await, 8);
    assert_eq!(
        stack
            .gateway
            .get(&format!("/api/v1/items/{item}"), None)
            .await
            .body["stock"],
        8
    );
    assert!(
        stack.log("purchase-service").contains("e2e-journey-1"),
        "the request id reaches the service log"
    );

    let me = stack.gateway.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me.body["email"], "buyer@example.com");
    let logout = stack
        .gateway
        .post("/api/v1/auth/logout", Some(&token), &Value::Null)
        .await;
    assert_eq!(logout.body["message"], "Successfully logged out");

    // Dead in every service at once.
    assert_envelope(
        &stack.gateway.get("/api/v1/auth/me", Some(&token)).await,
        401,
        "UNAUTHENTICATED",
    );
    assert_envelope(
        &stack
            .gateway
            .post(&path, Some(&token), &json!({"quantity": 1}))
            .await,
        401,
        "UNAUTHENTICATED",
    );
    assert_envelope(
        &stack.gateway.get("/api/v1/orders", Some(&token)).await,
        401,
        "UNAUTHENTICATED",
    );
    assert_envelope(
        &stack
            .gateway
            .post("/api/v1/items", Some(&token), &json!({}))
            .await,
        401,
        "UNAUTHENTICATED",
    );
    assert_eq!(mysql_stock(&stack, item).await, 8);
}

#[actix_web::test]
async fn an_admins_journey_create_restock_delete_and_sync_stock() {
    let stack = Stack::start().await;
    let admin = admin_token(&stack).await;
    let item = create_item(&stack, &admin, 5).await;
    let restocked = stack
        .gateway
        .post(
            &format!("/api/v1/items/{item}/restock"),
            Some(&admin),
            &json!({"quantity": 10}),
        )
        .await;
    assert_eq!(restocked.body["stock"], 15, "{}", restocked.body);

    let token = buyer(&stack, "shopper@example.com").await;
    let path = format!("/api/v1/items/{item}/purchase");
    for _ in 0..3 {
        assert_eq!(
            stack
                .gateway
                .post(&path, Some(&token), &json!({"quantity": 1}))
                .await
                .status,
            200
        );
    }
    testkit::eventually(20, "three orders persisted", || async {
        mysql_stock(&stack, item).await == 12
    })
    .await;
    let account = stack.stock_account(item, 15).await;
    assert!(account.conserved(), "{account:?}");
    assert_eq!((account.sold, account.duplicated()), (3, 0), "{account:?}");

    // Drift Redis on purpose, then let sync-stock repair it from MySQL.
    let stock_key = inventory::ItemKeys::new(&stack.keyspace(), item).stock();
    let mut redis = stack.redis.connection().await;
    redis.set::<_, _, ()>(&stock_key, 999).await.unwrap();
    let synced = stack.run_cli("stock-writer", &["sync-stock", &item.to_string()], &[]);
    assert!(
        synced.status.success(),
        "{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    assert!(
        String::from_utf8_lossy(&synced.stdout).contains("redis 12"),
        "{}",
        String::from_utf8_lossy(&synced.stdout)
    );
    let stock: i64 = redis.get(&stock_key).await.unwrap();
    assert_eq!(stock, 12);

    let deleted = stack
        .gateway
        .send(
            "DELETE",
            &format!("/api/v1/items/{item}"),
            Some(&admin),
            &[],
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_envelope(
        &stack
            .gateway
            .get(&format!("/api/v1/items/{item}"), None)
            .await,
        404,
        "NOT_FOUND",
    );
    assert_envelope(
        &stack
            .gateway
            .post(&path, Some(&token), &json!({"quantity": 1}))
            .await,
        404,
        "NOT_FOUND",
    );
    assert_envelope(
        &stack
            .gateway
            .post("/api/v1/items", Some(&token), &json!({}))
            .await,
        403,
        "FORBIDDEN",
    );
}

#[actix_web::test]
async fn every_error_comes_in_the_envelope_even_from_the_gateway() {
    let mut stack = Stack::start().await;
    let token = buyer(&stack, "errors@example.com").await;
    assert_envelope(
        &stack
            .gateway
            .post("/api/v1/auth/register", None, &json!({}))
            .await,
        422,
        "VALIDATION_FAILED",
    );
    assert_envelope(
        &login(&stack, "errors@example.com", "wrong-password").await,
        401,
        "INVALID_CREDENTIALS",
    );
    assert_envelope(
        &stack.gateway.get("/api/v1/items/abc", None).await,
        422,
        "VALIDATION_FAILED",
    );
    assert_envelope(
        &stack.gateway.get("/api/v1/items/999", None).await,
        404,
        "NOT_FOUND",
    );
    assert_envelope(
        &stack
            .gateway
            .post("/api/v1/items/1/purchase", None, &json!({"quantity": 1}))
            .await,
        401,
        "UNAUTHENTICATED",
    );
    assert_envelope(
        &stack
            .gateway
            .post(
                "/api/v1/items/1/purchase",
                Some(&token),
                &json!({"quantity": 0}),
            )
            .await,
        422,
        "VALIDATION_FAILED",
    );
    assert_envelope(&stack.gateway.get("/nowhere", None).await, 404, "NOT_FOUND");
    let huge = json!({ "name": "x".repeat(40_000) });
    assert_envelope(
        &stack
            .gateway
            .post("/api/v1/auth/register", None, &huge)
            .await,
        413,
        "PAYLOAD_TOO_LARGE",
    );

    stack.kill_service("catalog-service");
    let down = stack.gateway.get("/api/v1/items", None).await;
    assert_envelope(&down, 502, "BAD_GATEWAY");
    assert_eq!(down.header("retry-after"), Some("1"));
    assert!(
        down.header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    // The other services are unaffected.
    assert_eq!(
        stack
            .gateway
            .get("/api/v1/auth/me", Some(&token))
            .await
            .status,
        200
    );
}
