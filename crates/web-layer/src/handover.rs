//! How an instance hands its port over to its replacement without failing a request.
//! Every instance binds its port with `SO_REUSEPORT`, so a replacement started on the
//! same port listens beside it and the kernel spreads new connections over both; the
//! gateway's configuration never changes, so nothing reloads it and no client's
//! connection to it is cut. On SIGTERM the old instance stops listening at once (new
//! connections go to the replacement, or are refused, which the gateway retries on
//! another instance: nothing was sent), reports not ready, and for `SHUTDOWN_DRAIN_SECS`
//! keeps answering on the connections it has, each answer with `Connection: close`, so
//! the gateway retires those connections itself rather than have one closed under a
//! request it is sending; then it answers what is in flight and exits.

use crate::http::Readiness;
use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

/// Pending connections the kernel queues for an instance (the std default is 128).
const BACKLOG: u32 = 1024;

/// Binds `host:port` (port 0 picks a free one) so that another instance may bind the
/// same port beside it (`SO_REUSEPORT`).
pub fn bind_shared(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let address: SocketAddr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host} resolves to no address"),
        )
    })?;
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)?.into_std()
}

/// At SIGTERM/SIGINT: stops listening on `listener` (a handle on the server's
/// listening socket), reports not ready and keeps answering on open connections for
/// `drain`, then takes no more requests and answers those in flight within
/// `shutdown_timeout`; a second signal skips the rest of the drain.
pub async fn stop_after_draining(
    server: ServerHandle,
    listener: TcpListener,
    readiness: Readiness,
    drain: Duration,
    shutdown_timeout: Duration,
) {
    shutdown_signal().await;
    readiness.start_draining();
    server.pause().await;
    if let Err(error) = socket2::SockRef::from(&listener).shutdown(std::net::Shutdown::Read) {
        tracing::warn!(%error, "could not stop listening; the drain goes on");
    }
    drop(listener);
    tracing::info!(
        drain_secs = drain.as_secs(),
        exits_within_secs = (drain + shutdown_timeout).as_secs(),
        "shutdown requested: not listening, not ready, answering open connections with Connection: close"
    );
    tokio::select! {
        () = tokio::time::sleep(drain) => {}
        () = shutdown_signal() => {}
    }
    tracing::info!("drained: answering what is in flight, then exiting");
    server.stop(true).await;
}

/// While the instance drains, every answer closes its connection (`Connection: close`).
pub async fn close_while_draining(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let draining = request
        .app_data::<web::Data<Readiness>>()
        .is_some_and(|readiness| readiness.is_draining());
    let mut response = next.call(request).await?;
    if draining {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}

/// Resolves at the first SIGTERM or SIGINT (the signals actix's server stops on), so a
/// service can time the rest of its shutdown from it.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    #[tokio::test]
    async fn two_instances_share_a_port_and_the_one_that_stops_listening_gets_nothing_more() {
        let old = bind_shared("127.0.0.1", 0).expect("bind");
        let port = old.local_addr().expect("address").port();
        let new = bind_shared("127.0.0.1", port).expect("a second listener on the same port");
        socket2::SockRef::from(&old)
            .shutdown(std::net::Shutdown::Read)
            .expect("stop listening");
        for _ in 0..20 {
            let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let (mut accepted, _) = new.accept().expect("the new listener takes it");
            client.write_all(b"x").expect("write");
            let mut byte = [0u8; 1];
            accepted.read_exact(&mut byte).expect("read");
        }
        old.set_nonblocking(true).expect("nonblocking");
        assert!(
            old.accept().is_err(),
            "the stopped listener took a connection"
        );
    }

    #[actix_web::test]
    async fn a_draining_instance_closes_each_connection_it_answers_on() {
        use actix_web::test::{TestRequest, call_service, init_service};
        use actix_web::{App, HttpResponse, middleware::from_fn};
        let readiness = Readiness::default();
        let app = init_service(
            App::new()
                .wrap(from_fn(close_while_draining))
                .app_data(web::Data::new(readiness.clone()))
                .route("/", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let before = call_service(&app, TestRequest::get().uri("/").to_request()).await;
        assert_ne!(
            before.response().head().connection_type(),
            ConnectionType::Close
        );
        readiness.start_draining();
        let after = call_service(&app, TestRequest::get().uri("/").to_request()).await;
        assert!(
            after.status().is_success(),
            "a draining instance still answers"
        );
        assert_eq!(
            after.response().head().connection_type(),
            ConnectionType::Close
        );
    }

    #[tokio::test]
    async fn a_port_held_by_an_ordinary_listener_is_not_shared() {
        let plain = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = plain.local_addr().expect("address").port();
        assert!(
            bind_shared("127.0.0.1", port).is_err(),
            "only listeners that all set SO_REUSEPORT share a port"
        );
    }
}
