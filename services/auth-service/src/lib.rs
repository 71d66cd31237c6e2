//! auth-service: users, registration and login, and the Ed25519-signed JWTs every other
//! service verifies.

pub mod accounts;
pub mod admin;
pub mod attempts;
pub mod configuration;
pub mod domain;
pub mod password;
pub mod routes;
pub mod seed;
pub mod startup;
pub mod throttle;
pub mod tokens;
pub mod users;
