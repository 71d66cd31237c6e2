//! The cluster side of the shared connection: the `redis` crate's async cluster client,
//! built without its own retries (it would resend a command whose connection broke
//! after sending it, running a purchase twice), with what it then lacks done here:
//!
//! - a command the cluster refused without running it (MOVED, ASK, TRYAGAIN,
//!   CLUSTERDOWN, READONLY during a failover) is sent again, which is always safe: a
//!   MOVED has the client re-read the slots first, an ASK is followed at once behind
//!   ASKING, the others after a short pause;
//! - a connection that fails (a node killed, a timeout) makes the whole client suspect:
//!   the crate re-reads the slot map only when a node answers MOVED, and a master that
//!   died and never came back answers nothing, so its slots would stay routed to it
//!   (and, as measured, the client stalls). A fresh client is built from the live
//!   nodes, at most once a second, and replaces it for every later command.

use redis::aio::ConnectionLike;
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::SingleNodeRoutingInfo;
use redis::{Cmd, Pipeline, RedisResult, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The number of times a command the cluster refused without running it is sent again
/// (each after a short pause), enough to outlast a failover's slot moves.
const REFUSALS_RETRIED: u32 = 8;
/// How often at most a suspect client is replaced.
const REBUILD_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps the current cluster client and replaces it when it fails.
pub(super) struct Reconnector {
    client: ClusterClient,
    config: ClusterConfig,
    current: RwLock<ClusterConnection>,
    rebuilding: AtomicBool,
    last_rebuilt: Mutex<Option<Instant>>,
}

impl Reconnector {
    pub(super) fn new(client: ClusterClient, config: ClusterConfig) -> Arc<Self> {
        let current = client.get_pending_async_connection_with_config(config.clone());
        Arc::new(Reconnector {
            client,
            config,
            current: RwLock::new(current),
            rebuilding: AtomicBool::new(false),
            last_rebuilt: Mutex::new(None),
        })
    }

    /// A handle on the current client (a clone: cheap).
    pub(super) fn current(self: &Arc<Self>) -> ClusterHandle {
        ClusterHandle {
            conn: self
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            reconnector: Arc::clone(self),
        }
    }

    /// Builds a fresh client in the background, unless one is being built or was built
    /// within the last second.
    fn suspect(self: &Arc<Self>) {
        let recent = self
            .last_rebuilt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < REBUILD_INTERVAL);
        if recent || self.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            match this
                .client
                .get_async_connection_with_config(this.config.clone())
                .await
            {
                Ok(fresh) => {
                    *this.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                    tracing::warn!(
                        "Redis Cluster connection failed; reconnected and read the slots afresh"
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, "Redis Cluster connection failed; no node answers yet")
                }
            }
            *this.last_rebuilt.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            this.rebuilding.store(false, Ordering::Release);
        });
    }
}

/// One handle on the cluster client, as [`super::SharedConnection`] hands it out.
#[derive(Clone)]
pub struct ClusterHandle {
    conn: ClusterConnection,
    reconnector: Arc<Reconnector>,
}

impl ClusterHandle {
    /// Sends a command, again while the cluster refuses it unrun.
    pub(super) async fn send(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let mut attempt = 0;
        let mut answer = self.conn.req_packed_command(cmd).await;
        loop {
            let error = match answer {
                Err(error) if refused_unrun(&error) && attempt < REFUSALS_RETRIED => error,
                answered => return self.watch(answered),
            };
            attempt += 1;
            answer = match asked_node(&error) {
                Some(route) => {
                    let mut asking = redis::pipe();
                    asking.cmd("ASKING").ignore().add_command(cmd.clone());
                    self.conn
                        .route_pipeline(asking, 1, 1, route)
                        .await
                        .and_then(|mut replies| replies.pop().ok_or(error))
                }
                None => {
                    tokio::time::sleep(refusal_pause(attempt)).await;
                    self.conn.req_packed_command(cmd).await
                }
            };
        }
    }

    /// Sends a pipeline (its keys are of one slot; [`super::SlotPipeline`] splits those
    /// that are not), again after a pause while the cluster refuses it unrun (an ASK,
    /// rare, until the slot has moved).
    pub(super) async fn send_pipeline(
        &mut self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let mut attempt = 0;
        loop {
            match self.conn.req_packed_commands(pipeline, offset, count).await {
                Err(error) if refused_unrun(&error) && attempt < REFUSALS_RETRIED => {
                    attempt += 1;
                    tokio::time::sleep(refusal_pause(attempt)).await;
                }
                answered => return self.watch(answered),
            }
        }
    }

    pub(super) fn get_db(&self) -> i64 {
        self.conn.get_db()
    }

    /// A failure that is not the cluster's answer (a broken or timed-out connection)
    /// makes the client suspect.
    fn watch<T>(&self, answer: RedisResult<T>) -> RedisResult<T> {
        if let Err(error) = &answer
            && error.code().is_none()
        {
            self.reconnector.suspect();
        }
        answer
    }
}

/// Whether the cluster refused a command without running it: a redirect, or a node that
/// is not (yet) the master of the slot, or a cluster not ready.
fn refused_unrun(error: &redis::RedisError) -> bool {
    use redis::RetryMethod;
    matches!(
        error.retry_method(),
        RetryMethod::MovedRedirect
            | RetryMethod::AskRedirect
            | RetryMethod::WaitAndRetry
            | RetryMethod::RefreshSlotsAndRetry
    ) && error.code().is_some()
}

fn refusal_pause(attempt: u32) -> Duration {
    Duration::from_millis(25 << attempt.min(5))
}

fn asked_node(error: &redis::RedisError) -> Option<SingleNodeRoutingInfo> {
    if !matches!(error.retry_method(), redis::RetryMethod::AskRedirect) {
        return None;
    }
    let (address, _slot) = error.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    Some(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}
