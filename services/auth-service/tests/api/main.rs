//! auth-service over real HTTP against the machine's real MariaDB and Redis.

mod helpers;
mod login;
mod register;
mod tokens;
