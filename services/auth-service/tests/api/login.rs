use crate::helpers::{TestApp, assert_envelope, spawn_app, spawn_app_with};
use redis::AsyncCommands;

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

/// auth-service refusing an (email, address) pair `max` failed logins in, for
/// `decay_secs`.
async fn spawn_app_locking_after(max: u64, decay_secs: u64) -> TestApp {
    spawn_app_with(|s| {
        s.auth.login_max_attempts = max;
        s.auth.login_decay_seconds = decay_secs;
    })
    .await
}

/// auth-service behind the gateway (the client's address from `X-Forwarded-For`),
/// refusing an (email, address) pair 5 failed logins in and an email `per_email` failed
/// logins in from any addresses.
async fn spawn_app_with_an_email_ceiling(per_email: u64) -> TestApp {
    spawn_app_with(|s| {
        s.app.trust_forwarded_for = true;
        s.auth.login_max_attempts = 5;
        s.auth.login_max_attempts_per_email = per_email;
    })
    .await
}

#[actix_web::test]
async fn failed_logins_are_rate_limited_per_email_and_address() {
    let app = spawn_app_locking_after(3, 120).await;
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
async fn a_successful_login_clears_the_count_of_its_email_and_address() {
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

fn count(responses: &[testkit::Response], status: u16) -> usize {
    responses.iter().filter(|r| r.status == status).count()
}

#[actix_web::test]
async fn forty_parallel_wrong_passwords_get_exactly_the_limit_of_answers() {
    let app = spawn_app_locking_after(5, 300).await;
    app.register("Rae", "rae@example.com", "password123").await;
    let attempts = (0..40).map(|_| app.login("rae@example.com", "wrong-password"));
    let responses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        count(&responses, 401),
        5,
        "the limit decides, not the timing"
    );
    assert_eq!(count(&responses, 429), 35);
    assert_every_login_counter_expires(&app, 300).await;
}

async fn assert_every_login_counter_expires(app: &TestApp, decay_secs: i64) {
    let keys = app.redis_keys("login:").await;
    assert!(!keys.is_empty());
    let mut conn = app.env.redis.connection().await;
    for key in keys {
        let ttl: i64 = conn.ttl(&key).await.unwrap();
        assert!((1..=decay_secs).contains(&ttl), "{key} has TTL {ttl}");
    }
}

#[actix_web::test]
async fn an_attacker_at_another_address_cannot_lock_the_owner_out() {
    let app = spawn_app_with(|s| {
        s.app.trust_forwarded_for = true;
        s.auth.login_max_attempts = 5;
    })
    .await;
    app.register("Olive", "olive@example.com", "password123")
        .await;
    let attacker = "198.51.100.7";
    for _ in 0..5 {
        let guess = app
            .login_from(attacker, "olive@example.com", "guess-guess")
            .await;
        assert_envelope(&guess, 401, "INVALID_CREDENTIALS");
    }
    let locked = app
        .login_from(attacker, "olive@example.com", "password123")
        .await;
    assert_envelope(&locked, 429, "TOO_MANY_REQUESTS");
    let owner = app
        .login_from("203.0.113.20", "olive@example.com", "password123")
        .await;
    assert_eq!(owner.status, 200, "{}", owner.body);
}

#[actix_web::test]
async fn failures_from_many_addresses_reach_the_per_email_ceiling() {
    let app = spawn_app_with_an_email_ceiling(8).await;
    app.register("Pia", "pia@example.com", "password123").await;
    for i in 0..8 {
        let address = format!("198.51.100.{i}");
        let guess = app
            .login_from(&address, "pia@example.com", "guess-guess")
            .await;
        assert_envelope(&guess, 401, "INVALID_CREDENTIALS");
    }
    let ceiling = app
        .login_from("203.0.113.20", "pia@example.com", "password123")
        .await;
    assert_envelope(&ceiling, 429, "TOO_MANY_REQUESTS");
    // The refused attempt was given back to that address's counter.
    let mut conn = app.env.redis.connection().await;
    let key = format!("{}login:addr:{{203.0.113.20}}", app.env.redis.prefix);
    let count: Option<u64> = conn.get(&key).await.unwrap();
    assert_eq!(count.unwrap_or(0), 0);
}

#[actix_web::test]
async fn successful_logins_use_up_none_of_the_owners_attempts() {
    let app = spawn_app_with(|s| {
        s.auth.login_max_attempts = 3;
        s.auth.login_max_attempts_per_address = 4;
        s.auth.login_max_attempts_per_email = 4;
    })
    .await;
    app.register("Ned", "ned@example.com", "password123").await;
    for _ in 0..10 {
        let login = app.login("ned@example.com", "password123").await;
        assert_eq!(login.status, 200, "{}", login.body);
    }
    for _ in 0..3 {
        let guess = app.login("ned@example.com", "guess-guess").await;
        assert_envelope(&guess, 401, "INVALID_CREDENTIALS");
    }
    let locked = app.login("ned@example.com", "password123").await;
    assert_envelope(&locked, 429, "TOO_MANY_REQUESTS");
}

/// MySQL compares emails ignoring case and accents (`utf8mb4_unicode_ci`), so each of
/// these finds the same account: they must spend the same attempts.
const RESPELLINGS: [&str; 4] = [
    "bob@example.com",
    "böb@example.com",
    "BÓB@ÉXAMPLE.COM",
    "bob@exämple.com",
];

#[actix_web::test]
async fn respelling_the_email_does_not_buy_more_attempts_for_the_pair() {
    let app = spawn_app_locking_after(3, 120).await;
    app.register("Bob", "bob@example.com", "password123").await;
    for email in &RESPELLINGS[..3] {
        let guess = app.login(email, "guess-guess").await;
        assert_envelope(&guess, 401, "INVALID_CREDENTIALS");
    }
    let respelled = app.login(RESPELLINGS[3], "password123").await;
    assert_envelope(&respelled, 429, "TOO_MANY_REQUESTS");
}

#[actix_web::test]
async fn respelling_the_email_does_not_escape_the_per_email_ceiling() {
    let app = spawn_app_with_an_email_ceiling(4).await;
    app.register("Bob", "bob@example.com", "password123").await;
    for (i, email) in RESPELLINGS.iter().enumerate() {
        let guess = app
            .login_from(&format!("198.51.100.{i}"), email, "guess-guess")
            .await;
        assert_envelope(&guess, 401, "INVALID_CREDENTIALS");
    }
    for email in ["bób@example.com", "Bob@Example.com"] {
        let ceiling = app.login_from("203.0.113.9", email, "password123").await;
        assert_envelope(&ceiling, 429, "TOO_MANY_REQUESTS");
    }
}

#[actix_web::test]
async fn respellings_of_an_unknown_email_share_its_counters_too() {
    let app = spawn_app_locking_after(2, 120).await;
    for email in ["nobody@example.com", "nöbody@example.com"] {
        let guess = app.login(email, "guess-guess").await;
        assert_envelope(&guess, 401, "INVALID_CREDENTIALS");
    }
    let third = app.login("NÔBODY@example.com", "guess-guess").await;
    assert_envelope(&third, 429, "TOO_MANY_REQUESTS");
}

#[actix_web::test]
async fn the_limits_fold_emails_under_the_collation_the_users_table_compares_with() {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Column {
        #[diesel(sql_type = diesel::sql_types::Text)]
        collation: String,
    }
    let app = spawn_app().await;
    let column: Column = diesel::sql_query(
        "SELECT COLLATION_NAME AS collation FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND COLUMN_NAME = 'email'",
    )
    .get_result(&mut app.env.database.connect().await)
    .await
    .unwrap();
    assert_eq!(column.collation, auth_service::users::EMAIL_COLLATION);
}
