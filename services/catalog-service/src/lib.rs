//! catalog-service: the items API. Public reads show the live Redis stock; admin writes
//! keep MySQL (the record) and Redis (the hot path) in step under a per-item lock.

pub mod catalog;
pub mod configuration;
pub mod domain;
pub mod items;
pub mod routes;
pub mod seed;
pub mod startup;
