//! `auth-service create-admin`: creates an admin, or, only when asked with `--promote`,
//! makes an existing account one. Anyone may have registered the email first, and an
//! existing account keeps its own password, so promoting it silently would hand admin to
//! whoever registered it. The password of a new admin comes from `ADMIN_PASSWORD` or
//! standard input, never a default.

use crate::configuration::Settings;
use crate::domain::{Password, UserEmail, UserName};
use crate::password::PasswordHasher;
use crate::users::{self, NewUser};
use anyhow::{Context, anyhow};
use common::jwt::Role;
use std::io::BufRead;

/// What was done, by user id.
pub enum Outcome {
    Created(u64),
    /// An existing account made admin (`--promote`); its password is unchanged.
    Promoted(u64),
    /// An existing account that already was an admin (`--promote`); nothing changed.
    AlreadyAdmin(u64),
}

/// `read_password` is asked only when a new account is created.
pub async fn create_admin(
    settings: &Settings,
    email: &str,
    name: &str,
    promote: bool,
    read_password: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<Outcome> {
    let email = UserEmail::parse(email).map_err(|e| anyhow!(e))?;
    let name = UserName::parse(name).map_err(|e| anyhow!(e))?;
    let pool = db::pool(&settings.database.url(), 1)?;
    let mut conn = pool.get().await.context("cannot connect to MySQL")?;
    if let Some(user) = users::find_by_email(&mut conn, email.as_str()).await? {
        if !promote {
            anyhow::bail!(
                "{} is already registered (user id {}); nothing was changed. Pass --promote to \
                 make that existing account an admin: its password is NOT changed, so whoever \
                 registered it keeps logging in with it",
                email.as_str(),
                user.id
            );
        }
        if user.role() == Role::Admin {
            return Ok(Outcome::AlreadyAdmin(user.id));
        }
        users::set_role(&mut conn, user.id, Role::Admin).await?;
        return Ok(Outcome::Promoted(user.id));
    }
    let password = Password::parse(&read_password()?).map_err(|e| anyhow!(e))?;
    let hasher = PasswordHasher::new(settings.auth.bcrypt_rounds).await?;
    let password_hash = hasher.hash(password.expose()).await?;
    let user = users::insert(
        &mut conn,
        NewUser {
            name: name.as_str(),
            email: email.as_str(),
            password_hash: &password_hash,
            role: Role::Admin.as_str(),
        },
    )
    .await?;
    Ok(Outcome::Created(user.id))
}

/// The new admin's password: `ADMIN_PASSWORD`, or a line of standard input.
pub fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("ADMIN_PASSWORD") {
        return Ok(password);
    }
    eprintln!("Admin password (8-72 characters), then Enter:");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password given: set ADMIN_PASSWORD or type it on standard input");
    }
    Ok(password)
}
