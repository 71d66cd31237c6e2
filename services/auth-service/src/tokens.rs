//! Token issuing (auth-service alone holds the Ed25519 private key) and key generation
//! for `auth-service keygen`.

use anyhow::Context;
use common::config::JwtSettings;
use common::jwt::{Claims, Role, generate_key_pair, now_secs};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use std::io::Write;
use std::path::Path;

#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    ttl_secs: u64,
}

/// A freshly signed token and what the client is told about it.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    pub claims: Claims,
}

impl TokenIssuer {
    pub fn from_private_pem(pem: &[u8], ttl_minutes: u64) -> anyhow::Result<Self> {
        let key = EncodingKey::from_ed_pem(pem).context("JWT private key is not an Ed25519 PEM")?;
        Ok(TokenIssuer {
            key,
            ttl_secs: ttl_minutes * 60,
        })
    }

    pub fn from_settings(settings: &JwtSettings) -> anyhow::Result<Self> {
        let path = &settings.private_key_path;
        let pem = common::jwt::read_key_file("private", path, "JWT_PRIVATE_KEY_PATH")?;
        Self::from_private_pem(&pem, settings.ttl_minutes)
    }

    pub fn issue(&self, user_id: u64, role: Role) -> anyhow::Result<IssuedToken> {
        let iat = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat,
            exp: iat + self.ttl_secs,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            role,
        };
        let token = encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl_secs,
            claims,
        })
    }
}

/// Writes a key pair, refusing to replace existing keys unless `force` (replacing them
/// logs every user out).
pub fn write_key_pair(private: &Path, public: &Path, force: bool) -> anyhow::Result<()> {
    if !force && (private.exists() || public.exists()) {
        anyhow::bail!(
            "{} or {} already exists; pass --force to replace the keys (every issued token stops working)",
            private.display(),
            public.display()
        );
    }
    let pair = generate_key_pair()?;
    for path in [private, public] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    write_file(private, &pair.private_pem, 0o600)?;
    write_file(public, &pair.public_pem, 0o644)?;
    Ok(())
}

fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::jwt::{JwtVerifier, generate_key_pair};

    fn settings() -> JwtSettings {
        JwtSettings {
            public_key_path: "unused".into(),
            private_key_path: "unused".into(),
            ttl_minutes: 60,
            refresh_ttl_minutes: 10,
            leeway_secs: 0,
            verified_cache_size: 16,
            revocation_feed_max_lag_ms: 1000,
            revocation_feed_max_entries: 100,
        }
    }

    /// An issuer of 60-minute tokens and a verifier, on a fresh key pair.
    fn issuer_and_verifier() -> (TokenIssuer, JwtVerifier) {
        let pair = generate_key_pair().unwrap();
        let issuer = TokenIssuer::from_private_pem(pair.private_pem.as_bytes(), 60).unwrap();
        let verifier =
            JwtVerifier::from_public_pem(pair.public_pem.as_bytes(), &settings()).unwrap();
        (issuer, verifier)
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let (issuer, verifier) = issuer_and_verifier();
        let issued = issuer.issue(42, Role::Admin).unwrap();
        let claims = verifier.verify(&issued.token).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!(claims.user_id(), Some(42));
        assert_eq!(issued.expires_in, 3600);
    }

    #[test]
    fn another_key_pair_is_refused() {
        let ours = generate_key_pair().unwrap();
        let theirs = generate_key_pair().unwrap();
        let forger = TokenIssuer::from_private_pem(theirs.private_pem.as_bytes(), 60).unwrap();
        let verifier =
            JwtVerifier::from_public_pem(ours.public_pem.as_bytes(), &settings()).unwrap();
        let forged = forger.issue(1, Role::Admin).unwrap();
        assert!(verifier.verify(&forged.token).is_err());
    }

    #[test]
    fn a_verified_token_altered_in_any_byte_is_verified_afresh_and_refused() {
        let (issuer, verifier) = issuer_and_verifier();
        let token = issuer.issue(42, Role::User).unwrap().token;
        verifier.verify(&token).unwrap();
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = signature.as_bytes().to_vec();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{signed}.{}", String::from_utf8(bytes).unwrap());
        assert!(verifier.verify(&tampered).is_err());
        let (header, _) = signed.split_once('.').unwrap();
        let other_claims = issuer.issue(43, Role::Admin).unwrap().token;
        let other_payload = other_claims.split('.').nth(1).unwrap();
        let spliced = format!("{header}.{other_payload}.{signature}");
        assert!(verifier.verify(&spliced).is_err());
        assert!(verifier.verify(&token).is_ok(), "the original still passes");
    }

    #[test]
    fn keygen_will_not_overwrite_without_force() {
        let dir = std::env::temp_dir().join(format!("keygen-{}", uuid::Uuid::new_v4()));
        let (private, public) = (dir.join("k.pem"), dir.join("k.pub.pem"));
        write_key_pair(&private, &public, false).unwrap();
        assert!(write_key_pair(&private, &public, false).is_err());
        write_key_pair(&private, &public, true).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
