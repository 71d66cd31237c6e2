use crate::helpers::{assert_envelope, spawn_app, spawn_app_with};
use serde_json::json;

#[actix_web::test]
async fn register_creates_a_user_with_a_hashed_password_and_a_working_token() {
    let app = spawn_app().await;
    let response = app
        .register("Alice", "Alice@Example.com", "password123")
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    let user = &response.body["user"];
    assert_eq!(user["name"], "Alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["role"], "user");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    assert_eq!(response.body["token_type"], "bearer");
    assert_eq!(response.body["expires_in"], 3600);

    let hash = app.stored_hash("alice@example.com").await;
    assert!(hash.starts_with("$2b$") && !hash.contains("password123"));

    let token = response.body["token"].as_str().unwrap();
    let me = app.me(token).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], "alice@example.com");
    assert_eq!(me.body["id"], user["id"]);
    assert!(me.body["created_at"].is_string());
}

#[actix_web::test]
async fn duplicate_email_is_422_naming_the_email_as_laravel_does_and_adds_no_row() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("A", "dup@example.com", "password123")
            .await
            .status,
        201
    );
    // Clients written for the Laravel API read `errors.email`.
    let again = app.register("B", "DUP@example.com", "password456").await;
    assert_email_taken(&again);
    assert_eq!(app.count_users("dup@example.com").await, 1);
}

/// 422 `VALIDATION_FAILED` with `errors.email: ["The email has already been taken."]`.
fn assert_email_taken(response: &testkit::Response) {
    assert_envelope(response, 422, "VALIDATION_FAILED");
    assert_eq!(
        response.body["errors"],
        json!({ "email": ["The email has already been taken."] }),
        "{}",
        response.body
    );
}

#[actix_web::test]
async fn racing_registrations_of_one_email_give_exactly_one_201() {
    let app = spawn_app_with(|s| s.auth.register_max_per_address = 100).await;
    let passwords: Vec<String> = (0..12).map(|i| format!("password{i:03}")).collect();
    let attempts = passwords
        .iter()
        .map(|password| app.register("Racer", "race@example.com", password));
    let responses = futures_util::future::join_all(attempts).await;
    let created = responses.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1);
    for refused in responses.iter().filter(|r| r.status != 201) {
        assert_email_taken(refused);
    }
    assert_eq!(app.count_users("race@example.com").await, 1);
}

#[actix_web::test]
async fn invalid_fields_are_named() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), vec!["email", "name", "password"]),
        (
            json!({"name": "", "email": "a@example.com", "password": "password123"}),
            vec!["name"],
        ),
        (
            json!({"name": "x".repeat(256), "email": "a@example.com", "password": "password123"}),
            vec!["name"],
        ),
        (
            json!({"name": "A", "email": "not-an-email", "password": "password123"}),
            vec!["email"],
        ),
        (
            json!({"name": "A", "email": "a@example.com", "password": "short"}),
            vec!["password"],
        ),
        (
            json!({"name": "A", "email": "a@example.com", "password": "p".repeat(73)}),
            vec!["password"],
        ),
        (
            json!({"name": 12, "email": ["a"], "password": true}),
            vec!["email", "name", "password"],
        ),
        (
            json!({"name": "A", "email": "a@example.com", "password": "password123", "role": "admin"}),
            vec!["role"],
        ),
        (
            json!({"name": "A\u{7}", "email": "a@example.com", "password": "password123"}),
            vec!["name"],
        ),
    ];
    for (body, fields) in cases {
        let response = app.client.post("/api/v1/auth/register", None, &body).await;
        assert_envelope(&response, 422, "VALIDATION_FAILED");
        let errors = response.body["errors"].as_object().expect("errors");
        let named: Vec<_> = errors.keys().map(String::as_str).collect();
        assert_eq!(named, fields, "for {body}");
    }
    assert_eq!(app.count_users("a@example.com").await, 0);
}

#[actix_web::test]
async fn passwords_are_counted_in_characters_and_every_one_counts() {
    let app = spawn_app().await;
    // 72 characters of three bytes: within the contract's maxLength, 216 bytes long.
    let password = "€".repeat(72);
    let registered = app.register("Euro", "euro@example.com", &password).await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(app.login("euro@example.com", &password).await.status, 200);
    let last_changed = format!("{}x", "€".repeat(71));
    assert_envelope(
        &app.login("euro@example.com", &last_changed).await,
        401,
        "INVALID_CREDENTIALS",
    );
    let too_long = app
        .register("Euro", "euro2@example.com", &"€".repeat(73))
        .await;
    assert_envelope(&too_long, 422, "VALIDATION_FAILED");
    assert_eq!(
        too_long.body["errors"]["password"][0],
        "The password may not be greater than 72 characters."
    );
}

