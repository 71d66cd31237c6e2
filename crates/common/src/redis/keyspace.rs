//! Key naming: every key under one configurable prefix.

/// The names of keys, all under one configurable prefix so that several deployments or
/// test runs can share a server without seeing each other's keys.
#[derive(Debug, Clone, Default)]
pub struct Keyspace {
    prefix: String,
}

impl Keyspace {
    pub fn new(prefix: impl Into<String>) -> Self {
        Keyspace {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn key(&self, name: impl std::fmt::Display) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Marks a token id as revoked; checked on every authenticated request.
    pub fn revoked_token(&self, jti: &str) -> String {
        self.key(format_args!("revoked:{jti}"))
    }

    /// The stream of revocations and their withdrawals, which every instance follows
    /// (see `crate::revocation`).
    pub fn revocations(&self) -> String {
        self.key("revocations")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix() {
        let keys = Keyspace::new("t1:");
        assert_eq!(keys.revoked_token("abc"), "t1:revoked:abc");
        assert_eq!(keys.revocations(), "t1:revocations");
    }
}
