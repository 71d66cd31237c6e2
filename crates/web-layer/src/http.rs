//! What every service's actix app shares: extractor error handlers that answer in the
//! JSON envelope, the 404 for unknown routes, the 405 (with `Allow`) for a known route
//! asked with another method, and the operational endpoints `/healthz`, `/readyz` and
//! `/metrics` (which runs the readiness checks too, for `backend_up`); and the server
//! itself, which shares its port and stops on SIGTERM/SIGINT as [`crate::handover`]
//! says.
//!
//! A route is registered as a `web::resource` holding its methods, not with
//! `.route(path, method)`: that form guards the whole path by the method, so any other
//! method would fall through to the 404.

use crate::error::ApiError;
use crate::input::BodyLimit;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use common::config::AppSettings;
use common::metrics::Metrics;
use common::validation::ValidationErrors;
use futures_util::future::BoxFuture;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one readiness check may take before it counts as failing.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a service keeps an idle keep-alive connection open. Longer than the
/// gateway's upstream `keepalive_timeout` (60 s, deploy/nginx/gateway.conf.template), so
/// the gateway always closes an idle connection first and never sends a request on one
/// the service is closing (a test below checks the relation).
pub const KEEP_ALIVE: Duration = Duration::from_secs(75);

/// How long the gateway waits for a service's answer once it has sent the request
/// (`proxy_read_timeout`, deploy/nginx/gateway.conf.template; a test below holds the two
/// equal). Past it the gateway answers itself; a service answers first (purchase-service
/// refuses to start with settings under which a purchase could take longer).
pub const GATEWAY_READ_TIMEOUT: Duration = Duration::from_secs(30);

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The dependencies `/readyz` checks, by name, and whether the service is shutting down.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
    draining: Arc<AtomicBool>,
}

impl Readiness {
    /// From now on `/readyz` answers 503 with a failing `draining` check.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

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

    /// Runs every check at once, each bounded by [`CHECK_TIMEOUT`].
    pub async fn check_all(&self) -> Vec<(&'static str, Result<(), String>)> {
        futures_util::future::join_all(self.checks.iter().map(|(name, check)| async move {
            let outcome = tokio::time::timeout(CHECK_TIMEOUT, check())
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
            (*name, outcome)
        }))
        .await
    }

    pub fn with_redis(self, pool: common::redis::RedisClient) -> Self {
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

/// Binds `APP_HOST:APP_PORT` (port 0 picks a free one) and builds a service's HTTP
/// server: the request-observing middleware, metrics, readiness and the shared routes,
/// plus what `service` registers (its state and routes). Returns the bound port.
pub fn serve<F>(
    app: &AppSettings,
    metrics: Metrics,
    readiness: Readiness,
    service: F,
) -> std::io::Result<(u16, Server)>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let listener = crate::handover::bind_shared(&app.host, app.port)?;
    let port = listener.local_addr()?.port();
    let listening = listener.try_clone()?;
    let metrics = web::Data::new(metrics);
    let draining = readiness.clone();
    let readiness = web::Data::new(readiness);
    let body_limit = app.body_limit_bytes;
    let trusted_proxies = app.trusted_proxies.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(method_not_allowed_envelope))
            .wrap(from_fn(crate::telemetry::observe))
            .wrap(from_fn(crate::handover::close_while_draining))
            .app_data(metrics.clone())
            .app_data(readiness.clone())
            .app_data(trusted_proxies.clone())
            .configure(service.clone())
            .configure(|cfg| configure(cfg, body_limit))
    })
    .keep_alive(KEEP_ALIVE)
    .shutdown_timeout(app.shutdown_timeout_secs)
    // Signals are handled by `stop_after_draining`: actix would stop answering open
    // connections at once.
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(crate::handover::stop_after_draining(
        server.handle(),
        listening,
        draining,
        Duration::from_secs(app.shutdown_drain_secs),
        Duration::from_secs(app.shutdown_timeout_secs),
    ));
    tracing::info!(port, service = %app.name, "listening");
    Ok((port, server))
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
        .service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)))
        .service(web::resource("/metrics").route(web::get().to(metrics)))
        .default_service(web::to(not_found));
}

/// actix answers a resource asked with a method it has no route for by a bare 405 that
/// lists the resource's methods in `Allow`; this gives it the JSON envelope, same `Allow`.
async fn method_not_allowed_envelope(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let response = next.call(request).await?;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return Ok(response.map_into_left_body());
    }
    let allowed = response
        .headers()
        .get(header::ALLOW)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (request, _) = response.into_parts();
    let answer = ApiError::MethodNotAllowed { allowed }.error_response();
    Ok(ServiceResponse::new(request, answer).map_into_right_body())
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
    let outcomes = match &readiness {
        Some(readiness) => readiness.check_all().await,
        None => Vec::new(),
    };
    for (name, outcome) in outcomes {
        let status = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(error) => {
                ready = false;
                tracing::warn!(dependency = name, %error, "readiness check failed");
                format!("failing: {error}")
            }
        };
        results.insert(name.to_owned(), status.into());
    }
    if readiness.as_ref().is_some_and(|r| r.is_draining()) {
        ready = false;
        results.insert("draining".to_owned(), "failing: shutting down".into());
    }
    // The pid tells instances sharing a port apart (a rolling restart waits for its own).
    let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": results,
        "pid": std::process::id() });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The registry, with `backend_up` set from the readiness checks run for this scrape.
