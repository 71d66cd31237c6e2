//! The buyers' access tokens, signed here with the stack's Ed25519 private key as
//! auth-service would sign them, so that a load needs no login per buyer and a sale can
//! have as many distinct buyers as it wants.

use anyhow::Context;
use common::jwt::{Claims, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Access tokens of `users` buyers (user ids `first_user`, `first_user + 1`, ...), signed
/// with the PEM private key at `private_key`, valid for an hour.
pub fn sign_tokens(
    private_key: &std::path::Path,
    first_user: u64,
    users: u64,
) -> anyhow::Result<Vec<String>> {
    let pem =
        std::fs::read(private_key).with_context(|| format!("reading {}", private_key.display()))?;
    let key = EncodingKey::from_ed_pem(&pem)?;
    let now = jsonwebtoken::get_current_timestamp();
    (0..users)
        .map(|i| {
            let claims = Claims {
                sub: (first_user + i).to_string(),
                iat: now,
                exp: now + 3600,
                jti: uuid::Uuid::new_v4().simple().to_string(),
                role: Role::User,
            };
            Ok(jsonwebtoken::encode(
                &Header::new(Algorithm::EdDSA),
                &claims,
                &key,
            )?)
        })
        .collect()
}
