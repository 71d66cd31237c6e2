//! stock-writer: persists confirmed purchases from RabbitMQ into MySQL, idempotently and
//! in batches, and owns `sync-stock`, which rebuilds Redis stock from MySQL.

pub mod apply;
pub mod configuration;
pub mod consumer;
pub mod dlq;
pub mod metrics;
pub mod startup;
pub mod sync;
