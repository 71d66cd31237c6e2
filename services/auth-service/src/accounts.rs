//! The account use cases behind the auth endpoints: register, log in, look up, log out,
//! refresh. Free of HTTP: handlers parse input into domain types, call these, and map
//! an [`AccountError`] to the HTTP answer.

use crate::domain::{Credentials, Registration};
use crate::password::{HashError, PasswordHasher, Verdict};
use crate::throttle::{LoginIdentity, LoginThrottle, RefreshLimit, RegisterLimit};
use crate::tokens::{IssuedToken, TokenIssuer};
use crate::users::{self, NewUser, User};
use common::auth::{AuthError, Authenticator, Caller, reject};
use common::client::ClientAddress;
use common::jwt::{Role, now_secs};
use db::DbPool;

/// Why an account operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the email has already been taken")]
    EmailTaken,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error(transparent)]
    Database(#[from] db::Error),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No password hashing slot came free in time.
    #[error(transparent)]
    Busy(HashError),
    /// Hashing or signing failed: a defect.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<HashError> for AccountError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy(_) => AccountError::Busy(error),
            HashError::Failed(error) => AccountError::Internal(error),
        }
    }
}

impl From<diesel::result::Error> for AccountError {
    fn from(error: diesel::result::Error) -> Self {
        AccountError::Database(error.into())
    }
}

#[derive(Clone)]
pub struct Accounts {
    pub db: DbPool,
    pub hasher: PasswordHasher,
    pub issuer: TokenIssuer,
    pub throttle: LoginThrottle,
    pub refresh_limit: RefreshLimit,
    pub register_limit: RegisterLimit,
    pub authenticator: Authenticator,
}

impl Accounts {
    async fn conn(
        &self,
    ) -> Result<db::PooledConnection<diesel_async::AsyncMysqlConnection>, AccountError> {
        Ok(db::connection(&self.db).await?)
    }

    /// Counted per client address first, whatever comes of it.
    pub async fn register(
        &self,
        registration: Registration,
        address: &ClientAddress,
    ) -> Result<(User, IssuedToken), AccountError> {
        self.register_limit.count(address).await?;
        let mut conn = self.conn().await?;
        // Checked first only to spare a bcrypt hash; the UNIQUE index decides races.
        if users::find_by_email(&mut conn, registration.email.as_str())
            .await?
            .is_some()
        {
            return Err(AccountError::EmailTaken);
        }
        let password_hash = self.hasher.hash(registration.password.expose()).await?;
        let new = NewUser {
            name: registration.name.as_str(),
            email: registration.email.as_str(),
            password_hash: &password_hash,
            role: Role::User.as_str(),
        };
        let user = match users::insert(&mut conn, new).await {
            Ok(user) => user,
            Err(error) if db::is_unique_violation(&error) => return Err(AccountError::EmailTaken),
            Err(error) => return Err(error.into()),
        };
        tracing::info!(user_id = user.id, "user registered");
        let token = self.issuer.issue(user.id, user.role())?;
        Ok((user, token))
    }

    /// Every attempt is counted before the password is checked (so racing guesses
    /// cannot outrun the limit); a successful one is given back. The counters are keyed
    /// by the email's identity under the look-up's collation, so every spelling MySQL
    /// takes for one account (case, accents) spends the same attempts.
    pub async fn login(
        &self,
        credentials: Credentials,
        address: &ClientAddress,
    ) -> Result<IssuedToken, AccountError> {
        let email = credentials.email.as_str();
        self.throttle.begin_at(address).await?;
        let mut conn = self.conn().await?;
        let identity =
            LoginIdentity::from_sort_key(&users::email_sort_key(&mut conn, email).await?);
        self.throttle.begin(&identity, address).await?;
        let user = users::find_by_email(&mut conn, email).await?;
        drop(conn);
        let stored_hash = user.as_ref().map(|u| u.password_hash.as_str());
        let verdict = self
            .hasher
            .verify(&credentials.password, stored_hash)
            .await?;
        match user {
            Some(user) if verdict.is_valid() => {
                if verdict == Verdict::Outdated {
                    self.rehash(&user, &credentials.password).await;
                }
                if let Err(error) = self.throttle.succeeded(&identity, address).await {
                    // Costs the owner one attempt at worst: not worth refusing the login.
                    tracing::warn!(%error, "could not give back a successful login's attempt");
                }
                tracing::info!(user_id = user.id, "login succeeded");
                Ok(self.issuer.issue(user.id, user.role())?)
            }
            _ => {
                tracing::info!("login failed");
                Err(AccountError::InvalidCredentials)
            }
        }
    }

    /// Replaces a hash made the old way (see [`crate::password`]) after its password
    /// matched. A failure costs nothing but another try at the next login.
    async fn rehash(&self, user: &User, password: &str) {
        let replaced = async {
            let hash = self.hasher.hash(password).await?;
            users::set_password_hash(&mut *self.conn().await?, user.id, &hash).await?;
            Ok::<_, AccountError>(())
        };
        match replaced.await {
            Ok(()) => tracing::info!(user_id = user.id, "outdated password hash replaced"),
            Err(error) => tracing::warn!(%error, "could not replace an outdated password hash"),
        }
    }

    pub async fn me(&self, caller: &Caller) -> Result<User, AccountError> {
        users::find(&mut *self.conn().await?, caller.id)
            .await?
            .ok_or(AccountError::Auth(AuthError::Unauthenticated))
    }

    pub async fn logout(&self, caller: &Caller) -> Result<(), AccountError> {
        self.authenticator.revoke(&caller.claims).await?;
        tracing::info!(user_id = caller.id, "logged out");
        Ok(())
    }

    /// Exchanges a token (expired but within the refresh window is fine, revoked never)
    /// for a new one; the old one is revoked. The role is re-read, so a demotion takes
    /// effect at the next refresh. Counted per user only once the token is known good,
    /// so nobody can spend another user's refreshes without their token.
    ///
    /// The old token counts as refreshed only once the new one is issued: when the
    /// revocation fails (not known to be on enough replicas, say), it is withdrawn
    /// before the 503, so the retry can refresh rather than find the token revoked and
    /// its user logged out. Of racing refreshes still exactly one gets a new token.
    pub async fn refresh(&self, token: &str) -> Result<IssuedToken, AccountError> {
        let claims = self
            .authenticator
            .verifier
            .verify_for_refresh(token, now_secs())
            .map_err(reject)?;
        // Looked up, never from the feed: see `Authenticator::admit_looked_up`.
        let caller = self.authenticator.admit_looked_up(claims).await?;
        self.refresh_limit.count(caller.id).await?;
        let user = self.me(&caller).await?;
        let holder = uuid::Uuid::new_v4().simple().to_string();
        match self.authenticator.revoke_as(&caller.claims, &holder).await {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::Unauthenticated.into()),
            Err(error) => {
                if let Err(withdrawal) = self.authenticator.withdraw(&caller.claims, &holder).await
                {
                    // Then the retry finds the token revoked: what happened before.
                    tracing::warn!(error = %withdrawal, "could not withdraw a failed refresh's revocation");
                }
                return Err(error.into());
            }
        }
        Ok(self.issuer.issue(user.id, user.role())?)
    }
}
