use crate::helpers::{assert_envelope, spawn_app, spawn_app_with};

#[actix_web::test]
async fn login_returns_a_token_that_authenticates() {
    let app = spawn_app().await;
    app.register("Bob", "bob@example.com", "password123").await;
    let response = app.login("BOB@example.com", "password123").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["token_type"], "bearer");
    assert_eq!(response.body["expires_in"], 3600);
    let token = response.body["access_token"].as_str().unwrap();
    let me = app.me(token).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], "bob@example.com");
}

#[actix_web::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let app = spawn_app().await;
    app.register("Bob", "bob@example.com", "password123").await;
    let wrong = app.login("bob@example.com", "wrong-password").await;
    let unknown = app.login("nobody@example.com", "password123").await;
    assert_envelope(&wrong, 401, "INVALID_CREDENTIALS");
    assert_envelope(&unknown, 401, "INVALID_CREDENTIALS");
    assert_eq!(wrong.body, unknown.body);
}

#[actix_web::test]
async fn login_validation_is_422() {
    let app = spawn_app().await;
    let response = app
        .client
        .post("/api/v1/auth/login", None, &serde_json::json!({"email": 5}))
        .await;
    assert_envelope(&response, 422, "VALIDATION_FAILED");
    assert!(response.body["errors"]["email"].is_array());
    assert!(response.body["errors"]["password"].is_array());
}

#[actix_web::test]
async fn failed_logins_are_rate_limited_per_email() {
    let app = spawn_app_with(|s| {
        s.auth.login_max_attempts = 3;
        s.auth.login_decay_seconds = 120;
    })
    .await;
    app.register("Eve", "eve@example.com", "password123").await;
    for _ in 0..3 {
        assert_envelope(
            &app.login("eve@example.com", "guess-guess").await,
            401,
            "INVALID_CREDENTIALS",
        );
    }
    // Even the right password is refused while the email is locked.
    let locked = app.login("eve@example.com", "password123").await;
    assert_envelope(&locked, 429, "TOO_MANY_REQUESTS");
    let retry_after: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry_after));
    // Another email from the same address is still allowed (address limit is higher).
    app.register("Ann", "ann@example.com", "password123").await;
    assert_eq!(
        app.login("ann@example.com", "password123").await.status,
        200
    );
}

#[actix_web::test]
async fn failed_logins_are_rate_limited_per_address() {
    let app = spawn_app_with(|s| {
        s.auth.login_max_attempts = 100;
        s.auth.login_max_attempts_per_address = 4;
    })
    .await;
    for i in 0..4 {
        let response = app
            .login(&format!("guess{i}@example.com"), "password123")
            .await;
        assert_envelope(&response, 401, "INVALID_CREDENTIALS");
    }
    let limited = app.login("guess9@example.com", "password123").await;
    assert_envelope(&limited, 429, "TOO_MANY_REQUESTS");
}

#[actix_web::test]
async fn a_successful_login_clears_the_email_count() {
    let app = spawn_app_with(|s| s.auth.login_max_attempts = 3).await;
    app.register("Sam", "sam@example.com", "password123").await;
    for _ in 0..2 {
        app.login("sam@example.com", "nope-nope").await;
    }
    assert_eq!(
        app.login("sam@example.com", "password123").await.status,
        200
    );
    for _ in 0..2 {
        app.login("sam@example.com", "nope-nope").await;
    }
    assert_eq!(
        app.login("sam@example.com", "password123").await.status,
        200
    );
}
