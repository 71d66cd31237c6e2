//! The client's address as an actix extractor: the trusted rightmost `X-Forwarded-For`
//! entry behind the gateway (`TRUST_FORWARDED_FOR=true`), the TCP peer otherwise; the
//! rule itself is [`common::client::ClientAddress::resolve`].

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderName, X_FORWARDED_FOR};
use actix_web::{FromRequest, HttpRequest};
use common::client::ClientAddress;
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
        let trusted = req.app_data::<TrustForwardedFor>().is_some_and(|t| t.0);
        let forwarded_for = trusted
            .then(|| last_header_line(req, &X_FORWARDED_FOR))
            .flatten();
        let peer = req.peer_addr().map(|a| a.ip());
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
        let forged = || {
            TestRequest::default()
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
            .app_data(TrustForwardedFor(false))
            .insert_header(("X-Forwarded-For", "192.0.2.4"));
        assert_eq!(extracted(untrusted), PEER);
    }
}
