//! The API calls the end-to-end tests make through a gateway over and over: signing in,
//! putting an item on sale and buying, each with the check every caller wants of it, so
//! that a test reads as the journey it follows rather than as the requests it sends.
//! They take the gateway's client, so they serve a [`crate::Stack`] and a
//! [`crate::LocalStack`] alike.

use serde_json::{Value, json};
use testkit::{Client, Response};

/// `POST /api/v1/auth/register`.
pub async fn register(gateway: &Client, name: &str, email: &str, password: &str) -> Response {
    let body = json!({ "name": name, "email": email, "password": password });
    gateway.post("/api/v1/auth/register", None, &body).await
}

/// The token of a registration answered 201.
pub fn registered_token(registered: &Response) -> String {
    assert_eq!(registered.status, 201, "{}", registered.body);
    registered.body["token"].as_str().expect("token").to_owned()
}

/// `POST /api/v1/auth/login`.
pub async fn login(gateway: &Client, email: &str, password: &str) -> Response {
    let body = json!({ "email": email, "password": password });
    gateway.post("/api/v1/auth/login", None, &body).await
}

/// The access token of a login answered 200.
pub fn token_of(login: &Response) -> String {
    assert_eq!(login.status, 200, "{}", login.body);
    login.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// `POST /api/v1/items` as `admin`.
pub async fn post_item(gateway: &Client, admin: &str, item: &Value) -> Response {
    gateway.post("/api/v1/items", Some(admin), item).await
}

/// The id of an item `admin` created (201).
pub async fn create_item(gateway: &Client, admin: &str, item: &Value) -> u64 {
    let created = post_item(gateway, admin, item).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_u64().expect("item id")
}

/// `POST /api/v1/items/{item}/purchase` of `quantity`, as the holder of `token`.
pub async fn purchase(gateway: &Client, token: &str, item: u64, quantity: u32) -> Response {
    let path = format!("/api/v1/items/{item}/purchase");
    gateway
        .post(&path, Some(token), &json!({ "quantity": quantity }))
        .await
}

/// `POST /api/v1/items/{item}/queue`: joins the item's waiting room as the holder of
/// `token`.
pub async fn join_queue(gateway: &Client, token: &str, item: u64) -> Response {
    let path = format!("/api/v1/items/{item}/queue");
    gateway.post(&path, Some(token), &Value::Null).await
}

/// The payment provider's `payment.succeeded` for `order_id`, signed now with `secret`.
pub async fn pay(
    gateway: &Client,
    secret: &str,
    order_id: &str,
    payment_id: &str,
    amount: u64,
) -> Response {
    let body = json!({"event": "payment.succeeded", "order_id": order_id,
        "payment_id": payment_id, "amount": amount})
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    let signature = common::webhook_signature::sign(secret, now, body.as_bytes());
    gateway
        .send(
            "POST",
            "/api/v1/payments/webhook",
            None,
            &[
                ("Payment-Signature", &signature),
                ("Content-Type", "application/json"),
            ],
            Some(body.into_bytes()),
        )
        .await
}
