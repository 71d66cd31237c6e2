//! `loadgen`: many concurrent buyers, each with its own JWT, hammering purchase
//! endpoints in a closed loop (each buyer waits for its answer) or an open loop (a fixed
//! request rate, latency measured from the scheduled send time so a stalled server is
//! not hidden). A library so that `cargo xtask bench` and `cargo xtask chaos` run it in
//! their own process and read a typed [`Summary`]; `main.rs` is the command line over it.

mod driver;
pub mod lifecycle;
pub mod room;
mod run;
mod summary;
mod tally;
mod tokens;

pub use run::Run;
pub use summary::{Latency, Mode, Outcome, SaleFigures, Second, Summary};
pub use tokens::sign_tokens;
