//! Who may use the TCP listener (`[http] allow`): source networks in CIDR notation,
//! IPv4 or IPv6. An IPv4 client of a listener on `[::]` arrives as `::ffff:a.b.c.d`
//! and is matched as the IPv4 address it is. Pure.

use std::fmt;
use std::net::IpAddr;

/// One network: an address and a prefix length (`10.0.0.0/8`, `::1/128`); a bare
/// address is a host (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `"10.0.0.0/8"`, `"192.0.2.7"`, `"fd00::/8"`. Host bits set below the prefix
    /// are refused (`10.1.2.3/8` is a typo for `10.0.0.0/8` or `10.1.2.3/32`).
    pub fn parse(text: &str) -> Result<Net, String> {
        let t = text.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not a network like \"10.0.0.0/8\""))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0..={max}"))?,
        };
        let net = Net { addr, prefix };
        if net.masked(addr) != bits(addr) {
            return Err(format!(
                "{text:?} has host bits set: write the network ({})",
                Net {
                    addr: from_bits(addr, net.masked(addr)),
                    prefix
                }
            ));
        }
        Ok(net)
    }

    /// Whether `peer` is inside this network.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        peer.is_ipv4() == self.addr.is_ipv4() && self.masked(peer) == bits(self.addr)
    }

    fn masked(&self, a: IpAddr) -> u128 {
        let width = if a.is_ipv4() { 32 } else { 128 };
        let keep = u32::from(self.prefix);
        let mask = if keep == 0 {
            0
        } else {
            (u128::MAX << (width - keep)) & (u128::MAX >> (128 - width))
        };
        bits(a) & mask
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The networks allowed; a peer is allowed when any contains it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allow(pub Vec<Net>);

impl Allow {
    pub fn allows(&self, peer: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(peer))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        IpAddr::V4(_) => a,
    }
}

fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(like: IpAddr, b: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(u32::try_from(b).unwrap_or(0).into()),
        IpAddr::V6(_) => IpAddr::V6(b.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let n = Net::parse("10.0.0.0/8").expect("ok");
        assert!(n.contains(ip("10.255.1.2")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!n.contains(ip("::1")));
        let host = Net::parse("192.0.2.7").expect("a bare address");
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let all = Net::parse("0.0.0.0/0").expect("everything v4");
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        let v6 = Net::parse("fd00::/8").expect("v6");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Net::parse("::1").expect("v6 host").contains(ip("::1")));
        assert!(
            Net::parse("::/0")
                .expect("all v6")
                .contains(ip("2001:db8::1"))
        );
    }

    #[test]
    fn bad_networks_are_refused_with_a_reason() {
        for (text, says) in [
            ("10.0.0.0/33", "0..=32"),
            ("fd00::/129", "0..=128"),
            ("10.1.2.3/8", "(10.0.0.0/8)"),
            ("ten", "is not a network"),
            ("10.0.0.0/", "prefix length"),
            ("", "is not a network"),
        ] {
            let e = Net::parse(text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn the_allow_list_is_any_of_its_networks() {
        let a = Allow(vec![
            Net::parse("127.0.0.0/8").expect("ok"),
            Net::parse("10.77.0.0/20").expect("ok"),
        ]);
        assert!(a.allows(ip("127.0.0.1")) && a.allows(ip("10.77.0.12")));
        assert!(!a.allows(ip("10.77.16.1")) && !a.allows(ip("::1")));
        assert!(
            !Allow::default().allows(ip("127.0.0.1")),
            "empty allows none"
        );
    }
}
