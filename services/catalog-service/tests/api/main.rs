//! catalog-service over real HTTP against the machine's real MariaDB and Redis.

mod admin;
mod eviction;
mod helpers;
mod lock;
mod reads;
mod sync_race;
mod unacknowledged;
mod warmup;
