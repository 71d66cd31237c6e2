//! purchase-service over real HTTP, with the real stock-writer draining real RabbitMQ
//! into the real MariaDB, for both purchase strategies.

mod admission;
mod bounds;
mod faults;
mod helpers;
mod instances;
mod lifecycle;
mod operators;
mod ordering;
mod orders;
mod outcomes;
mod payments;
mod purchase;
mod races;
mod replication;
mod shutdown;
mod sold_out;
mod waiting_room;
