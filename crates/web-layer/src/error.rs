//! The one error type every service answers with, and the one place that turns it into
//! the JSON envelope and status code of the HTTP contract:
//! `{"message": "...", "error_code": "UPPER_SNAKE", ...details}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use common::validation::ValidationErrors;
use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Unauthenticated.")]
    Unauthenticated,
    #[error("These credentials do not match our records.")]
    InvalidCredentials,
    #[error("This action is unauthorized.")]
    Forbidden,
    #[error("Resource not found.")]
    NotFound,
    /// A known path asked with a method it does not serve; `allowed` is the `Allow` header.
    #[error("The method is not allowed for this resource.")]
    MethodNotAllowed { allowed: String },
    #[error("The given data was invalid.")]
    Validation(ValidationErrors),
    #[error("Insufficient stock.")]
    InsufficientStock { current_stock: u64 },
    #[error("Purchase limit exceeded for this item.")]
    PurchaseLimitExceeded { limit: u64, already_bought: u64 },
    #[error("Too many requests. Please try again later.")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("The system is busy. Please try again later.")]
    SystemBusy { retry_after_secs: u64 },
    #[error("The Idempotency-Key was already used for a different request; nothing was changed.")]
    IdempotencyKeyReused,
    #[error(
        "Whether this change went through is not known yet. Look up the order before trying anything else; retrying the same request (a purchase with the same Idempotency-Key) is always safe."
    )]
    OutcomeUnknown { order_id: String },
    #[error("The sale of this item has not started yet.")]
    SaleNotStarted { starts_at: String },
    #[error("The sale of this item has ended.")]
    SaleEnded { ended_at: String },
    #[error("This item sells without a waiting room; buy it directly.")]
    NoWaitingRoom,
    /// A waiting-room item bought without an open pass; `state` is the buyer's ticket's
    /// (`None`: they have not joined).
    #[error("This item sells through its waiting room: join it and buy once admitted.")]
    NotAdmitted { state: Option<&'static str> },
    #[error("The order is not reserved, so it cannot be paid or cancelled.")]
    OrderNotReserved { status: String },
    #[error("The order's reservation expired before it was paid.")]
    OrderExpired,
    #[error("The request body is too large.")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("Internal server error.")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(ValidationErrors::single(field, message))
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    /// 503 `SYSTEM_BUSY`, retry in a second: a dependency cannot serve the request now.
    /// Every such answer is built here, and logs what failed.
    pub fn busy(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "{what}");
        ApiError::SystemBusy {
            retry_after_secs: 1,
        }
    }

    pub fn error_code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::InvalidCredentials => "INVALID_CREDENTIALS",
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::NotFound => "NOT_FOUND",
            ApiError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            ApiError::Validation(_) => "VALIDATION_FAILED",
            ApiError::InsufficientStock { .. } => "INSUFFICIENT_STOCK",
            ApiError::PurchaseLimitExceeded { .. } => "PURCHASE_LIMIT_EXCEEDED",
            ApiError::TooManyRequests { .. } => "TOO_MANY_REQUESTS",
            ApiError::SystemBusy { .. } => "SYSTEM_BUSY",
            ApiError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ApiError::OutcomeUnknown { .. } => "OUTCOME_UNKNOWN",
            ApiError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ApiError::SaleNotStarted { .. } => "SALE_NOT_STARTED",
            ApiError::SaleEnded { .. } => "SALE_ENDED",
            ApiError::NoWaitingRoom => "NO_WAITING_ROOM",
            ApiError::NotAdmitted { .. } => "NOT_ADMITTED",
            ApiError::OrderNotReserved { .. } => "ORDER_NOT_RESERVED",
            ApiError::OrderExpired => "ORDER_EXPIRED",
            ApiError::Internal(_) => "INTERNAL_ERROR",
        }
    }

    fn details(&self) -> Map<String, Value> {
        let details = match self {
            ApiError::Validation(errors) => json!({ "errors": errors.as_map() }),
            ApiError::InsufficientStock { current_stock } => {
                json!({ "current_stock": current_stock })
            }
            ApiError::PurchaseLimitExceeded {
                limit,
                already_bought,
            } => json!({ "limit": limit, "already_bought": already_bought }),
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::SystemBusy { retry_after_secs } => {
                json!({ "retry_after": retry_after_secs })
            }
            ApiError::PayloadTooLarge { limit_bytes } => json!({ "limit_bytes": limit_bytes }),
            ApiError::OutcomeUnknown { order_id } => json!({ "order_id": order_id }),
            ApiError::SaleNotStarted { starts_at } => json!({ "starts_at": starts_at }),
            ApiError::SaleEnded { ended_at } => json!({ "ended_at": ended_at }),
            ApiError::OrderNotReserved { status } => json!({ "status": status }),
            ApiError::NotAdmitted { state } => json!({ "state": state }),
            _ => json!({}),
        };
        match details {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::SystemBusy { retry_after_secs } => Some((*retry_after_secs).max(1)),
            _ => None,
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::Internal(error)
    }
}

/// A Redis failure on a request path means the hot store is unreachable: the client may
/// retry shortly, so it is `SYSTEM_BUSY`, not an internal error.
impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        ApiError::busy("redis command failed", &error)
    }
}

impl From<deadpool_redis::PoolError> for ApiError {
    fn from(error: deadpool_redis::PoolError) -> Self {
        ApiError::busy("no redis connection available", &error)
    }
}

