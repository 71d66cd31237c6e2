//! The client's address, for per-address limits, decided in this one place.
//!
//! Behind the gateway (`TRUST_FORWARDED_FOR=true`, and the request's TCP peer one of
//! `TRUSTED_PROXIES`) it is the RIGHTMOST `X-Forwarded-For` entry: the address the
//! nearest trusted hop saw. Anything to its left was written by the client and proves
//! nothing (our gateway overwrites the header anyway; a proxy that appends puts its peer
//! on the right). Otherwise, and whenever that entry is missing or is not an IP address,
//! it is the TCP peer. `Forwarded` and `X-Real-IP` are never read.

use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The peers whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`): addresses and
/// CIDR blocks, separated by commas or spaces (`127.0.0.2/32, 10.0.0.0/8, ::1`). Any
/// other peer's header is ignored, so a process that reaches a service's port directly
/// is counted under its own address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Whether `peer` is one of them (an IPv4-mapped IPv6 peer counts as IPv4).
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|(network, bits)| match (network, peer) {
            (IpAddr::V4(network), IpAddr::V4(peer)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*network) & mask == u32::from(peer) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(peer)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*network) & mask == u128::from(peer) & mask
            }
            _ => false,
        })
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (address, bits) = match entry.split_once('/') {
                    Some((address, bits)) => (address, Some(bits)),
                    None => (entry, None),
                };
                let refused = || format!("{entry:?} is not an address or a CIDR block");
                let address = address
                    .parse::<IpAddr>()
                    .map_err(|_| refused())?
                    .to_canonical();
                let most = if address.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    Some(bits) => bits.parse::<u8>().ok().filter(|b| *b <= most),
                    None => Some(most),
                };
                Ok((address, bits.ok_or_else(refused)?))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

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
    fn trusted_proxies_are_addresses_and_cidr_blocks() {
        let proxies: TrustedProxies = "127.0.0.2/32, 10.0.0.0/8 ::1 2001:db8::/32"
            .parse()
            .unwrap();
        let trusted = |ip: &str| proxies.contains(ip.parse().unwrap());
        assert!(trusted("127.0.0.2"));
        assert!(
            !trusted("127.0.0.1"),
            "another loopback address is not the gateway"
        );
        assert!(trusted("10.200.3.4"));
        assert!(trusted("::ffff:10.0.0.1"), "IPv4-mapped is IPv4");
        assert!(trusted("::1"));
        assert!(trusted("2001:db8:ffff::1"));
        assert!(!trusted("2001:db9::1"));
        assert!(!trusted("11.0.0.1"));
        let everyone: TrustedProxies = "0.0.0.0/0".parse().unwrap();
        assert!(everyone.contains("192.0.2.1".parse().unwrap()));
        let nobody: TrustedProxies = "".parse().unwrap();
        assert!(!nobody.contains("127.0.0.1".parse().unwrap()));
        for malformed in ["gateway", "10.0.0.0/33", "::/129", "10.0.0.1/x", "/8"] {
            assert!(
                malformed.parse::<TrustedProxies>().is_err(),
                "{malformed:?}"
            );
        }
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
