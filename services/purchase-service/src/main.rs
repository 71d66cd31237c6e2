//! The purchase-service binary: it serves, and has no subcommands of its own.

use purchase_service::startup::Application;
use web_layer::service::NoSubcommand;

fn main() -> anyhow::Result<()> {
    web_layer::service::main::<Application, _, _, _>(clap::command!(), NoSubcommand::run)
}
