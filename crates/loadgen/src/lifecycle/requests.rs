//! The lifecycle load's HTTP: each request a buyer sends (purchase, the provider's
//! payment webhook, cancel, look-up) and what it makes of the answer ([`Answer`]): its
//! status, its outcome as counted, whether it was a clear yes or no. Apart from the
//! buyers' loops so that those read as what a buyer does, not how it is sent.

use super::Buyers;
use awc::http::Method;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longer than the gateway's read timeout (30 s): the gateway answers first, so a
/// timeout here means nobody answered.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

/// One answer as the load sees it.
pub(super) struct Answer {
    pub(super) status: u16,
    body: Value,
    /// `"200"`, `"409 INSUFFICIENT_STOCK"`, `"connection error"`, `"timeout"`.
    pub(super) outcome: String,
}

impl Answer {
    pub(super) fn order_id(&self) -> Option<String> {
        let order = if self.body["order"].is_object() {
            &self.body["order"]
        } else {
            &self.body
        };
        order["id"].as_str().map(str::to_owned)
    }

    /// A clear yes or no (not a 5xx, not unanswered).
    pub(super) fn decided(&self) -> bool {
        self.status != 0 && self.status < 500
    }
}

async fn send(request: awc::ClientRequest, body: Option<String>) -> Answer {
    let sent = match body {
        Some(body) => {
            request
                .insert_header(("Content-Type", "application/json"))
                .send_body(body)
                .await
        }
        None => request.send().await,
    };
    match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let bytes = response.body().limit(1 << 20).await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let outcome = match body["error_code"].as_str() {
                Some(code) => format!("{status} {code}"),
                None => status.to_string(),
            };
            Answer {
                status,
                body,
                outcome,
            }
        }
        Err(error) => Answer {
            status: 0,
            body: Value::Null,
            outcome: match error {
                awc::error::SendRequestError::Timeout => "timeout".into(),
                _ => "connection error".into(),
            },
        },
    }
}

impl Buyers {
    /// A request to `path` under the API as the buyer of `token`.
    fn as_buyer(&self, method: Method, path: &str, token: &str) -> awc::ClientRequest {
        self.client
            .request(method, format!("{}/api/v1/{path}", self.run.url))
            .insert_header(("Authorization", format!("Bearer {token}")))
    }

    pub(super) async fn purchase(&self, item: u64, token: &str, key: &str) -> Answer {
        let request = self
            .as_buyer(Method::POST, &format!("items/{item}/purchase"), token)
            .insert_header(("Idempotency-Key", key));
        send(request, Some(json!({ "quantity": 1 }).to_string())).await
    }

    pub(super) async fn pay(&self, order_id: &str) -> Answer {
        let body = json!({"event": "payment.succeeded", "order_id": order_id,
            "payment_id": format!("pay-{order_id}"), "amount": self.run.price})
        .to_string();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = common::webhook_signature::sign(
            &self.run.webhook_secret,
            i64::try_from(now).unwrap_or(i64::MAX),
            body.as_bytes(),
        );
        let request = self
            .client
            .post(format!("{}/api/v1/payments/webhook", self.run.url))
            .insert_header(("Payment-Signature", signature));
        send(request, Some(body)).await
    }

    pub(super) async fn cancel(&self, order_id: &str, token: &str) -> Answer {
        let path = format!("orders/{order_id}/cancel");
        send(self.as_buyer(Method::POST, &path, token), None).await
    }

    pub(super) async fn lookup(&self, order_id: &str, token: &str) -> Answer {
        let path = format!("orders/{order_id}");
        send(self.as_buyer(Method::GET, &path, token), None).await
    }
}

pub(super) fn client(connections: usize) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(connections.max(1)))
        .timeout(CLIENT_TIMEOUT)
        .finish()
}
