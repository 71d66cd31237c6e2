//! The auth-service binary: serves (the default) or runs one of its subcommands.

use anyhow::Context;
use auth_service::admin::{self, Outcome};
use auth_service::configuration::Settings;
use auth_service::startup::Application;
use clap::Subcommand;

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations (creating the database if missing).
    Migrate,
    /// Write a new Ed25519 key pair to JWT_PRIVATE_KEY_PATH / JWT_PUBLIC_KEY_PATH.
    Keygen {
        /// Replace existing keys (every issued token stops working).
        #[arg(long)]
        force: bool,
    },
    /// Create the demo accounts (local/testing environments only; idempotent).
    Seed,
    /// Create an admin (password from ADMIN_PASSWORD or stdin); an existing account is
    /// refused unless --promote is given.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// Make an existing account with this email an admin; its password is NOT changed.
        #[arg(long)]
        promote: bool,
    },
}

fn main() -> anyhow::Result<()> {
    web_layer::service::main::<Application, _, _, _>(clap::command!(), run)
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let database = &settings.database;
            db::create_database(&database.server_url(), &database.database).await?;
            let applied = db::run_migrations(&database.url()).await?;
            println!(
                "{} migration(s) applied to {}",
                applied.len(),
                database.database
            );
        }
        Command::Keygen { force } => {
            let jwt = &settings.jwt;
            auth_service::tokens::write_key_pair(
                &jwt.private_key_path,
                &jwt.public_key_path,
                force,
            )
            .context("keygen failed")?;
            println!(
                "wrote {} and {}",
                jwt.private_key_path.display(),
                jwt.public_key_path.display()
            );
        }
        Command::Seed => {
            let created = auth_service::seed::seed(&settings).await?;
            println!(
                "seeded {} account(s): {}",
                created.len(),
                created.join(", ")
            );
        }
        Command::CreateAdmin {
            email,
            name,
            promote,
        } => {
            let outcome =
                admin::create_admin(&settings, &email, &name, promote, admin::read_password)
                    .await?;
            match outcome {
                Outcome::Created(id) => println!("created admin {email} (id {id})"),
                Outcome::Promoted(id) => println!(
                    "promoted existing user {email} (id {id}) to admin; its password is unchanged"
                ),
                Outcome::AlreadyAdmin(id) => println!(
                    "existing user {email} (id {id}) is already an admin; nothing was changed"
                ),
            }
        }
    }
    Ok(())
}
