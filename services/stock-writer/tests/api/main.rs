//! stock-writer against the machine's real RabbitMQ, MariaDB and Redis.

mod consume;
mod helpers;
mod outages;
mod rebuild;
mod sync;