/// MySQL out of reach is `SYSTEM_BUSY`; a query that fails is a defect.
impl From<db::Error> for ApiError {
    fn from(error: db::Error) -> Self {
        match error {
            db::Error::Unavailable(error) => {
                ApiError::busy("no MySQL connection available", &error)
            }
            db::Error::Query(error) => ApiError::internal(error),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        ApiError::internal(error)
    }
}

/// An inventory failure is transient from a client's point of view (busy, retry),
/// except a reply nobody expected, which is a defect: 500, with the reply logged.
impl From<inventory::Error> for ApiError {
    fn from(error: inventory::Error) -> Self {
        match error {
            inventory::Error::LockBusy { key, attempts } => {
                ApiError::busy("lock retries exhausted", &format!("{key} after {attempts}"))
            }
            inventory::Error::Redis(error) => error.into(),
            inventory::Error::Pool(error) => error.into(),
            error @ inventory::Error::UnexpectedReply(_) => ApiError::internal(error),
            inventory::Error::NotReplicated(error) => {
                ApiError::busy("a change did not reach enough Redis replicas", &error)
            }
            inventory::Error::StepUnsettled { order_id } => ApiError::OutcomeUnknown { order_id },
        }
    }
}

/// Every refused token is the same 401 (why is logged); a revocation list out of reach
/// is `SYSTEM_BUSY`.
impl From<common::auth::AuthError> for ApiError {
    fn from(error: common::auth::AuthError) -> Self {
        match error {
            common::auth::AuthError::Unauthenticated => ApiError::Unauthenticated,
            common::auth::AuthError::Redis(error) => error.into(),
            common::auth::AuthError::NotReplicated(error) => {
                ApiError::busy("a revocation did not reach enough replicas", &error)
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Validation(_) | ApiError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::InsufficientStock { .. }
            | ApiError::PurchaseLimitExceeded { .. }
            | ApiError::SaleNotStarted { .. }
            | ApiError::SaleEnded { .. }
            | ApiError::NoWaitingRoom
            | ApiError::NotAdmitted { .. }
            | ApiError::OrderNotReserved { .. }
            | ApiError::OrderExpired => StatusCode::CONFLICT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::SystemBusy { .. } | ApiError::OutcomeUnknown { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(source) = self {
            tracing::error!(error = ?source, "request failed");
        }
        let mut body = Map::new();
        body.insert("message".into(), Value::String(self.to_string()));
        body.insert("error_code".into(), Value::String(self.error_code().into()));
        body.extend(self.details());

        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        if matches!(self, ApiError::Unauthenticated) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::MethodNotAllowed { allowed } = self {
            response.insert_header((header::ALLOW, allowed.as_str()));
        }
        response.json(Value::Object(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(error: ApiError) -> (StatusCode, Value, Option<String>) {
        let response = error.error_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = to_bytes(response.into_body()).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), retry_after)
    }

    #[actix_web::test]
    async fn fixed_answers_keep_the_reference_status_and_message() {
        for (error, status, code, message) in [
            (
                ApiError::Unauthenticated,
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Unauthenticated.",
            ),
            (
                ApiError::InvalidCredentials,
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
                "These credentials do not match our records.",
            ),
        ] {
            let (answered, body, _) = body_of(error).await;
            assert_eq!(answered, status, "{code}");
            assert_eq!(body["error_code"], code);
            assert_eq!(body["message"], message);
        }
    }

    #[actix_web::test]
    async fn validation_lists_messages_per_field() {
        let mut errors = ValidationErrors::default();
        errors.add("email", "The email field is required.");
        let (status, body, _) = body_of(ApiError::Validation(errors)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"]["email"][0], "The email field is required.");
    }

    #[actix_web::test]
    async fn busy_answers_carry_retry_after() {
        let (status, body, retry_after) = body_of(ApiError::SystemBusy {
            retry_after_secs: 3,
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error_code"], "SYSTEM_BUSY");
        assert_eq!(retry_after.as_deref(), Some("3"));
    }

    #[actix_web::test]
    async fn internal_errors_leak_nothing() {
        let (status, body, _) = body_of(ApiError::internal(anyhow::anyhow!(
            "password=hunter2 at db"
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("hunter2"));
    }

    #[actix_web::test]
    async fn an_unknown_outcome_names_the_order_and_invites_no_blind_retry() {
        let (status, body, retry_after) = body_of(ApiError::OutcomeUnknown {
            order_id: "0192-ab".into(),
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error_code"], "OUTCOME_UNKNOWN");
        assert_eq!(body["order_id"], "0192-ab");
        assert_eq!(retry_after, None);
    }

    #[actix_web::test]
    async fn method_not_allowed_lists_the_allowed_methods() {
        let response = ApiError::MethodNotAllowed {
            allowed: "GET, POST".into(),
        }
        .error_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers().get(header::ALLOW).unwrap(), "GET, POST");
        let bytes = to_bytes(response.into_body()).await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error_code"], "METHOD_NOT_ALLOWED");
        assert!(body["message"].is_string());
    }

    #[actix_web::test]
    async fn insufficient_stock_reports_current_stock() {
        let (status, body, _) = body_of(ApiError::InsufficientStock { current_stock: 4 }).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["current_stock"], 4);
    }
}
