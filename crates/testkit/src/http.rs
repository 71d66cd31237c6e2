//! A small JSON client over awc for tests: every call returns status, headers and the
//! body parsed as JSON (or `Value::Null` when it is not JSON).

use awc::http::header::HeaderMap;
use serde_json::Value;

/// Asserts the JSON error envelope: this status, this `error_code`, and a message.
pub fn assert_envelope(response: &Response, status: u16, error_code: &str) {
    assert_eq!(response.status, status, "body: {}", response.body);
    assert_eq!(
        response.body["error_code"], error_code,
        "body: {}",
        response.body
    );
    assert!(
        response.body["message"].is_string(),
        "body: {}",
        response.body
    );
}

/// The field names of a 422 answer's `errors`.
pub fn error_fields(response: &Response) -> Vec<String> {
    response.body["errors"]
        .as_object()
        .map(|errors| errors.keys().cloned().collect())
        .unwrap_or_default()
}

/// The order id of a purchase answered 200 with a reservation (status `reserved`).
pub fn reserved_order_id(response: &Response) -> String {
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.body["order"]["status"], "reserved",
        "{}",
        response.body
    );
    response.body["order"]["id"]
        .as_str()
        .expect("order id")
        .to_owned()
}

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    inner: awc::Client,
}

impl Client {
    pub fn new(base: impl Into<String>) -> Self {
        Client {
            base: base.into(),
            inner: awc::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .finish(),
        }
    }

    /// Sends a request; `body` is sent verbatim (so tests can send malformed JSON).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.inner.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let sent = match body {
            Some(body) => {
                request
                    .insert_header(("Content-Type", "application/json"))
                    .send_body(body)
                    .await
            }
            None => request.send().await,
        };
        let mut response = sent.expect("request sent");
        let raw = response
            .body()
            .limit(16 * 1024 * 1024)
            .await
            .expect("response body")
            .to_vec();
        Response {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
        }
    }

    /// The status of a GET, or `None` when nothing answers (for readiness polling).
    pub async fn try_get_status(&self, path: &str) -> Option<u16> {
        let response = self
            .inner
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send("GET", path, token, &[], None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send(
            "POST",
            path,
            token,
            &[],
            Some(body.to_string().into_bytes()),
        )
        .await
    }
}
