use clap::{Parser, Subcommand};
use stock_writer::configuration::Settings;
use stock_writer::startup::{self, Application};

/// Persists stock events from RabbitMQ into MySQL.
#[derive(Parser)]
#[command(name = "stock-writer", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume and persist events (the default).
    Serve,
    /// Rebuild Redis stock from MySQL, for one item or all; safe during purchases.
    SyncStock {
        /// Only this item.
        item_id: Option<u64>,
    },
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
        Command::SyncStock { item_id } => {
            let db = db::pool(&settings.database.url(), 1)?;
            let store = startup::store(&settings)?;
            for report in stock_writer::sync::sync_stock(&db, &store, item_id).await? {
                println!(
                    "item {}: mysql {} - pending {} => redis {} (was {}){}",
                    report.item_id,
                    report.mysql_stock,
                    report.pending,
                    report.after,
                    report.before.map_or("unset".into(), |b| b.to_string()),
                    if report.shortfall > 0 {
                        format!(", SHORTFALL {}", report.shortfall)
                    } else {
                        String::new()
                    },
                );
            }
        }
    }
    Ok(())
}
