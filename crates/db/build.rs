//! Rebuilds the crate when a migration is added: `embed_migrations!` reads the
//! directory at compile time, and cargo would not look at it again by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