#[actix_web::test]
async fn a_known_path_with_another_method_is_405_listing_the_allowed_ones() {
    let app = spawn_app().await;
    for (method, path, allowed) in [
        ("PUT", "/api/v1/auth/me", "GET, POST"),
        ("GET", "/api/v1/auth/register", "POST"),
        ("QUERY", "/api/v1/auth/login", "POST"),
        ("DELETE", "/api/v1/auth/logout", "POST"),
        ("PATCH", "/healthz", "GET"),
    ] {
        let response = app.client.send(method, path, None, &[], None).await;
        assert_envelope(&response, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(response.header("allow"), Some(allowed), "{method} {path}");
    }
    assert_envelope(
        &app.client
            .send("PUT", "/api/v1/auth/nowhere", None, &[], None)
            .await,
        404,
        "NOT_FOUND",
    );
}

#[actix_web::test]
async fn malformed_json_is_422_in_the_envelope() {
    let app = spawn_app().await;
    for body in [&b"{\"name\": "[..], b"[1, 2]", b"not json at all"] {
        let response = app
            .client
            .send(
                "POST",
                "/api/v1/auth/register",
                None,
                &[],
                Some(body.to_vec()),
            )
            .await;
        assert_envelope(&response, 422, "VALIDATION_FAILED");
        assert!(response.body["errors"]["body"].is_array());
    }
}

#[actix_web::test]
async fn an_oversized_body_is_refused() {
    let app = spawn_app().await;
    let huge = json!({ "name": "x".repeat(64 * 1024), "email": "big@example.com", "password": "password123" });
    let response = app.client.post("/api/v1/auth/register", None, &huge).await;
    assert_envelope(&response, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(app.count_users("big@example.com").await, 0);
}

#[actix_web::test]
async fn unknown_routes_answer_in_the_envelope_and_responses_carry_a_request_id() {
    let app = spawn_app().await;
    let response = app.client.get("/api/v1/nowhere", None).await;
    assert_envelope(&response, 404, "NOT_FOUND");
    assert!(
        response
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );

    let echoed = app
        .client
        .send(
            "GET",
            "/healthz",
            None,
            &[("X-Request-Id", "trace-abc-123")],
            None,
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-abc-123"));
}

#[actix_web::test]
async fn operational_endpoints_report_health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.client.get("/healthz", None).await.status, 200);
    let ready = app.client.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["checks"]["mysql"], "ok");
    assert_eq!(ready.body["checks"]["redis"], "ok");
    app.register("M", "metrics@example.com", "password123")
        .await;
    let metrics = app.client.get("/metrics", None).await;
    let text = String::from_utf8(metrics.raw).unwrap();
    assert!(text.contains("route=\"/api/v1/auth/register\""), "{text}");
}

#[actix_web::test]
async fn registrations_are_limited_per_client_address() {
    let app = spawn_app_with(|s| {
        s.app.trust_forwarded_for = true;
        s.auth.register_max_per_address = 3;
        s.auth.register_decay_seconds = 600;
    })
    .await;
    for i in 0..3 {
        let email = format!("flood{i}@example.com");
        let created = app.register_from("198.51.100.7", &email).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let limited = app
        .register_from("198.51.100.7", "flood3@example.com")
        .await;
    assert_envelope(&limited, 429, "TOO_MANY_REQUESTS");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    assert_eq!(app.count_users("flood3@example.com").await, 0);
    // Another address registers as usual.
    let elsewhere = app.register_from("203.0.113.9", "flood3@example.com").await;
    assert_eq!(elsewhere.status, 201, "{}", elsewhere.body);
}

#[actix_web::test]
async fn no_more_hashes_run_at_once_than_allowed_and_the_rest_are_told_to_retry() {
    let app = spawn_app_with(|s| {
        s.app.trust_forwarded_for = true;
        s.auth.bcrypt_rounds = 10;
        s.auth.hash_concurrency = 1;
        s.auth.hash_queue_wait_ms = 20;
    })
    .await;
    let token = app.user_token("bystander@example.com").await;
    let app = &app;
    let flood = (0..8).map(|i| async move {
        let address = format!("198.51.100.{i}");
        app.register_from(&address, &format!("burst{i}@example.com"))
            .await
    });
    // While the flood hashes, other requests are answered.
    let bystander = async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        app.me(&token).await
    };
    let (responses, me) =
        futures_util::future::join(futures_util::future::join_all(flood), bystander).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let created = responses.iter().filter(|r| r.status == 201).count();
    let busy: Vec<_> = responses.iter().filter(|r| r.status != 201).collect();
    assert!(created >= 1, "one at a time still goes through");
    assert!(
        !busy.is_empty(),
        "eight 60 ms hashes at once cannot all fit in 20 ms"
    );
    for response in busy {
        assert_envelope(response, 503, "SYSTEM_BUSY");
        assert_eq!(response.header("retry-after"), Some("1"));
    }
}
