//! JWT verification, shared by every service: EdDSA (Ed25519) only, with the
//! algorithm pinned, and `sub`, `exp`, `iat`, `jti` and `role` all required; a token
//! with an `nbf` is refused before that time.
//! Only auth-service holds the private key; the other services get the public key.

use crate::config::JwtSettings;
use anyhow::Context;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use verified::VerifiedTokens;

mod verified;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// The claims every token carries. All fields are required: a token missing one fails
/// to deserialize and is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a decimal string (JWT subjects are strings).
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub role: Role,
}

impl Claims {
    pub fn user_id(&self) -> Option<u64> {
        self.sub.parse().ok()
    }

    /// A user's claims (user 7, jti `j`) expiring at `exp`, for the unit tests.
    #[cfg(test)]
    pub(crate) fn of_user_expiring_at(exp: u64) -> Self {
        Claims {
            sub: "7".into(),
            exp,
            iat: 0,
            jti: "j".into(),
            role: Role::User,
        }
    }
}

/// Why a token was refused. Callers answer all of these with 401; the variant is logged.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token subject is not a user id")]
    BadSubject,
    #[error("token is past its refresh window")]
    RefreshWindowOver,
}

#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    expired_ok: Validation,
    refresh_window_secs: u64,
    leeway_secs: u64,
    verified: Arc<VerifiedTokens>,
}

impl JwtVerifier {
    pub fn from_public_pem(pem: &[u8], settings: &JwtSettings) -> anyhow::Result<Self> {
        let key = DecodingKey::from_ed_pem(pem).context("JWT public key is not an Ed25519 PEM")?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // `nbf` is optional (auth-service does not set it), but honoured when present.
        validation.validate_nbf = true;
        validation.leeway = settings.leeway_secs;
        let mut expired_ok = validation.clone();
        expired_ok.validate_exp = false;
        Ok(JwtVerifier {
            key,
            validation,
            expired_ok,
            refresh_window_secs: settings.refresh_ttl_minutes * 60,
            leeway_secs: settings.leeway_secs,
            verified: Arc::new(VerifiedTokens::new(settings.verified_cache_size)),
        })
    }

    pub fn from_settings(settings: &JwtSettings) -> anyhow::Result<Self> {
        let pem = read_key_file("public", &settings.public_key_path, "JWT_PUBLIC_KEY_PATH")?;
        Self::from_public_pem(&pem, settings)
    }

    /// Verifies signature, algorithm and expiry; a token verified before is only
    /// checked for expiry (see [`verified`]).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = now_secs();
        if let Some(claims) = self.verified.get(token, now, self.leeway_secs) {
            return Ok(claims);
        }
        let claims = decode::<Claims>(token, &self.key, &self.validation)?.claims;
        claims.user_id().ok_or(TokenError::BadSubject)?;
        self.verified.insert(token, &claims, now, self.leeway_secs);
        Ok(claims)
    }

    /// Like [`verify`](Self::verify), but an expired token is accepted while it is within
    /// the refresh window after its `exp`.
    pub fn verify_for_refresh(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let claims = decode::<Claims>(token, &self.key, &self.expired_ok)?.claims;
        claims.user_id().ok_or(TokenError::BadSubject)?;
        if claims.exp.saturating_add(self.refresh_window_secs) < now {
            return Err(TokenError::RefreshWindowOver);
        }
        Ok(claims)
    }

    pub fn refresh_window_secs(&self) -> u64 {
        self.refresh_window_secs
    }

    /// How long past `exp` [`verify`](Self::verify) still accepts a token.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway_secs
    }
}

/// A key file's PEM (`which`: public or private); when it cannot be read, the error
/// names the file, the variable that points there and how to create a key pair.
pub fn read_key_file(which: &str, path: &Path, variable: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read the JWT {which} key at {} ({variable}); create one with `auth-service keygen`",
            path.display()
        )
    })
}

pub fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A new Ed25519 key pair as PKCS#8 private and SPKI public PEM.
pub struct KeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

pub fn generate_key_pair() -> anyhow::Result<KeyPair> {
    let seed: [u8; 32] = rand::random();
    let signing = SigningKey::from_bytes(&seed);
    let private_pem = signing.to_pkcs8_pem(LineEnding::LF)?.to_string();
    let public_pem = signing.verifying_key().to_public_key_pem(LineEnding::LF)?;
    Ok(KeyPair {
        private_pem,
        public_pem,
    })
}
