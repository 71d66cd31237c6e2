//! Journeys through the real gateway to the real service binaries: a stack each test
//! starts, or the one at `E2E_BASE_URL` (see the crate's documentation for what is then
//! checked past the gateway).

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use e2e::{Access, Stack, api};
use redis::AsyncCommands;
use serde_json::{Value, json};
use testkit::assert_envelope;

/// An item id no stack has.
const NO_SUCH_ITEM: u64 = 987_654_321_987;

async fn create_item(stack: &Stack, admin: &str, stock: u32) -> u64 {
    let item = json!({ "name": "Flash Lamp", "price": 1999, "stock": stock });
    api::create_item(&stack.gateway, admin, &item).await
}

/// A stack, an admin's token and an item with `stock`; `None` when a stack at
/// `E2E_BASE_URL` gives no admin to `journey` (a note says so).
async fn stack_selling(journey: &str, stock: u32) -> Option<(Stack, String, u64)> {
    let stack = Stack::start().await;
    let admin = stack.admin_token(journey).await?;
    let item = create_item(&stack, &admin, stock).await;
    Some((stack, admin, item))
}

/// A buyer of this test's own (`name-<tag>@example.com`): the email and a token.
async fn buyer(stack: &Stack, name: &str) -> (String, String) {
    let email = stack.email(name);
    let registered = stack.register("Buyer", &email, "buyer-password").await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let token = api::token_of(&stack.login(&email, "buyer-password").await);
    (email, token)
}

/// The item as the public listing shows it, looked for from the last page (the newest
/// items) back.
async fn listed(stack: &Stack, item: u64) -> Value {
    let first = stack.gateway.get("/api/v1/items?per_page=100", None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let pages = first.body["total"]
        .as_u64()
        .unwrap_or(0)
        .div_ceil(100)
        .max(1);
    for page in (1..=pages).rev() {
        let path = format!("/api/v1/items?page={page}&per_page=100");
        let listing = stack.gateway.get(&path, None).await;
        let entries = listing.body["data"].as_array().cloned().unwrap_or_default();
        if let Some(entry) = entries.into_iter().find(|entry| entry["id"] == item) {
            return entry;
        }
    }
    panic!("item {item} is not in the listing");
}

async fn mysql_stock(mysql: &mut AsyncMysqlConnection, item: u64) -> u32 {
    db::schema::items::table
        .find(item)
        .select(db::schema::items::stock)
        .first(mysql)
        .await
        .unwrap()
}

async fn persisted_order(mysql: &mut AsyncMysqlConnection, order_id: &str) -> Option<(u64, u32)> {
    use db::schema::orders;
    orders::table
        .find(order_id)
        .select((orders::item_id, orders::quantity))
        .first(mysql)
        .await
        .optional()
        .unwrap()
}

#[actix_web::test]
async fn a_buyers_journey_from_registration_to_a_dead_token() {
    let Some((stack, _, item)) = stack_selling("a buyer's journey", 10).await else {
        return;
    };
    let (email, token) = buyer(&stack, "buyer").await;

    assert_eq!(listed(&stack, item).await["stock"], 10);

    let body = json!({ "quantity": 2 }).to_string().into_bytes();
    let path = format!("/api/v1/items/{item}/purchase");
    let request_id = stack.unique("e2e-journey");
    let bought = stack
        .gateway
        .send(
            "POST",
            &path,
            Some(&token),
            &[("X-Request-Id", &request_id)],
            Some(body),
        )
        .await;
    assert_eq!(bought.status, 200, "{}", bought.body);
    assert_eq!(bought.header("x-request-id"), Some(request_id.as_str()));
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
    if stack.reaches("the order and the stock in MySQL", &[Access::Mysql]) {
        let mut mysql = stack.mysql().await;
        assert_eq!(
            persisted_order(&mut mysql, &order_id).await,
            Some((item, 2))
        );
        assert_eq!(mysql_stock(&mut mysql, item).await, 8);
    }
    assert_eq!(
        stack
            .gateway
            .get(&format!("/api/v1/items/{item}"), None)
            .await
            .body["stock"],
        8
    );
    if stack.reaches("the request id in the service log", &[Access::Logs]) {
        // Polled: a stack's log directory may be filled from its output after the fact
        // (scripts/compose-test follows the containers' output into files).
        testkit::eventually(10, "the request id reaches the service log", || async {
            stack.log("purchase-service").contains(&request_id)
        })
        .await;
    }

    let me = stack.gateway.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me.body["email"], email);
    let logout = stack
        .gateway
        .post("/api/v1/auth/logout", Some(&token), &Value::Null)
        .await;
    assert_eq!(logout.body["message"], "Successfully logged out");

    // Dead at once at the instance that logged it out, and in every other instance and
    // service within REVOCATION_FEED_MAX_LAG_MS: waited for with requests that change
    // nothing (a user creating an item is refused either way), never with a purchase.
    for (service, path) in [
        ("auth-service", "/api/v1/auth/me"),
        ("purchase-service", "/api/v1/orders"),
    ] {
        testkit::eventually(10, &format!("{service} refusing the token"), || async {
            stack.gateway.get(path, Some(&token)).await.status == 401
        })
        .await;
    }
    testkit::eventually(10, "catalog-service refusing the token", || async {
        let empty = json!({});
        let create = stack.gateway.post("/api/v1/items", Some(&token), &empty);
        create.await.status == 401
    })
    .await;
    let dead = [
        stack.gateway.get("/api/v1/auth/me", Some(&token)).await,
        stack
            .gateway
            .post(&path, Some(&token), &json!({"quantity": 1}))
            .await,
        stack.gateway.get("/api/v1/orders", Some(&token)).await,
        stack
            .gateway
            .post("/api/v1/items", Some(&token), &json!({}))
            .await,
    ];
    for response in &dead {
        assert_envelope(response, 401, "UNAUTHENTICATED");
    }
    if stack.reaches("the stock unchanged in MySQL", &[Access::Mysql]) {
        assert_eq!(mysql_stock(&mut stack.mysql().await, item).await, 8);
    }
}

