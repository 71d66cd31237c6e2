//! Webhook signatures as Stripe makes them: `Payment-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the shared secret>`. The time inside the
//! signed payload bounds replays; the HMAC is compared in constant time. purchase-service
//! verifies them; the local webhook sender and the tests sign with [`sign`].

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a webhook's signature was refused (logged, never told to the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("no webhook secret is configured (PAYMENT_WEBHOOK_SECRET)")]
    NoSecret,
    #[error("missing or malformed Payment-Signature header")]
    Malformed,
    #[error("signed {age_secs} s away from now, beyond the tolerance")]
    Stale { age_secs: i64 },
    #[error("signature does not match")]
    Mismatch,
}

/// Checks `header` against `body` signed with `secret` at a time within
/// `tolerance_secs` of `now_secs` (either side: clocks drift both ways).
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u64,
) -> Result<(), BadSignature> {
    if secret.is_empty() {
        return Err(BadSignature::NoSecret);
    }
    let (mut signed_at, mut signatures) = (None, Vec::new());
    for part in header.ok_or(BadSignature::Malformed)?.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => signed_at = t.parse::<i64>().ok(),
            Some(("v1", hex)) => signatures.push(decode_hex(hex).ok_or(BadSignature::Malformed)?),
            _ => {}
        }
    }
    let signed_at = signed_at.ok_or(BadSignature::Malformed)?;
    if signatures.is_empty() {
        return Err(BadSignature::Malformed);
    }
    let age_secs = now_secs.saturating_sub(signed_at);
    if age_secs.unsigned_abs() > tolerance_secs {
        return Err(BadSignature::Stale { age_secs });
    }
    let expected = signed_payload_mac(secret, signed_at, body);
    // Any of the v1 signatures may match (a provider rolling its secret sends two).
    if signatures
        .iter()
        .any(|signature| expected.clone().verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(BadSignature::Mismatch)
    }
}

fn signed_payload_mac(secret: &str, signed_at: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(signed_at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Payment-Signature` header for `body` signed at `signed_at` (the helper that
/// sends webhooks locally, and tests).
pub fn sign(secret: &str, signed_at: i64, body: &[u8]) -> String {
    let digest = signed_payload_mac(secret, signed_at, body)
        .finalize()
        .into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={signed_at},v1={hex}")
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_signature_made_with_the_secret_verifies_and_nothing_else_does() {
        let body = br#"{"event":"payment.succeeded"}"#;
        let header = sign(SECRET, NOW - 10, body);
        assert_eq!(verify(SECRET, Some(&header), body, NOW, 300), Ok(()));
        assert_eq!(
            verify("other", Some(&header), body, NOW, 300),
            Err(BadSignature::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(&header), b"{}", NOW, 300),
            Err(BadSignature::Mismatch),
            "another body"
        );
        assert_eq!(
            verify(SECRET, Some(&header), body, NOW + 400, 300),
            Err(BadSignature::Stale { age_secs: 410 })
        );
        assert_eq!(
            verify("", Some(&header), body, NOW, 300),
            Err(BadSignature::NoSecret)
        );
        for malformed in [
            None,
            Some(""),
            Some("t=1"),
            Some("v1=ab"),
            Some("t=x,v1=ab"),
            Some("t=1,v1=zz"),
        ] {
            assert_eq!(
                verify(SECRET, malformed, body, NOW, 300),
                Err(BadSignature::Malformed),
                "{malformed:?}"
            );
        }
        // A second v1 (a provider rolling its secret) may be the one that matches.
        let good = sign(SECRET, NOW, body);
        let rolled = good.replacen("v1=", "v1=abcd,v1=", 1);
        assert!(
            rolled.starts_with(&format!("t={NOW},v1=abcd,v1=")),
            "{rolled}"
        );
        assert_eq!(verify(SECRET, Some(&rolled), body, NOW, 300), Ok(()));
    }
}
