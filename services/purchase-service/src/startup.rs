//! Builds the purchase-service from its settings (tests start it on port 0): the
//! configured strategy, the publisher, the outbox relay, the expiry worker, this
//! instance's entry among the live instances (which splits the relay's, the expiry
//! worker's and the admission buckets' work among them) and the HTTP server; and stops
//! it gracefully: not ready while it still serves for `SHUTDOWN_DRAIN_SECS`, then no new
//! purchases, in-flight ones answered, the publish queue drained and confirmed, the relay
//! stopped, all within `SHUTDOWN_DRAIN_SECS` + `SHUTDOWN_TIMEOUT_SECS` of the signal.

use crate::admission::Admission;
use crate::configuration::{PurchaseOwn, Settings, Strategy};
use crate::membership::Registry;
use crate::orders::Orders;
use crate::payments::Payments;
use crate::publishing::{PublishQueue, PublishSettings};
use crate::purchases::Purchases;
use crate::relay::Relay;
use crate::reservations::ReservationEnds;
use crate::routes;
use crate::sold_out::{self, SoldOutMarks};
use actix_web::dev::ServerHandle;
use actix_web::web;
use common::shutdown::ShutdownSwitch;
use events::{Publisher, Topology};
use inventory::lifecycle::CancelAllowance;
use inventory::selling::Marker;
use inventory::{DistributedLock, Inventory};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use web_layer::bootstrap::Infrastructure;
use web_layer::service::{Running, Service, Serving};

/// purchase-service, as `main` and the tests build it.
pub struct Application;

/// purchase-service started: the HTTP server, the publishing task and the relay.
pub struct PurchaseService {
    http: Serving,
    /// Tells the publishing task to drain and the relay to stop.
    shutdown: ShutdownSwitch,
    background: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
    pub purchases: Arc<Purchases>,
}

impl Service for Application {
    type Own = PurchaseOwn;
    type Running = PurchaseService;

