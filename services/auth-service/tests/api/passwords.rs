//! What a password is, as bcrypt sees it: its NFC form, and for one over bcrypt's 72
//! bytes a domain-separated digest that no password can spell.

use crate::helpers::{TestApp, assert_envelope, spawn_app};
use sha2::{Digest, Sha256};

/// "pässwörd-ñ" composed (NFC) and decomposed (NFD): the same text to a reader.
const NFC: &str = "p\u{e4}ssw\u{f6}rd-\u{f1}";
const NFD: &str = "pa\u{308}sswo\u{308}rd-n\u{303}";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn set_stored_hash(app: &TestApp, email: &str, hash: &str) {
    use db::schema::users;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    diesel::update(users::table.filter(users::email.eq(email)))
        .set(users::password_hash.eq(hash))
        .execute(&mut app.env.database.connect().await)
        .await
        .expect("update the stored hash");
}

#[actix_web::test]
async fn a_password_is_the_same_in_any_unicode_normal_form() {
    assert_ne!(NFC, NFD);
    let app = spawn_app().await;
    assert_eq!(app.register("N", "nfc@example.com", NFC).await.status, 201);
    assert_eq!(app.register("N", "nfd@example.com", NFD).await.status, 201);
    for email in ["nfc@example.com", "nfd@example.com"] {
        for password in [NFC, NFD] {
            let login = app.login(email, password).await;
            assert_eq!(
                login.status, 200,
                "{email} with {password:?}: {}",
                login.body
            );
        }
    }
}

#[actix_web::test]
async fn the_digest_of_a_long_password_is_no_password() {
    let app = spawn_app().await;
    // 30 three-byte characters: 90 bytes, past bcrypt's 72.
    let password = "€".repeat(30);
    assert_eq!(
        app.register("L", "long@example.com", &password)
            .await
            .status,
        201
    );
    let digest = app.login("long@example.com", &sha256_hex(&password)).await;
    assert_envelope(&digest, 401, "INVALID_CREDENTIALS");
    assert_eq!(app.login("long@example.com", &password).await.status, 200);
}

#[actix_web::test]
async fn hashes_stored_the_old_way_still_log_in_and_are_replaced() {
    let app = spawn_app().await;
    let long = "€".repeat(30);
    for (email, password, old_input) in [
        ("old-long@example.com", long.as_str(), sha256_hex(&long)),
        ("old-nfd@example.com", NFD, NFD.to_owned()),
    ] {
        assert_eq!(app.register("O", email, "placeholder").await.status, 201);
        let old_hash = bcrypt::hash(&old_input, 4).unwrap();
        set_stored_hash(&app, email, &old_hash).await;
        let login = app.login(email, password).await;
        assert_eq!(login.status, 200, "{email}: {}", login.body);
        assert_ne!(app.stored_hash(email).await, old_hash, "{email}: rehashed");
        assert_eq!(app.login(email, password).await.status, 200, "{email}");
    }
    // Once replaced, the digest no longer opens the account.
    let digest = app.login("old-long@example.com", &sha256_hex(&long)).await;
    assert_envelope(&digest, 401, "INVALID_CREDENTIALS");
    // And the NFD account now takes its password in NFC as well.
    assert_eq!(app.login("old-nfd@example.com", NFC).await.status, 200);
}
