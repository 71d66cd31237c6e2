use catalog_service::configuration::Settings;
use catalog_service::startup::{self, Application};
use clap::{Parser, Subcommand};

/// The items API of the flash-sale system.
#[derive(Parser)]
#[command(name = "catalog-service", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create the demo items (local/testing environments only; idempotent).
    Seed,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    common::telemetry::init(&settings.app);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Seed => {
            let catalog = startup::catalog(
                &settings,
                db::pool(&settings.database.url(), 1)?,
                common::redis::pool(&settings.redis)?,
            );
            let created = catalog_service::seed::seed(&catalog, settings.app.env).await?;
            println!("seeded {} item(s): {}", created.len(), created.join(", "));
        }
    }
    Ok(())
}
