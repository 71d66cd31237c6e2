//! The client's address as an actix extractor: the rightmost `X-Forwarded-For` entry of
//! a request whose TCP peer is a trusted proxy (`TRUST_FORWARDED_FOR=true` and the peer
//! in `TRUSTED_PROXIES`, registered by `http::serve`), the TCP peer otherwise; the rule
//! itself is [`common::client::ClientAddress::resolve`].

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderName, X_FORWARDED_FOR};
use actix_web::{FromRequest, HttpRequest};
use common::client::{ClientAddress, TrustedProxies};
use std::convert::Infallible;
use std::future::{Ready, ready};

/// Whether `X-Forwarded-For` was written by a trusted hop (the service is reachable only
/// through the gateway); registered as app data.
#[derive(Debug, Clone, Copy)]
pub struct TrustForwardedFor(pub bool);

/// The address a request came from, as far as the service can trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub ClientAddress);

fn last_header_line<'a>(req: &'a HttpRequest, name: &HeaderName) -> Option<&'a str> {
    req.headers().get_all(name).last()?.to_str().ok()
}

impl FromRequest for ClientIp {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let peer = req.peer_addr().map(|a| a.ip());
        let from_a_proxy = peer.is_some_and(|peer| {
            req.app_data::<TrustedProxies>()
                .is_some_and(|proxies| proxies.contains(peer))
        });
        let trusted = from_a_proxy && req.app_data::<TrustForwardedFor>().is_some_and(|t| t.0);
        let forwarded_for = trusted
            .then(|| last_header_line(req, &X_FORWARDED_FOR))
            .flatten();
        ready(Ok(ClientIp(ClientAddress::resolve(forwarded_for, peer))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));

    fn extracted(request: TestRequest) -> IpAddr {
        let request = request
            .peer_addr(SocketAddr::new(PEER, 5555))
            .to_http_request();
        ClientIp::extract(&request)
            .into_inner()
            .expect("infallible")
            .0
            .ip()
    }

    #[test]
    fn forwarding_headers_count_only_when_trusted_and_only_x_forwarded_for() {
        let proxies = || "10.0.0.0/24".parse::<TrustedProxies>().unwrap();
        let forged = || {
            TestRequest::default()
                .app_data(proxies())
                .insert_header(("X-Real-IP", "203.0.113.1"))
                .insert_header(("Forwarded", "for=203.0.113.2"))
        };
        assert_eq!(extracted(forged()), PEER, "untrusted: the peer");
        assert_eq!(
            extracted(forged().app_data(TrustForwardedFor(true))),
            PEER,
            "X-Real-IP and Forwarded are never read"
        );
        let trusted = forged()
            .app_data(TrustForwardedFor(true))
            .append_header(("X-Forwarded-For", "203.0.113.3, 192.0.2.4"))
            .append_header(("X-Forwarded-For", "192.0.2.5"));
        assert_eq!(extracted(trusted), "192.0.2.5".parse::<IpAddr>().unwrap());
        let untrusted = TestRequest::default()
            .app_data(proxies())
            .app_data(TrustForwardedFor(false))
            .insert_header(("X-Forwarded-For", "192.0.2.4"));
        assert_eq!(extracted(untrusted), PEER);
    }

    #[test]
    fn a_forwarded_header_counts_only_from_a_trusted_proxy() {
        let request = |proxies: &str| {
            TestRequest::default()
                .app_data(proxies.parse::<TrustedProxies>().unwrap())
                .app_data(TrustForwardedFor(true))
                .insert_header(("X-Forwarded-For", "192.0.2.4"))
        };
        let forwarded: IpAddr = "192.0.2.4".parse().unwrap();
        assert_eq!(extracted(request("10.0.0.9")), forwarded);
        assert_eq!(extracted(request("10.0.0.10/32, ::1")), PEER);
        assert_eq!(extracted(request("")), PEER, "no proxy is trusted");
        let no_list = TestRequest::default()
            .app_data(TrustForwardedFor(true))
            .insert_header(("X-Forwarded-For", "192.0.2.4"));
        assert_eq!(extracted(no_list), PEER);
    }
}
