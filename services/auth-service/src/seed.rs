//! `auth-service seed`: the reference's demo accounts (`test@example.com` and
//! `admin@example.com`, password `password`), for local and testing environments only.
//! Idempotent: an existing account is left as it is.

use crate::configuration::Settings;
use crate::password::PasswordHasher;
use crate::users::{self, NewUser};
use anyhow::Context;
use common::jwt::Role;

pub const DEMO_PASSWORD: &str = "password";
pub const DEMO_USERS: [(&str, &str, Role); 2] = [
    ("Test User", "test@example.com", Role::User),
    ("Admin", "admin@example.com", Role::Admin),
];

pub async fn seed(settings: &Settings) -> anyhow::Result<Vec<&'static str>> {
    if settings.app.env.is_production() {
        anyhow::bail!("refusing to seed demo accounts with APP_ENV=production");
    }
    let pool = db::pool(&settings.database.url(), 1)?;
    let mut conn = pool.get().await.context("cannot connect to MySQL")?;
    let hasher = PasswordHasher::new(settings.auth.bcrypt_rounds).await?;
    let mut created = Vec::new();
    for (name, email, role) in DEMO_USERS {
        if users::find_by_email(&mut conn, email).await?.is_some() {
            continue;
        }
        let password_hash = hasher.hash(DEMO_PASSWORD).await?;
        let new = NewUser {
            name,
            email,
            password_hash: &password_hash,
            role: role.as_str(),
        };
        users::insert(&mut conn, new).await?;
        created.push(email);
    }
    Ok(created)
}