#[actix_web::test]
async fn an_admins_journey_create_restock_delete_and_sync_stock() {
    let Some((stack, admin, item)) = stack_selling("an admin's journey", 5).await else {
        return;
    };
    let restocked = stack
        .gateway
        .post(
            &format!("/api/v1/items/{item}/restock"),
            Some(&admin),
            &json!({"quantity": 10}),
        )
        .await;
    assert_eq!(restocked.body["stock"], 15, "{}", restocked.body);

    let (_, token) = buyer(&stack, "shopper").await;
    let path = format!("/api/v1/items/{item}/purchase");
    for _ in 0..3 {
        let bought = stack
            .gateway
            .post(&path, Some(&token), &json!({"quantity": 1}))
            .await;
        assert_eq!(bought.status, 200, "{}", bought.body);
    }
    let conservation = [Access::Mysql, Access::Redis];
    if stack.reaches(
        "the orders persisted and the stock conserved",
        &conservation,
    ) {
        let url = stack.mysql_url();
        testkit::eventually(20, "three orders persisted", || async {
            let mut mysql = AsyncMysqlConnection::establish(&url).await.unwrap();
            mysql_stock(&mut mysql, item).await == 12
        })
        .await;
        let account = stack.stock_account(item, 15).await;
        assert!(account.conserved(), "{account:?}");
        assert_eq!((account.sold, account.duplicated()), (3, 0), "{account:?}");
    }

    // Drift Redis on purpose, then let sync-stock repair it from MySQL.
    let repair = [Access::Redis, Access::Cli];
    if stack.reaches("sync-stock repairing a drifted Redis stock", &repair) {
        let stock_key = inventory::ItemKeys::new(&stack.keyspace(), item).stock();
        let mut redis = stack.redis().await;
        redis.set::<_, _, ()>(&stock_key, 999).await.unwrap();
        let synced = stack.run_cli("stock-writer", &["sync-stock", &item.to_string()]);
        let stdout = testkit::succeeded(&synced);
        assert!(stdout.contains("redis 12"), "{stdout}");
        let stock: i64 = redis.get(&stock_key).await.unwrap();
        assert_eq!(stock, 12);
    }

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
    let item_page = stack
        .gateway
        .get(&format!("/api/v1/items/{item}"), None)
        .await;
    assert_envelope(&item_page, 404, "NOT_FOUND");
    let purchase = stack
        .gateway
        .post(&path, Some(&token), &json!({"quantity": 1}))
        .await;
    assert_envelope(&purchase, 404, "NOT_FOUND");
    let create = stack
        .gateway
        .post("/api/v1/items", Some(&token), &json!({}))
        .await;
    assert_envelope(&create, 403, "FORBIDDEN");
}

