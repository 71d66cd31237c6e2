//! A TCP proxy between a service and one of its servers that a test can break, restore
//! or slow down, to stage an outage of MySQL, Redis or RabbitMQ without touching the
//! machine's shared servers under other tests. Breaking drops every open connection and
//! refuses new ones until restored. Delaying holds every chunk going one way for a
//! while (order kept), which is how a reply that comes too late, or a command that
//! reaches the server after its client gave up, is staged. It also counts the bytes the
//! server sends, for tests that bound what a request reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub struct ChaosProxy {
    pub port: u16,
    broken: watch::Sender<bool>,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    request_delay_ms: AtomicU64,
    reply_delay_ms: AtomicU64,
    bytes_from_server: AtomicU64,
}

impl ChaosProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (broken, watcher) = watch::channel(false);
        let state = Arc::new(State::default());
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watcher.borrow() {
                    drop(client);
                    continue;
                }
                let mut watcher = watcher.clone();
                let state = shared.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let requests =
                        pump(client_read, server_write, state.clone(), Direction::Request);
                    let replies = pump(server_read, client_write, state, Direction::Reply);
                    tokio::select! {
                        _ = async { tokio::join!(requests, replies) } => {}
                        _ = watcher.wait_for(|broken| *broken) => {}
                    }
                });
            }
        });
        ChaosProxy {
            port,
            broken,
            state,
        }
    }

    /// A proxy in front of the MySQL server the tests use (`TEST_DB_URL`).
    pub async fn to_mysql() -> Self {
        Self::start(address_of(&crate::server_url(), 3306)).await
    }

    /// A proxy in front of the Redis server the tests use (`TEST_REDIS_URL`).
    pub async fn to_redis() -> Self {
        assert_eq!(
            crate::test_redis::redis_mode(),
            common::config::RedisMode::Single,
            "a proxy stands in front of one Redis server: cluster clients learn the nodes' own addresses and go around it"
        );
        Self::start(address_of(&crate::redis_url(), 6379)).await
    }

    /// A proxy in front of the RabbitMQ broker the tests use (`TEST_AMQP_URL`).
    pub async fn to_rabbitmq() -> Self {
        Self::start(address_of(&crate::rabbit_url(), 5672)).await
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn break_all(&self) {
        self.broken.send_replace(true);
    }

    pub fn restore(&self) {
        self.broken.send_replace(false);
    }

    /// Holds what clients send for `delay` before the server gets it (zero: no delay).
    pub fn delay_requests(&self, delay: Duration) {
        self.state
            .request_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Holds what the server answers for `delay` before clients get it (zero: no delay).
    pub fn delay_replies(&self, delay: Duration) {
        self.state
            .reply_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Bytes the server has sent through the proxy so far.
    pub fn bytes_from_server(&self) -> u64 {
        self.state.bytes_from_server.load(Ordering::SeqCst)
    }
}

/// The server address of a `scheme://[user[:password]@]host[:port][/...]` URL.
pub(crate) fn address_of(url: &str, default_port: u16) -> std::net::SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().expect("a port")),
        None => (host_port, default_port),
    };
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    (
        host.parse::<std::net::IpAddr>()
            .expect("a loopback address"),
        port,
    )
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_come_from_the_test_urls() {
        assert_eq!(
            address_of("mysql://root:pw@127.0.0.1:3307", 3306),
            "127.0.0.1:3307".parse().unwrap()
        );
        assert_eq!(
            address_of("redis://127.0.0.1:6379/0", 6379),
            "127.0.0.1:6379".parse().unwrap()
        );
        assert_eq!(
            address_of("amqp://guest:guest@localhost/%2f", 5672),
            "127.0.0.1:5672".parse().unwrap()
        );
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Reply,
}

/// Copies one direction of a connection, each chunk held for the delay set when it
/// arrived; ends (closing the write side) when the read side ends.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, state: Arc<State>, way: Direction) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = {
        let state = state.clone();
        async move {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let read = match from.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                let delay = match way {
                    Direction::Request => state.request_delay_ms.load(Ordering::SeqCst),
                    Direction::Reply => state.reply_delay_ms.load(Ordering::SeqCst),
                };
                let at = Instant::now() + Duration::from_millis(delay);
                if chunks.send((at, buffer[..read].to_vec())).is_err() {
                    break;
                }
            }
        }
    };
    let writing = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
            if way == Direction::Reply {
                state
                    .bytes_from_server
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}
