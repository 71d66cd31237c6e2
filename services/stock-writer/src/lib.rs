//! stock-writer: persists confirmed purchases from RabbitMQ into MySQL, idempotently and
//! in batches, and owns the operators' commands on Redis's figures: `sync-stock`
//! (stock from MySQL, during sales) and `rebuild-redis` (everything, after Redis lost
//! data).

pub mod apply;
pub mod configuration;
pub mod consumer;
pub mod dlq;
pub mod metrics;
pub mod rebuild;
pub mod startup;
pub mod sync;