    async fn start(
        settings: Settings,
        mut infra: Infrastructure,
    ) -> anyhow::Result<PurchaseService> {
        crate::configuration::check_answer_bound(&settings).map_err(anyhow::Error::msg)?;
        let store = Inventory::new(infra.redis.clone(), infra.keys.clone())
            .settling_within(Duration::from_millis(settings.purchase.outcome_timeout_ms));
        if settings.purchase.strategy == Strategy::Lua
            && let Err(error) = store.stock.preload_purchase_script().await
        {
            tracing::warn!(%error, "could not preload the purchase script; it loads on first use");
        }
        let publisher = Arc::new(Publisher::new(
            settings.rabbitmq.url(),
            Topology::new(&settings.rabbitmq.prefix),
            Duration::from_millis(settings.rabbitmq.publish_timeout_ms),
        ));
        let metrics = &mut infra.metrics;
        let outcomes = metrics.register(
            "purchase_outcomes",
            "Purchase attempts by strategy and outcome",
            Family::default(),
        );
        let live_instances = metrics.register(
            "purchase_instances_live",
            "Live purchase-service instances as this one last saw them (1 while its heartbeat fails)",
            Gauge::default(),
        );
        let republished = metrics.register(
            "outbox_republished",
            "Orders this instance's outbox relay republished",
            Counter::default(),
        );
        let room_answers = metrics.register(
            "waiting_room_answers",
            "Waiting-room joins and ticket reads by what they answered (a ticket's state, no_ticket, unknown_item, no_room, error)",
            Family::default(),
        );
        let expired = metrics.register(
            "reservations_expired",
            "Reservations this instance's expiry worker expired",
            Counter::default(),
        );
        let registry = Registry::new(
            infra.redis.clone(),
            &infra.keys,
            Duration::from_millis(settings.purchase.instance_heartbeat_ms),
            live_instances,
        );
        // Joined before serving, so the first purchase already sees every instance.
        if let Err(error) = registry.beat().await {
            tracing::warn!(%error, "could not join the instance registry; acting alone until a heartbeat succeeds");
        }
        let membership = registry.membership();
        let shutdown = ShutdownSwitch::new();
        let (publishing, publishing_task) = PublishQueue::start(
            publisher.clone(),
            store.clone(),
            PublishSettings {
                capacity: settings.purchase.publish_queue_capacity,
                max_in_flight: settings.purchase.max_publishes_in_flight,
                batch_max: settings.purchase.publish_batch_max,
                republish_after_ms: settings.purchase.republish_after_ms,
            },
            shutdown.subscribe(),
        );
        let sold_out =
            SoldOutMarks::new(Duration::from_millis(settings.purchase.sold_out_recheck_ms));
        let orders = Orders {
            outbox: store.outbox.clone(),
            selling: store.selling.clone(),
            reservations: store.reservations.clone(),
            db: infra.db.clone(),
        };
        let ends = ReservationEnds {
            reservations: store.reservations.clone(),
            stock: store.stock.clone(),
            orders: orders.clone(),
            publishing: publishing.clone(),
            sold_out: sold_out.clone(),
            cancels: CancelAllowance {
                per_window: settings.purchase.cancels_per_item,
                window_secs: settings.purchase.cancel_window_secs,
            },
        };
        let payments = Payments {
            ends: ends.clone(),
            publisher: publisher.clone(),
            secret: settings.purchase.payment_webhook_secret.clone(),
            tolerance_secs: settings.purchase.payment_webhook_tolerance_secs,
        };
        let purchases = Purchases {
            strategy: settings.purchase.strategy,
            store: store.clone(),
            lock: DistributedLock::new(infra.redis.clone(), settings.lock.clone()),
            after_watch: None,
            publishing,
            orders: orders.clone(),
            settings: settings.purchase.clone(),
            outcomes,
            admission: Admission::new(
                f64::from(settings.purchase.rate_per_user),
                settings.purchase.burst_per_user,
            )
            .shared_among(membership.clone()),
            sold_out: sold_out.clone(),
            selling: Arc::new(Marker::new(store.selling.clone())),
        };
        let relay = Relay {
            store,
            publisher: publisher.clone(),
            interval: Duration::from_millis(settings.purchase.relay_interval_ms),
            relay_after_ms: settings.purchase.relay_after_ms,
            republish_after_ms: settings.purchase.republish_after_ms,
            max_in_flight: settings.purchase.max_publishes_in_flight,
            batch_max: settings.purchase.publish_batch_max,
            membership: membership.clone(),
            republished,
        };
        let relay_task = tokio::spawn(relay.run(shutdown.subscribe()));
        let stock_back_task = tokio::spawn(sold_out::listen_for_stock_back(
            sold_out,
            settings.redis.clone(),
            purchases.store.stock.stock_back_channel(),
            shutdown.subscribe(),
        ));
        let expiry_task = tokio::spawn(ends.clone().expire_until_stopped(
            Duration::from_millis(settings.purchase.expiry_interval_ms),
            membership,
            expired,
            shutdown.subscribe(),
        ));
        let heartbeat_task = tokio::spawn(registry.run(shutdown.subscribe()));

        let authenticator = infra.authenticator(&settings.jwt)?;
        infra.readiness = infra.readiness.with_check("rabbitmq", move || {
            let publisher = publisher.clone();
            async move {
                if publisher.is_connected().await {
                    Ok(())
                } else {
                    Err("not connected (purchases still succeed; the outbox holds them)".into())
                }
            }
        });

        let room = web::Data::new(crate::room::Room {
            room: purchases.store.room.clone(),
            answers: room_answers,
        });
        let purchases = Arc::new(purchases);
        let shared = web::Data::from(Arc::clone(&purchases));
        let (orders, ends, payments) = (
            web::Data::new(orders),
            web::Data::new(ends),
            web::Data::new(payments),
        );
        let http = infra.serve(&settings.app, Some(authenticator), move |cfg| {
            cfg.app_data(shared.clone())
                .app_data(orders.clone())
                .app_data(ends.clone())
                .app_data(payments.clone())
                .app_data(room.clone());
            routes::configure(cfg);
        })?;
        tracing::info!(strategy = ?settings.purchase.strategy, "purchase strategy");
        Ok(PurchaseService {
            http,
            shutdown,
            background: vec![
                publishing_task,
                relay_task,
                expiry_task,
                stock_back_task,
                heartbeat_task,
            ],
            shutdown_timeout: Duration::from_secs(settings.app.shutdown_timeout_secs),
            purchases,
        })
    }
}

impl Running for PurchaseService {
    fn port(&self) -> u16 {
        self.http.port()
    }

    /// Serves until SIGINT/SIGTERM (or [`PurchaseService::handle`]'s stop); the server
    /// stops taking requests and answers those in flight, then the publish queue drains
    /// and the relay stops. Whatever is not confirmed by the deadline stays in the outbox
    /// for the relay of the next start.
    async fn run_until_stopped(self) -> anyhow::Result<()> {
        let signalled = tokio::spawn(async {
            web_layer::handover::shutdown_signal().await;
            Instant::now()
        });
        let served = self.http.into_server().await;
        let since = if signalled.is_finished() {
            signalled.await.unwrap_or_else(|_| Instant::now())
        } else {
            signalled.abort();
            Instant::now()
        };
        self.shutdown.trigger();
        let remaining = self.shutdown_timeout.saturating_sub(since.elapsed());
        let drained = tokio::time::timeout(remaining, async {
            for task in self.background {
                let _ = task.await;
            }
        })
        .await;
        match drained {
            Ok(()) => tracing::info!("publish queue drained; stopped"),
            Err(_) => tracing::warn!(
                "shutdown timeout reached before every publish was confirmed; the relay republishes the rest after restart"
            ),
        }
        Ok(served?)
    }
}

impl PurchaseService {
    /// Stops the server as SIGTERM does (for tests).
    pub fn handle(&self) -> ServerHandle {
        self.http.handle()
    }
}
