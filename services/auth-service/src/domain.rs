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
    /// See [`common::input::display_name`].
    pub fn parse(raw: &str) -> Result<Self, String> {
        common::input::display_name(raw, MAX_LEN).map(|name| UserName(name.to_owned()))
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

/// A new password: 8..=72 characters, counted as the contract's `minLength`/`maxLength`
/// count them (the hasher sees to it that bcrypt's 72-byte limit ignores none of them).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 72;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(format!(
                "The password must be at least {} characters.",
                Self::MIN_CHARS
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(format!(
                "The password may not be greater than {} characters.",
                Self::MAX_CHARS
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
        let mut errors = body.unknown_fields(&["name", "email", "password"]);
        let name = errors.check("name", body.string("name").and_then(UserName::parse));
        let email = errors.check("email", body.string("email").and_then(UserEmail::parse));
        let password = errors.check(
            "password",
            body.string("password").and_then(Password::parse),
        );
        match (name, email, password) {
            (Some(name), Some(email), Some(password)) if errors.is_empty() => Ok(Registration {
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
        let mut errors = body.unknown_fields(&["email", "password"]);
        let email = errors.check("email", body.string("email").and_then(UserEmail::parse));
        let password = errors.check(
            "password",
            body.string("password").and_then(|p| {
                if p.is_empty() {
                    Err("The password field is required.".to_owned())
                } else if p.chars().count() > 1024 {
                    Err("The password may not be greater than 1024 characters.".to_owned())
                } else {
                    Ok(p.to_owned())
                }
            }),
        );
        match (email, password) {
            (Some(email), Some(password)) if errors.is_empty() => {
                Ok(Credentials { email, password })
            }
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
    fn password_bounds_are_in_characters() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(72)).is_ok());
        assert!(Password::parse(&"x".repeat(73)).is_err());
        // 72 three-byte characters are 216 bytes, and still 72 characters.
        assert!(Password::parse(&"€".repeat(72)).is_ok());
        assert!(Password::parse(&"€".repeat(73)).is_err());
        assert!(Password::parse(&"€".repeat(7)).is_err());
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

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let body = JsonObject::parse(
            br#"{"name": "Ann", "email": "ann@example.com", "password": "ann-password", "role": "admin"}"#,
        )
        .unwrap();
        let errors = Registration::parse(&body).err().expect("refused");
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["role"]);
        let body = JsonObject::parse(
            br#"{"email": "ann@example.com", "password": "x", "remember": true}"#,
        )
        .unwrap();
        let errors = Credentials::parse(&body).err().expect("refused");
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["remember"]);
    }

    #[test]
    fn names_are_held_to_the_contract_as_sent() {
        assert!(UserName::parse("Ann\n").is_err());
        assert!(UserName::parse(&format!("  {}", "a".repeat(MAX_LEN - 1))).is_err());
        assert_eq!(UserName::parse("  Ann ").unwrap().as_str(), "Ann");
    }

    #[quickcheck]
    fn parsed_names_are_trimmed_and_bounded(raw: String) -> bool {
        match UserName::parse(&raw) {
            Ok(name) => {
                let n = name.as_str();
                n == n.trim() && !n.is_empty() && n.chars().count() <= MAX_LEN
            }
            Err(_) => {
                raw.trim().is_empty()
                    || raw.chars().count() > MAX_LEN
                    || raw.chars().any(char::is_control)
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
    fn passwords_accept_exactly_8_to_72_characters(raw: String) -> bool {
        Password::parse(&raw).is_ok() == (8..=72).contains(&raw.chars().count())
    }
}
