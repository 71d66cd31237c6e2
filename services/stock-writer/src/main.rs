//! The stock-writer binary: consumes (the default), rebuilds Redis stock, or looks after
//! the orders it refused.

use clap::Subcommand;
use events::Topology;
use std::time::Duration;
use stock_writer::configuration::Settings;
use stock_writer::dlq;
use stock_writer::startup::{self, Application};

#[derive(Subcommand)]
enum Command {
    /// Rebuild Redis stock from MySQL, for one item or all; safe during purchases.
    SyncStock {
        /// Only this item.
        item_id: Option<u64>,
    },
    /// After Redis lost data: take items off sale, let the orders Redis still has reach
    /// MySQL, rebuild stock, buyers' counts and limits from MySQL, put them back on sale.
    RebuildRedis {
        /// Only this item.
        item_id: Option<u64>,
        /// Give up (items stay off sale) if the orders have not drained by then.
        #[arg(long, default_value_t = 300)]
        drain_timeout_secs: u64,
    },
    /// Orders stock-writer refused for good (parked, and dead-lettered).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List the parked orders with the reason each was refused.
    List,
    /// Put parked orders (all, or one) back to be applied again, once the cause is fixed.
    Replay {
        /// Only this order.
        order_id: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    web_layer::service::main::<Application, _, _, _>(clap::command!(), run)
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::SyncStock { item_id } => {
            let sync = startup::stock_sync(&settings)?;
            for report in sync.run(item_id).await? {
                let redis = report.redis;
                println!(
                    "item {}: mysql {} - pending {} => redis {} (was {}){}",
                    report.item_id,
                    report.mysql_stock,
                    redis.pending,
                    redis.after,
                    redis.before.map_or("unset".into(), |b| b.to_string()),
                    if redis.shortfall > 0 {
                        format!(", SHORTFALL {}", redis.shortfall)
                    } else {
                        String::new()
                    },
                );
            }
        }
        Command::RebuildRedis {
            item_id,
            drain_timeout_secs,
        } => {
            let rebuild =
                startup::redis_rebuild(&settings, Duration::from_secs(drain_timeout_secs))?;
            let reports = rebuild.run(item_id, |step| println!("{step}")).await?;
            for report in &reports {
                let redis = report.redis;
                println!(
                    "item {}: stock {} -> {} (MySQL {}, pending {}{}), buyers {} ({} units) -> {} ({} units), {} reservation(s) put back, {}",
                    report.item_id,
                    redis.stock_before.map_or("unset".into(), |b| b.to_string()),
                    redis.stock_after,
                    report.mysql_stock,
                    redis.pending,
                    if redis.shortfall > 0 {
                        format!(", SHORTFALL {}", redis.shortfall)
                    } else {
                        String::new()
                    },
                    redis.bought_before.0,
                    redis.bought_before.1,
                    redis.bought_after.0,
                    redis.bought_after.1,
                    report.reservations_restored,
                    if report.on_sale {
                        "back on sale"
                    } else {
                        "off sale (deleted)"
                    },
                );
            }
            println!("{} item(s) rebuilt", reports.len());
        }
        Command::Dlq { command } => {
            let store = startup::store(&settings)?;
            match command {
                DlqCommand::List => {
                    let parked = dlq::list(&store).await?;
                    for order in &parked {
                        let at = chrono::DateTime::from_timestamp_millis(order.parked_at_ms)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default();
                        println!(
                            "order {} item {} parked {at}: {}",
                            order.order_id, order.item_id, order.reason
                        );
                    }
                    println!("{} parked order(s)", parked.len());
                    let topology = Topology::new(&settings.rabbitmq.prefix);
                    match dlq::message_count(&settings.rabbitmq.url(), &topology.dead_letter_queue)
                        .await
                    {
                        Ok(count) => println!(
                            "{count} message(s) in {} (every refused message, unreadable ones included)",
                            topology.dead_letter_queue
                        ),
                        Err(error) => {
                            println!("could not count {}: {error}", topology.dead_letter_queue)
                        }
                    }
                }
                DlqCommand::Replay { order_id } => {
                    let replayed = dlq::replay(&store, order_id.as_deref()).await?;
                    for order in &replayed {
                        println!(
                            "order {} item {} put back into the outbox",
                            order.order_id, order.item_id
                        );
                    }
                    println!(
                        "{} order(s) put back; purchase-service's relay publishes them again",
                        replayed.len()
                    );
                }
            }
        }
    }
    Ok(())
}
