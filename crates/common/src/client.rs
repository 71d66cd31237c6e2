//! The client's address, for per-address limits, decided in this one place.
//!
//! Behind the gateway (`TRUST_FORWARDED_FOR=true`) it is the RIGHTMOST `X-Forwarded-For`
//! entry: the address the nearest trusted hop saw. Anything to its left was written by
//! the client and proves nothing (our gateway overwrites the header anyway; a proxy that
//! appends puts its peer on the right). Otherwise, and whenever that entry is missing or
//! is not an IP address, it is the TCP peer. `Forwarded` and `X-Real-IP` are never read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// `forwarded_for` is the last `X-Forwarded-For` line when it is trusted (`None`
    /// otherwise); `peer` the TCP peer.
    pub fn resolve(forwarded_for: Option<&str>, peer: Option<IpAddr>) -> Self {
        let address = forwarded_for
            .and_then(rightmost_entry)
            .or(peer)
            // Only in-process test requests have no peer; they share one bucket.
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        ClientAddress(address.to_canonical())
    }

    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// The name limits count under: an IPv4 address as is, an IPv6 address by its /64,
    /// since one subscriber usually holds a whole /64 and could otherwise take a fresh
    /// address for every attempt.
    pub fn limit_key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        }
    }
}

/// The last comma-separated entry, if it is an address (`192.0.2.1`, `2001:db8::1`,
/// with or without brackets and port).
fn rightmost_entry(forwarded_for: &str) -> Option<IpAddr> {
    let entry = forwarded_for.rsplit(',').next()?.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));

    fn resolved(forwarded_for: &str) -> String {
        ClientAddress::resolve(Some(forwarded_for), Some(PEER))
            .ip()
            .to_string()
    }

    #[test]
    fn the_rightmost_entry_is_the_one_the_trusted_hop_wrote() {
        assert_eq!(resolved("192.0.2.1"), "192.0.2.1");
        assert_eq!(resolved("203.0.113.66, 198.51.100.4"), "198.51.100.4");
        assert_eq!(resolved("1.1.1.1,2.2.2.2 ,  192.0.2.7  "), "192.0.2.7");
    }

    #[test]
    fn ipv6_entries_with_or_without_brackets_and_ports() {
        assert_eq!(resolved("2001:db8::1"), "2001:db8::1");
        assert_eq!(resolved("192.0.2.1, [2001:db8::2]"), "2001:db8::2");
        assert_eq!(resolved("[2001:db8::3]:4711"), "2001:db8::3");
        assert_eq!(resolved("192.0.2.1:4711"), "192.0.2.1");
        assert_eq!(
            resolved("::ffff:192.0.2.9"),
            "192.0.2.9",
            "IPv4-mapped is IPv4"
        );
    }

    #[test]
    fn a_missing_empty_or_malformed_entry_falls_back_to_the_peer() {
        for malformed in [
            "",
            " ",
            ",",
            "192.0.2.1,",
            "unknown",
            "192.0.2.1, not-an-address",
            "for=192.0.2.1",
            "192.0.2.300",
            "[2001:db8::1",
            "\"192.0.2.1\"",
        ] {
            assert_eq!(resolved(malformed), PEER.to_string(), "{malformed:?}");
        }
        assert_eq!(ClientAddress::resolve(None, Some(PEER)).ip(), PEER);
        assert_eq!(
            ClientAddress::resolve(None, None).ip(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn ipv6_addresses_are_limited_by_their_slash_64() {
        let one = ClientAddress::resolve(Some("2001:db8:1:2:aaaa::1"), None);
        let other = ClientAddress::resolve(Some("2001:db8:1:2:bbbb::2"), None);
        assert_eq!(one.limit_key(), "2001:db8:1:2::/64");
        assert_eq!(one.limit_key(), other.limit_key());
        let v4 = ClientAddress::resolve(Some("192.0.2.1"), None);
        assert_eq!(v4.limit_key(), "192.0.2.1");
    }
}