async fn metrics(
    metrics: Option<web::Data<Metrics>>,
    readiness: Option<web::Data<Readiness>>,
) -> HttpResponse {
    if let (Some(metrics), Some(readiness)) = (&metrics, &readiness) {
        for (name, outcome) in readiness.check_all().await {
            metrics.set_backend_up(name, outcome.is_ok());
        }
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.map(|m| m.encode()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::{TestRequest, call_service, init_service, read_body_json};
    use serde_json::Value;

    async fn answer(method: &str, path: &str) -> (StatusCode, Option<String>, Value) {
        let app = init_service(
            App::new()
                .wrap(from_fn(method_not_allowed_envelope))
                .service(
                    web::resource("/things")
                        .route(web::get().to(HttpResponse::Ok))
                        .route(web::post().to(HttpResponse::Created)),
                )
                .configure(|cfg| configure(cfg, 1024)),
        )
        .await;
        let request = TestRequest::default()
            .method(method.parse().unwrap())
            .uri(path)
            .to_request();
        let response = call_service(&app, request).await;
        let status = response.status();
        let allow = response
            .headers()
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap().to_owned());
        (status, allow, read_body_json(response).await)
    }

    #[actix_web::test]
    async fn a_known_path_with_another_method_is_405_with_allow_in_the_envelope() {
        for (method, path, allowed) in [
            ("PUT", "/things", "GET, POST"),
            ("QUERY", "/things", "GET, POST"),
            ("DELETE", "/healthz", "GET"),
            ("POST", "/metrics", "GET"),
        ] {
            let (status, allow, body) = answer(method, path).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(allow.as_deref(), Some(allowed), "{method} {path}");
            assert_eq!(body["error_code"], "METHOD_NOT_ALLOWED");
            assert!(body["message"].is_string());
        }
    }

    #[actix_web::test]
    async fn a_scrape_says_which_backends_pass_their_checks() {
        let readiness = Readiness::default()
            .with_check("redis", || async { Ok(()) })
            .with_check("rabbitmq", || async { Err("not connected".to_owned()) });
        let app = init_service(
            App::new()
                .app_data(web::Data::new(Metrics::new("test-service")))
                .app_data(web::Data::new(readiness))
                .configure(|cfg| configure(cfg, 1024)),
        )
        .await;
        let response = call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = actix_web::test::read_body(response).await;
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("backend=\"redis\"} 1"), "{text}");
        assert!(text.contains("backend=\"rabbitmq\"} 0"), "{text}");
    }

    /// Each `upstream` block's `keepalive_timeout` in the gateway's template, in seconds.
    fn gateway_upstream_keepalive_timeouts() -> Vec<(String, u64)> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/nginx/gateway.conf.template"
        );
        let template = std::fs::read_to_string(path).expect("the gateway template");
        let mut timeouts = Vec::new();
        let mut upstream = None;
        for line in template.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("upstream ") {
                upstream = Some(name.trim_end_matches(['{', ' ']).to_owned());
            } else if line == "}" {
                upstream = None;
            } else if let (Some(name), Some(value)) =
                (&upstream, line.strip_prefix("keepalive_timeout "))
            {
                let seconds = value.trim_end_matches(';').trim_end_matches('s');
                timeouts.push((name.clone(), seconds.parse().expect("seconds")));
            }
        }
        timeouts
    }

    #[test]
    fn the_gateway_waits_for_an_answer_as_long_as_the_services_are_told() {
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/nginx/gateway.conf.template"
        ))
        .expect("the gateway template");
        let timeouts: Vec<&str> = template
            .lines()
            .map(str::trim)
            .filter_map(|line| line.strip_prefix("proxy_read_timeout "))
            .collect();
        assert_eq!(
            timeouts,
            [format!("{}s;", GATEWAY_READ_TIMEOUT.as_secs())],
            "one proxy_read_timeout, equal to GATEWAY_READ_TIMEOUT"
        );
    }

    #[test]
    fn the_gateway_closes_idle_connections_before_the_services_do() {
        let timeouts = gateway_upstream_keepalive_timeouts();
        let names: Vec<&str> = timeouts.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            ["auth_service", "catalog_service", "purchase_service"],
            "every upstream states its keepalive_timeout"
        );
        for (upstream, seconds) in timeouts {
            assert!(
                Duration::from_secs(seconds) + Duration::from_secs(5) <= KEEP_ALIVE,
                "{upstream}: keepalive_timeout {seconds}s must stay well below the services' {KEEP_ALIVE:?}"
            );
        }
    }

    #[actix_web::test]
    async fn a_draining_service_is_not_ready_but_still_serves() {
        let readiness = Readiness::default().with_check("redis", || async { Ok(()) });
        let app = init_service(
            App::new()
                .app_data(web::Data::new(readiness.clone()))
                .configure(|cfg| configure(cfg, 1024)),
        )
        .await;
        let ready = call_service(&app, TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(ready.status(), StatusCode::OK);

        readiness.start_draining();
        let draining = call_service(&app, TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(draining.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = read_body_json(draining).await;
        assert_eq!(body["checks"]["draining"], "failing: shutting down");
        assert_eq!(body["checks"]["redis"], "ok");
        let healthz = call_service(&app, TestRequest::get().uri("/healthz").to_request()).await;
        assert_eq!(healthz.status(), StatusCode::OK, "it still serves");
    }

    #[actix_web::test]
    async fn an_unknown_path_stays_404_whatever_the_method() {
        for method in ["GET", "PUT", "QUERY"] {
            let (status, allow, body) = answer(method, "/nothing/here").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
            assert_eq!(allow, None);
            assert_eq!(body["error_code"], "NOT_FOUND");
        }
    }
}
