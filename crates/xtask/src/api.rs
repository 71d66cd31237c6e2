//! The few API calls the benchmark, the drill and `cargo xtask pay` make through the
//! gateway: an admin login (the seeded demo admin), creating the items they sell, and
//! the payment provider's signed webhook.

use anyhow::{Context, bail};
use devstack::probe;
use serde_json::{Value, json};

/// The demo admin `auth-service seed` creates (never in production).
const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "password";

#[derive(Clone)]
pub struct Admin {
    gateway_port: u16,
    token: String,
}

impl Admin {
    pub async fn login(gateway_port: u16) -> anyhow::Result<Admin> {
        let body = json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }).to_string();
        let answer = call(gateway_port, "POST", "/api/v1/auth/login", &[], &body).await?;
        let token = answer["access_token"]
            .as_str()
            .context("the login answer has no access_token")?;
        Ok(Admin {
            gateway_port,
            token: token.to_owned(),
        })
    }

    /// Creates an item on sale with `stock` units; its id.
    pub async fn create_item(&self, name: &str, stock: u64) -> anyhow::Result<u64> {
        self.create(json!({ "name": name, "price": 100, "stock": stock }))
            .await
    }

    /// Creates an item whose buyers get `window_secs` to pay (reservations); its id.
    pub async fn create_reservable_item(
        &self,
        name: &str,
        stock: u64,
        window_secs: u32,
    ) -> anyhow::Result<u64> {
        self.create(json!({ "name": name, "price": 100, "stock": stock,
            "payment_window_secs": window_secs }))
            .await
    }

    /// Creates an item with a waiting room whose sale opens in an hour (until
    /// [`Admin::open_sale_in`]); its id.
    pub async fn create_room_item(
        &self,
        name: &str,
        stock: u64,
        max_admitted: u32,
    ) -> anyhow::Result<u64> {
        let starts_at = chrono::Utc::now() + chrono::Duration::hours(1);
        self.create(json!({ "name": name, "price": 100, "stock": stock,
            "waiting_room": true, "max_admitted": max_admitted,
            "sale_starts_at": starts_at.to_rfc3339() }))
            .await
    }

    /// Moves the item's opening to `after` from now.
    pub async fn open_sale_in(&self, item: u64, after: std::time::Duration) -> anyhow::Result<()> {
        let starts_at = chrono::Utc::now() + after;
        let body = json!({ "sale_starts_at": starts_at.to_rfc3339() }).to_string();
        let authorization = format!("Bearer {}", self.token);
        call(
            self.gateway_port,
            "PATCH",
            &format!("/api/v1/items/{item}"),
            &[("Authorization", &authorization)],
            &body,
        )
        .await?;
        Ok(())
    }

    /// Adds `quantity` units to the item's stock; the answer as `"<status>"` or
    /// `"<status> <error_code>"`, `"no answer"` when none came.
    pub async fn restock(&self, item: u64, quantity: u64) -> String {
        let authorization = format!("Bearer {}", self.token);
        let answer = probe::request(
            self.gateway_port,
            "POST",
            &format!("/api/v1/items/{item}/restock"),
            &[("Authorization", &authorization)],
            Some(&json!({ "quantity": quantity }).to_string()),
        )
        .await;
        match answer {
            None => "no answer".into(),
            Some(answer) => match serde_json::from_str::<Value>(&answer.body)
                .ok()
                .and_then(|body| body["error_code"].as_str().map(str::to_owned))
            {
                Some(code) => format!("{} {code}", answer.status),
                None => answer.status.to_string(),
            },
        }
    }

    async fn create(&self, item: Value) -> anyhow::Result<u64> {
        let body = item.to_string();
        let authorization = format!("Bearer {}", self.token);
        let answer = call(
            self.gateway_port,
            "POST",
            "/api/v1/items",
            &[("Authorization", &authorization)],
            &body,
        )
        .await?;
        answer["id"]
            .as_u64()
            .with_context(|| format!("the created item has no id: {answer}"))
    }
}

/// `method` of `path` with a JSON `body`; the answer's JSON, or why there is none (no
/// answer, a status other than 2xx, not JSON).
async fn call(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Value> {
    let answer = probe::request(port, method, path, headers, Some(body))
        .await
        .with_context(|| format!("{method} {path}: no answer on port {port}"))?;
    if !(200..300).contains(&answer.status) {
        bail!(
            "{method} {path} answered {}: {}",
            answer.status,
            answer.body
        );
    }
    serde_json::from_str(&answer.body).with_context(|| format!("{method} {path}: not JSON"))
}

/// Sends the payment provider's `payment.succeeded` for `order_id`, signed now with
/// `secret` as the provider would; the gateway's answer, whatever its status.
pub async fn pay(
    gateway_port: u16,
    secret: &str,
    order_id: &str,
    payment_id: &str,
    amount: u64,
) -> anyhow::Result<probe::Answer> {
    if secret.is_empty() {
        bail!("PAYMENT_WEBHOOK_SECRET is not set (deploy/local.env sets one for local use)");
    }
    let body = json!({"event": "payment.succeeded", "order_id": order_id,
        "payment_id": payment_id, "amount": amount})
    .to_string();
    let signature =
        common::webhook_signature::sign(secret, chrono::Utc::now().timestamp(), body.as_bytes());
    let path = "/api/v1/payments/webhook";
    probe::request(
        gateway_port,
        "POST",
        path,
        &[
            ("Payment-Signature", &signature),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    )
    .await
    .with_context(|| format!("POST {path}: no answer on port {gateway_port} (is the stack up?)"))
}
