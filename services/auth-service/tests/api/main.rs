//! auth-service over real HTTP against the machine's real MariaDB and Redis.

mod admin;
mod feed;
mod helpers;
mod login;
mod passwords;
mod register;
mod tokens;
