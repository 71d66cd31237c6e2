//! The few API calls the benchmark and the drill make through the gateway: an admin
//! login (the seeded demo admin) and creating the items they sell.

use anyhow::{Context, bail};
use devstack::probe;
use serde_json::{Value, json};

/// The demo admin `auth-service seed` creates (never in production).
const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "password";

pub struct Admin {
    gateway_port: u16,
    token: String,
}

impl Admin {
    pub async fn login(gateway_port: u16) -> anyhow::Result<Admin> {
        let body = json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }).to_string();
        let answer = call(gateway_port, "/api/v1/auth/login", &[], &body).await?;
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
        let body = json!({ "name": name, "price": 100, "stock": stock }).to_string();
        let authorization = format!("Bearer {}", self.token);
        let answer = call(
            self.gateway_port,
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

async fn call(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Value> {
    let answer = probe::request(port, "POST", path, headers, Some(body))
        .await
        .with_context(|| format!("POST {path}: no answer on port {port}"))?;
    if !(200..300).contains(&answer.status) {
        bail!("POST {path} answered {}: {}", answer.status, answer.body);
    }
    serde_json::from_str(&answer.body).with_context(|| format!("POST {path}: not JSON"))
}
