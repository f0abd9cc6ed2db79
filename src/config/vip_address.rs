//! Addresses that can never be a VIP, whatever the host: the rules `validate` applies
//! to `vip` (with `interface` and, when set, `prefix_len`), and that `check-config` and
//! `run` apply again with the prefix of the interface's own address. Pure.

use std::net::Ipv4Addr;

/// Why `vip` can never be a VIP on `interface`; `None` when it may be.
pub fn unusable(vip: Ipv4Addr, interface: &str) -> Option<String> {
    let [first, second, ..] = vip.octets();
    if vip.is_unspecified() {
        return Some("0.0.0.0 means \"any address\", not one address".into());
    }
    if vip.is_broadcast() {
        return Some("255.255.255.255 is the limited broadcast address".into());
    }
    if first == 0 {
        return Some(format!(
            "{vip} is in 0.0.0.0/8 (\"this network\"), never a host's address"
        ));
    }
    if vip.is_multicast() {
        return Some(format!("{vip} is a multicast address (224.0.0.0/4)"));
    }
    if first >= 240 {
        return Some(format!("{vip} is in the reserved 240.0.0.0/4"));
    }
    if vip.is_loopback() && interface != "lo" {
        return Some(format!(
            "{vip} is a loopback address (127.0.0.0/8): no other host can reach it on {interface}"
        ));
    }
    if first == 169 && second == 254 {
        return Some(format!(
            "{vip} is link-local (169.254.0.0/16): not routed beyond the link, and EC2 cannot assign it"
        ));
    }
    None
}

/// The network containing `addr` with `prefix_len` bits: (network address, mask).
pub fn network(addr: Ipv4Addr, prefix_len: u8) -> (Ipv4Addr, u32) {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    (Ipv4Addr::from(u32::from(addr) & mask), mask)
}

/// Is `vip` inside `addr/prefix_len`'s network?
pub fn contains(addr: Ipv4Addr, prefix_len: u8, vip: Ipv4Addr) -> bool {
    let (net, mask) = network(addr, prefix_len);
    u32::from(vip) & mask == u32::from(net)
}

/// The network or broadcast address of `vip/prefix_len` (a /31 or /32 has neither).
pub fn network_or_broadcast(vip: Ipv4Addr, prefix_len: u8) -> Option<String> {
    if prefix_len >= 31 {
        return None;
    }
    let (net, mask) = network(vip, prefix_len);
    if vip == net {
        Some(format!(
            "{vip} is the network address of {net}/{prefix_len}"
        ))
    } else if u32::from(vip) | mask == u32::MAX {
        Some(format!(
            "{vip} is the broadcast address of {net}/{prefix_len}"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("address")
    }

    #[test]
    fn addresses_that_are_never_a_vip_are_named() {
        for (vip, want) in [
            ("0.0.0.0", "means \"any address\""),
            ("255.255.255.255", "limited broadcast"),
            ("0.1.2.3", "0.0.0.0/8"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("127.0.0.5", "loopback"),
            ("169.254.169.254", "link-local"),
        ] {
            let why = unusable(ip(vip), "ens5").unwrap_or_else(|| panic!("{vip} passed"));
            assert!(why.contains(want), "{vip}: {why}");
        }
        assert_eq!(unusable(ip("10.0.1.100"), "ens5"), None);
        assert_eq!(unusable(ip("127.0.0.5"), "lo"), None);
    }

    #[test]
    fn network_and_broadcast_addresses_of_the_prefix() {
        let nb = |v: &str, p| network_or_broadcast(ip(v), p);
        assert_eq!(
            nb("10.0.1.0", 24).as_deref(),
            Some("10.0.1.0 is the network address of 10.0.1.0/24")
        );
        assert_eq!(
            nb("10.0.15.255", 20).as_deref(),
            Some("10.0.15.255 is the broadcast address of 10.0.0.0/20")
        );
        assert_eq!(nb("10.0.1.100", 24), None);
        assert_eq!(nb("10.0.1.0", 31), None);
        assert_eq!(nb("10.0.1.255", 32), None);
        assert!(contains(ip("10.0.0.11"), 20, ip("10.0.15.1")));
        assert!(!contains(ip("10.0.0.11"), 20, ip("10.0.16.1")));
        assert!(contains(ip("10.0.0.11"), 0, ip("192.168.0.1")));
    }
}
