//! Starting a service in a test the way its binary starts it (`web_layer::service`):
//! built from settings pointed at the test's own database, key prefix and queues, served
//! in the background on a free port, reached through a [`Client`].

use crate::{Client, TestEnv};
use common::config::Settings;
use tokio::task::JoinHandle;
use web_layer::service::{Running, Service};

/// Builds service `S` and serves it in the background, in the test's runtime (an
/// `actix_web::test`); returns a client for it and the task that ends when it stops.
pub async fn serve<S: Service>(
    settings: Settings<S::Own>,
) -> (Client, JoinHandle<anyhow::Result<()>>) {
    let running = S::build(settings).await.expect("build the service");
    let client = Client::new(format!("http://127.0.0.1:{}", running.port()));
    (
        client,
        tokio::task::spawn_local(running.run_until_stopped()),
    )
}

impl TestEnv {
    /// Service `S` on settings pointed here, customized first (see [`serve`]); returns a
    /// client for it and the settings it runs with.
    pub async fn spawn<S: Service>(
        &self,
        customize: impl FnOnce(&mut Settings<S::Own>),
    ) -> (Client, Settings<S::Own>)
    where
        S::Own: Clone,
    {
        let mut settings = self.settings();
        customize(&mut settings);
        let (client, _) = serve::<S>(settings.clone()).await;
        (client, settings)
    }
}
