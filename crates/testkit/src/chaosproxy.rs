//! A TCP proxy between a service and one of its servers that a test can break and
//! restore, to stage an outage of MySQL, Redis or RabbitMQ without stopping the
//! machine's shared servers under other tests. Breaking drops every open connection and
//! refuses new ones until restored.

use std::net::SocketAddr;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct ChaosProxy {
    pub port: u16,
    broken: watch::Sender<bool>,
}

impl ChaosProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (broken, watcher) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *watcher.borrow() {
                    drop(client);
                    continue;
                }
                let mut watcher = watcher.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = watcher.wait_for(|broken| *broken) => {}
                    }
                });
            }
        });
        ChaosProxy { port, broken }
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn break_all(&self) {
        self.broken.send_replace(true);
    }

    pub fn restore(&self) {
        self.broken.send_replace(false);
    }
}
