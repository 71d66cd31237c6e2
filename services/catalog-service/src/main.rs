//! The catalog-service binary: serves (the default) or seeds the demo items.

use catalog_service::configuration::Settings;
use catalog_service::startup::{self, Application};
use clap::Subcommand;

#[derive(Subcommand)]
enum Command {
    /// Create the demo items (local/testing environments only; idempotent).
    Seed,
}

fn main() -> anyhow::Result<()> {
    web_layer::service::main::<Application, _, _, _>(clap::command!(), run)
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Seed => {
            let catalog = startup::catalog(
                &settings,
                db::pool(&settings.database.url(), 1)?,
                common::redis::client(&settings.redis)?,
            );
            let created = catalog_service::seed::seed(&catalog, settings.app.env).await?;
            println!("seeded {} item(s): {}", created.len(), created.join(", "));
        }
    }
    Ok(())
}
