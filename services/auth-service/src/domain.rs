//! Auth input, parsed once into types that cannot hold invalid values: handlers and
//! queries only ever see a [`UserName`], [`UserEmail`] or [`Password`] that passed here.

use common::ValidationErrors;
use common::input::JsonObject;
use email_address::{EmailAddress, Options};

const MAX_LEN: usize = 255;

/// A display name: 1..=255 characters once surrounding blanks are trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("The name field is required.".into());
        }
        if trimmed.chars().count() > MAX_LEN {
            return Err(format!(
                "The name may not be greater than {MAX_LEN} characters."
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("The name may not contain control characters.".into());
        }
        Ok(UserName(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A syntactically valid address of at most 255 characters, lower-cased so that
/// uniqueness and look-ups do not depend on how a user typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEmail(String);

impl UserEmail {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let normalized = raw.trim().to_lowercase();
        if normalized.is_empty() {
            return Err("The email field is required.".into());
        }
        if normalized.chars().count() > MAX_LEN {
            return Err(format!(
                "The email may not be greater than {MAX_LEN} characters."
            ));
        }
        let options = Options::default()
            .with_required_tld()
            .without_display_text()
            .without_domain_literal();
        EmailAddress::parse_with_options(&normalized, options)
            .map_err(|_| "The email must be a valid email address.".to_owned())?;
        Ok(UserEmail(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8..=72 bytes (bcrypt ignores anything past 72 bytes, so longer
/// passwords would silently be truncated).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_BYTES: usize = 8;
    pub const MAX_BYTES: usize = 72;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() < Self::MIN_BYTES {
            return Err(format!(
                "The password must be at least {} characters.",
                Self::MIN_BYTES
            ));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(format!(
                "The password may not be greater than {} bytes.",
                Self::MAX_BYTES
            ));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

pub struct Registration {
    pub name: UserName,
    pub email: UserEmail,
    pub password: Password,
}

impl Registration {
    pub fn parse(body: &JsonObject) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let name = errors.check("name", body.string("name").and_then(UserName::parse));
        let email = errors.check("email", body.string("email").and_then(UserEmail::parse));
        let password = errors.check(
            "password",
            body.string("password").and_then(Password::parse),
        );
        match (name, email, password) {
            (Some(name), Some(email), Some(password)) => Ok(Registration {
                name,
                email,
                password,
            }),
            _ => Err(errors),
        }
    }
}

/// Login input. The password is not held to the registration rules: any string is
/// checked against the stored hash, so rule changes never lock existing users out.
pub struct Credentials {
    pub email: UserEmail,
    pub password: String,
}

impl Credentials {
    pub fn parse(body: &JsonObject) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let email = errors.check("email", body.string("email").and_then(UserEmail::parse));
        let password = errors.check(
            "password",
            body.string("password").and_then(|p| {
                if p.is_empty() {
                    Err("The password field is required.".to_owned())
                } else if p.len() > 1024 {
                    Err("The password may not be greater than 1024 bytes.".to_owned())
                } else {
                    Ok(p.to_owned())
                }
            }),
        );
        match (email, password) {
            (Some(email), Some(password)) => Ok(Credentials { email, password }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck_macros::quickcheck;

    #[test]
    fn emails_are_normalized() {
        let email = UserEmail::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
    }

    #[test]
    fn invalid_emails_are_refused() {
        for raw in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "Name <a@b.com>",
            "a@[127.0.0.1]",
        ] {
            assert!(UserEmail::parse(raw).is_err(), "{raw:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(UserEmail::parse(&long).is_err());
    }

    #[test]
    fn password_bounds_are_in_bytes() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(72)).is_ok());
        assert!(Password::parse(&"x".repeat(73)).is_err());
        // 24 three-byte characters are 72 bytes; one more is over.
        assert!(Password::parse(&"€".repeat(24)).is_ok());
        assert!(Password::parse(&"€".repeat(25)).is_err());
    }

    #[test]
    fn password_debug_hides_the_secret() {
        let password = Password::parse("hunter2hunter2").unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn registration_reports_every_bad_field() {
        let body = JsonObject::parse(br#"{"name": "", "email": "nope", "password": 5}"#).unwrap();
        let errors = Registration::parse(&body).err().expect("invalid");
        let fields: Vec<_> = errors.fields().collect();
        assert_eq!(fields, ["email", "name", "password"]);
    }

    #[quickcheck]
    fn parsed_names_are_trimmed_and_bounded(raw: String) -> bool {
        match UserName::parse(&raw) {
            Ok(name) => {
                let n = name.as_str();
                n == n.trim() && !n.is_empty() && n.chars().count() <= MAX_LEN
            }
            Err(_) => {
                let t = raw.trim();
                t.is_empty() || t.chars().count() > MAX_LEN || t.chars().any(char::is_control)
            }
        }
    }

    #[quickcheck]
    fn email_parsing_is_idempotent(raw: String) -> bool {
        match UserEmail::parse(&raw) {
            Ok(email) => UserEmail::parse(email.as_str()) == Ok(email.clone()),
            Err(_) => true,
        }
    }

    #[quickcheck]
    fn passwords_accept_exactly_8_to_72_bytes(raw: String) -> bool {
        Password::parse(&raw).is_ok() == (8..=72).contains(&raw.len())
    }
}
