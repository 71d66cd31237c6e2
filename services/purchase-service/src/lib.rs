//! purchase-service: takes purchases atomically in Redis (Lua by default, the reference
//! lock design on request), hands confirmed orders to RabbitMQ through an outbox that
//! survives broker outages and crashes, and shows a buyer their orders.

pub mod admission;
pub mod configuration;
pub mod domain;
pub mod membership;
pub mod order;
pub mod orders;
pub mod payments;
pub mod publishing;
pub mod purchases;
pub mod relay;
pub mod reservations;
pub mod room;
pub mod routes;
pub mod sold_out;
pub mod startup;
pub mod store_error;
