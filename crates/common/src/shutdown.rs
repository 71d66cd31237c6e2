//! Graceful shutdown, one way for every service: a [`ShutdownSwitch`] the application
//! owns and flips once (on SIGTERM, or from a test), and [`Shutdown`] handles its
//! background tasks hold (the outbox relay, the publish queue, stock-writer's consumer)
//! to learn that they should finish what they hold and stop. Modelled on mini-redis's
//! `Shutdown`.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Flips every [`Shutdown`] handle it gave out; clones flip the same ones. Dropping the
/// last clone counts as flipping it.
#[derive(Debug, Clone)]
pub struct ShutdownSwitch {
    sender: Arc<watch::Sender<bool>>,
}

/// A task's view of the switch: asks whether shutdown was requested, or waits for it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl ShutdownSwitch {
    pub fn new() -> Self {
        ShutdownSwitch {
            sender: Arc::new(watch::channel(false).0),
        }
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: self.sender.subscribe(),
        }
    }

    /// Requests shutdown; idempotent.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Default for ShutdownSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once shutdown is requested (at once if it already was).
    pub async fn requested(&mut self) {
        // An error means the switch is gone, which is a shutdown too.
        let _ = self.receiver.wait_for(|requested| *requested).await;
    }

    /// Sleeps for `delay`; false if shutdown was requested meanwhile (or before).
    pub async fn sleep(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => !self.is_requested(),
            _ = self.requested() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Awaits `wait`, failing the test with `what` if it takes 10 s: a wait that should
    /// end at once must not hang the run instead.
    async fn within<T>(what: &str, wait: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("{what} did not end within 10 s"))
    }

    #[tokio::test]
    async fn every_handle_learns_of_the_one_trigger() {
        let switch = ShutdownSwitch::new();
        let (mut a, b) = (switch.subscribe(), switch.subscribe());
        assert!(!a.is_requested());
        assert!(a.sleep(Duration::from_millis(1)).await, "not yet");
        switch.trigger();
        within("requested() after the trigger", a.requested()).await;
        assert!(b.is_requested());
        let slept = within(
            "sleep() after the trigger",
            a.sleep(Duration::from_secs(60)),
        )
        .await;
        assert!(!slept, "returns at once");
    }

    #[tokio::test]
    async fn a_dropped_switch_is_a_shutdown() {
        let switch = ShutdownSwitch::new();
        let mut handle = switch.subscribe();
        drop(switch);
        within(
            "requested() after the switch was dropped",
            handle.requested(),
        )
        .await;
    }
}
