//! What every service's actix app shares: extractor error handlers that answer in the
//! JSON envelope, the 404 for unknown routes, and the operational endpoints
//! `/healthz`, `/readyz` and `/metrics`.

use crate::error::{ApiError, ValidationErrors};
use crate::input::BodyLimit;
use crate::metrics::Metrics;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::future::BoxFuture;
use serde_json::json;
use std::sync::Arc;

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The dependencies `/readyz` checks, by name.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((
            name,
            Arc::new(move || Box::pin(check()) as BoxFuture<'static, _>),
        ));
        self
    }

    pub fn with_redis(self, pool: crate::redis::RedisPool) -> Self {
        self.with_check("redis", move || {
            let pool = pool.clone();
            async move {
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        })
    }
}

/// Registers the shared app data, handlers and routes on a service's app.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(BodyLimit(body_limit))
        .app_data(web::PathConfig::default().error_handler(|error, _| {
            ApiError::Validation(ValidationErrors::single(
                "id",
                format!("The id must be a positive integer ({error})."),
            ))
            .into()
        }))
        .app_data(web::QueryConfig::default().error_handler(|error, _| {
            ApiError::validation("query", format!("The query string is invalid: {error}.")).into()
        }))
        .app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                .error_handler(|error, _| {
                    ApiError::validation("body", format!("The request body is invalid: {error}."))
                        .into()
                }),
        )
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .default_service(web::to(not_found));
}

async fn not_found(_: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(readiness: Option<web::Data<Readiness>>) -> HttpResponse {
    let mut ready = true;
    let mut results = serde_json::Map::new();
    for (name, check) in readiness.iter().flat_map(|r| r.checks.iter()) {
        let outcome = match tokio::time::timeout(std::time::Duration::from_secs(2), check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err("timed out".into()),
        };
        let status = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(error) => {
                ready = false;
                tracing::warn!(dependency = name, %error, "readiness check failed");
                format!("failing: {error}")
            }
        };
        results.insert((*name).to_owned(), status.into());
    }
    let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": results });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(metrics: Option<web::Data<Metrics>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.map(|m| m.encode()).unwrap_or_default())
}
