//! Reading a request body: at most `BODY_LIMIT_BYTES` (413 beyond), as a JSON object
//! (422 naming `body` otherwise). Handlers take a [`JsonBody`] and hand its
//! [`JsonObject`] to the domain's parsers.

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use common::input::JsonObject;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;

/// The largest body a service reads; registered as app data from `BODY_LIMIT_BYTES`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A request body that is a JSON object (an empty body reads as `{}`, so a missing
/// field is reported by name rather than as a malformed body).
#[derive(Debug, Clone, Default)]
pub struct JsonBody(pub JsonObject);

impl std::ops::Deref for JsonBody {
    type Target = JsonObject;

    fn deref(&self) -> &JsonObject {
        &self.0
    }
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = RawBody::from_request(req, payload);
        Box::pin(async move {
            let RawBody(body) = raw.await?;
            JsonObject::parse(&body)
                .map(JsonBody)
                .map_err(ApiError::Validation)
        })
    }
}

/// A request body read whole, up to [`BodyLimit`] (413 beyond it), for a handler that
/// needs the exact bytes (a signed webhook).
#[derive(Debug, Clone, Default)]
pub struct RawBody(pub Vec<u8>);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(16 * 1024, |limit| limit.0);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|length| length > limit) {
                return Err(ApiError::PayloadTooLarge { limit_bytes: limit });
            }
            let mut body = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| {
                    ApiError::validation("body", "The request body could not be read.")
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit_bytes: limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(RawBody(body))
        })
    }
}

/// `?page=&per_page=` of a query string; a bad value is a 422 naming it.
pub fn pagination(
    query: &std::collections::HashMap<String, String>,
) -> Result<common::input::Pagination, ApiError> {
    common::input::Pagination::from_query(query).map_err(ApiError::Validation)
}