#[actix_web::test]
async fn every_error_comes_in_the_envelope_even_from_the_gateway() {
    let mut stack = Stack::start().await;
    let (email, token) = buyer(&stack, "errors").await;
    let gateway = &stack.gateway;
    let huge = json!({ "name": "x".repeat(40_000) });
    let refused = [
        (
            gateway
                .post("/api/v1/auth/register", None, &json!({}))
                .await,
            422,
            "VALIDATION_FAILED",
        ),
        (
            stack.login(&email, "wrong-password").await,
            401,
            "INVALID_CREDENTIALS",
        ),
        (
            gateway.get("/api/v1/items/abc", None).await,
            422,
            "VALIDATION_FAILED",
        ),
        (
            gateway
                .get(&format!("/api/v1/items/{NO_SUCH_ITEM}"), None)
                .await,
            404,
            "NOT_FOUND",
        ),
        (
            gateway
                .post("/api/v1/items/1/purchase", None, &json!({"quantity": 1}))
                .await,
            401,
            "UNAUTHENTICATED",
        ),
        (
            gateway
                .post(
                    "/api/v1/items/1/purchase",
                    Some(&token),
                    &json!({"quantity": 0}),
                )
                .await,
            422,
            "VALIDATION_FAILED",
        ),
        (gateway.get("/nowhere", None).await, 404, "NOT_FOUND"),
        (
            gateway.post("/api/v1/auth/register", None, &huge).await,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (response, status, code) in &refused {
        assert_envelope(response, *status, code);
    }

    if !stack.reaches(
        "a service down answered 502 by the gateway",
        &[Access::Processes],
    ) {
        return;
    }
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

#[actix_web::test]
async fn a_reservation_is_paid_by_webhook_and_an_unpaid_one_expires_and_gives_its_unit_back() {
    let journey = "the reservation journey";
    let stack = Stack::start().await;
    let Some(admin) = stack.admin_token(journey).await else {
        return;
    };
    if !stack.reaches(journey, &[Access::WebhookSecret]) {
        return;
    }
    let reservable = json!({"name": "Drop", "price": 1200, "stock": 2, "payment_window_secs": 2});
    let item = api::create_item(&stack.gateway, &admin, &reservable).await;
    let (_, token) = buyer(&stack, "reserver").await;
    let buy =
        async || testkit::reserved_order_id(&api::purchase(&stack.gateway, &token, item, 1).await);

    let paid = buy().await;
    let payment = stack.pay(&paid, &stack.unique("pi"), 1200).await;
    assert_eq!(payment.status, 200, "{}", payment.body);
    assert_eq!(payment.body["status"], "paid");
    let shown = stack
        .gateway
        .get(&format!("/api/v1/orders/{paid}"), Some(&token))
        .await;
    assert_eq!(shown.body["status"], "paid", "{}", shown.body);

    let unpaid = buy().await;
    assert_eq!(listed(&stack, item).await["stock"], 0);
    let order_path = format!("/api/v1/orders/{unpaid}");
    let mut status = Value::Null;
    for _ in 0..100 {
        status = stack.gateway.get(&order_path, Some(&token)).await.body["status"].clone();
        if status == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "expired");
    assert_eq!(
        listed(&stack, item).await["stock"],
        1,
        "the unit is back on sale"
    );
    let late = stack.pay(&unpaid, &stack.unique("pi-late"), 1200).await;
    assert_envelope(&late, 409, "ORDER_EXPIRED");
}
