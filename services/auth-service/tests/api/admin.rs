//! `auth-service create-admin`, run as the operator runs it: the real binary against
//! the test's database.

use crate::helpers::{TestApp, spawn_app};
use std::process::{Command, Output};

fn create_admin(app: &TestApp, args: &[&str], password: &str) -> Output {
    let database = &app.settings.database;
    Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .arg("create-admin")
        .args(args)
        .env("APP_ENV", "testing")
        .env("LOG_LEVEL", "warn")
        .env("BCRYPT_ROUNDS", "4")
        .env("DB_HOST", &database.host)
        .env("DB_PORT", database.port.to_string())
        .env("DB_DATABASE", &database.database)
        .env("DB_USERNAME", &database.username)
        .env("DB_PASSWORD", &database.password)
        .env("ADMIN_PASSWORD", password)
        .output()
        .expect("run auth-service create-admin")
}

async fn role_after_login(app: &TestApp, email: &str, password: &str) -> Option<String> {
    let login = app.login(email, password).await;
    let token = login.body["access_token"].as_str()?;
    let me = app.me(token).await;
    me.body["role"].as_str().map(str::to_owned)
}

/// The role each password logs `email` in with (`None`: that login fails).
async fn assert_roles(app: &TestApp, email: &str, expected: &[(&str, Option<&str>)]) {
    for (password, role) in expected {
        let actual = role_after_login(app, email, password).await;
        assert_eq!(actual.as_deref(), *role, "{email} with {password}");
    }
}

#[actix_web::test]
async fn create_admin_refuses_an_existing_email_without_promote() {
    let app = spawn_app().await;
    app.register("Squatter", "ops@shop.example", "squatter-pass")
        .await;
    let output = create_admin(&app, &["--email", "ops@shop.example"], "operator-pass");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.contains("--promote"), "{stderr}");
    assert!(stderr.contains("password is NOT changed"), "{stderr}");
    let roles = [("squatter-pass", Some("user")), ("operator-pass", None)];
    assert_roles(&app, "ops@shop.example", &roles).await;
}

#[actix_web::test]
async fn create_admin_with_promote_promotes_and_says_the_password_is_unchanged() {
    let app = spawn_app().await;
    let registered = app
        .register("Olga", "olga@shop.example", "olga-password")
        .await;
    let id = registered.body["user"]["id"].as_u64().unwrap();
    let output = create_admin(
        &app,
        &["--email", "olga@shop.example", "--promote"],
        "operator-pass",
    );
    assert_eq!(
        testkit::succeeded(&output).trim(),
        format!(
            "promoted existing user olga@shop.example (id {id}) to admin; its password is unchanged"
        )
    );
    let roles = [("olga-password", Some("admin")), ("operator-pass", None)];
    assert_roles(&app, "olga@shop.example", &roles).await;
}

#[actix_web::test]
async fn create_admin_creates_a_new_account_with_the_given_password() {
    let app = spawn_app().await;
    let output = create_admin(&app, &["--email", "root@shop.example"], "operator-pass");
    let stdout = testkit::succeeded(&output);
    assert!(
        stdout.starts_with("created admin root@shop.example (id "),
        "{stdout}"
    );
    assert_roles(
        &app,
        "root@shop.example",
        &[("operator-pass", Some("admin"))],
    )
    .await;
}
