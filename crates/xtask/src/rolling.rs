//! A rolling restart of the native stack: each instance of a service is replaced by a
//! new one, one at a time, so the service never has fewer ready instances than it had
//! and no request fails. The replacement starts on the old instance's own port (every
//! instance binds with `SO_REUSEPORT`, see `web_layer::handover`), so the gateway's
//! configuration never changes and nginx is never reloaded (a reload cuts clients'
//! idle keep-alive connections, which a POST sent at that moment cannot survive). Once
//! the replacement answers `/readyz` ready under its own pid, the old instance gets
//! SIGTERM: it stops listening at once, answers its open connections with
//! `Connection: close` while it drains, then exits within its bound.

use crate::native::NativeStack;
use crate::{process, step};
use anyhow::bail;
use devstack::{ServiceEnv, probe};
use std::time::{Duration, Instant};

/// How long a replacement may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What replacing one instance did.
#[derive(Debug, Clone)]
pub struct Replaced {
    pub service: String,
    pub port: u16,
    pub old_pid: Option<i32>,
    pub new_pid: i32,
    /// The old instance exited by itself within its bound (false: it had to be killed).
    pub exited_cleanly: bool,
}

/// Replaces every instance of `service`, one at a time; stops at the first replacement
/// that does not become ready, leaving the old instance serving.
pub async fn restart_service(
    stack: &NativeStack,
    service: &str,
    overrides: &ServiceEnv,
) -> anyhow::Result<Vec<Replaced>> {
    let mut replaced = Vec::new();
    for port in stack.ports(service) {
        replaced.push(replace_instance(stack, service, port, overrides).await?);
    }
    Ok(replaced)
}

/// Replaces the instance of `service` on `port` by a new one on the same port.
pub async fn replace_instance(
    stack: &NativeStack,
    service: &str,
    port: u16,
    overrides: &ServiceEnv,
) -> anyhow::Result<Replaced> {
    let old_pid = stack.instance_pid(service, port);
    step(format!("{service} :{port}: starting a replacement"));
    let new_pid = stack.spawn_instance(service, port, overrides)?;
    if !ready_as(port, new_pid, Instant::now() + READY_TIMEOUT).await {
        process::stop(new_pid, libc::SIGTERM, stack.stop_grace());
        if let Some(old) = old_pid {
            stack.write_pid(service, port, old)?;
        }
        bail!(
            "{service} :{port}: the replacement (pid {new_pid}) never became ready; the old instance keeps serving (logs in {})",
            stack
                .log_file(&NativeStack::instance_name(service, port))
                .display()
        );
    }
    let exited_cleanly = match old_pid {
        Some(old) => {
            step(format!("{service} :{port}: stopping pid {old} (SIGTERM)"));
            let exited = process::stop(old, libc::SIGTERM, stack.stop_grace());
            if !exited {
                step(format!(
                    "{service} :{port}: pid {old} did not exit within {:?} and was killed",
                    stack.stop_grace()
                ));
            }
            exited
        }
        None => true,
    };
    Ok(Replaced {
        service: service.to_owned(),
        port,
        old_pid,
        new_pid,
        exited_cleanly,
    })
}

/// Whether the instance with `pid` answers `/readyz` ready on `port` before `deadline`.
/// Each probe is a new connection, which the kernel gives to one of the instances
/// sharing the port: the answers of the others are skipped by their pid.
async fn ready_as(port: u16, pid: i32, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if !process::alive(pid) {
            return false;
        }
        if let Some(answer) = probe::get(port, "/readyz").await
            && answer.status == 200
            && serde_json::from_str::<serde_json::Value>(&answer.body)
                .is_ok_and(|body| body["pid"].as_i64() == Some(i64::from(pid)))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
