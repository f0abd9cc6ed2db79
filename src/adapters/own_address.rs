//! The interface's own address and the VIP beside it: when the VIP may be added or
//! removed, and what `run` and `check-config` refuse at start. Pure, over the kernel's
//! address list (netlink.rs reads it).
//!
//! The VIP is always an extra address inside the network of the interface's own
//! address (the one it was given by DHCP or the OS). The kernel's flags alone cannot
//! tell the two apart: the first address of a prefix on a link is "primary" and later
//! ones of the same prefix and mask "secondary", so a VIP added as a /32 (or with
//! another mask than the own address) is primary too, and after the own address is
//! deleted and re-added the VIP may be the primary and the own address its secondary.
//! So the rules are about what removing the VIP would cost the link:
//!
//! * it may be removed only while another address on the link (the own address) has
//!   a network that holds the VIP: the link keeps its address in that network;
//! * and only if no other address depends on it: a primary with secondaries of the
//!   same prefix and mask takes them with it when deleted (or, with
//!   `promote_secondaries`, hands its place to one of them), so it is refused;
//! * it is added only where it could be removed again: beside an own address whose
//!   network holds it.
//!
//! At start (`startup_problems`), the VIP must not be any address of another
//! interface, must lie inside the network of the interface's own address and not be
//! its network or broadcast address, and, when it is on the interface already (this
//! node held it before a restart), must be removable by the rules above. An address
//! the host uses for anything else fails one of these, so `run` and `check-config`
//! refuse it (78) and the actuator could never remove it anyway.

use std::net::Ipv4Addr;

use crate::adapters::netlink::AddrInfo;
use crate::config::vip_address::{contains, network, network_or_broadcast};

/// The interface's own address whose network holds the VIP: a primary one first.
pub fn own_address(vip: Ipv4Addr, index: u32, addrs: &[AddrInfo]) -> Option<&AddrInfo> {
    let mut holding: Vec<&AddrInfo> = addrs
        .iter()
        .filter(|a| a.index == index && a.addr != vip && contains(a.addr, a.prefix_len, vip))
        .collect();
    holding.sort_by_key(|a| a.secondary);
    holding.first().copied()
}

fn cidr(a: &AddrInfo) -> String {
    format!("{}/{}", a.addr, a.prefix_len)
}

/// Why removing the VIP from link `index` (named `ifname`) is refused; `None` when it
/// may go (or is not there).
pub fn removal_refused(
    vip: Ipv4Addr,
    ifname: &str,
    index: u32,
    addrs: &[AddrInfo],
) -> Option<String> {
    let entry = addrs.iter().find(|a| a.index == index && a.addr == vip)?;
    if own_address(vip, index, addrs).is_none() {
        return Some(format!(
            "{} is the only address of its network on {ifname}: it is the interface's own \
             address, which vip-arbiter never removes",
            cidr(entry)
        ));
    }
    let (net, mask) = network(vip, entry.prefix_len);
    let dependants: Vec<String> = addrs
        .iter()
        .filter(|a| {
            a.index == index
                && a.addr != vip
                && a.prefix_len == entry.prefix_len
                && u32::from(a.addr) & mask == u32::from(net)
        })
        .map(cidr)
        .collect();
    if !entry.secondary && !dependants.is_empty() {
        return Some(format!(
            "{} is the primary address of {net}/{} on {ifname} and {} depends on it: removing \
             it would take that address with it; remove the VIP by hand once {ifname}'s own \
             address is its primary again",
            cidr(entry),
            entry.prefix_len,
            dependants.join(", ")
        ));
    }
    None
}

/// Why adding the VIP to link `index` is refused: no own address there holds it.
pub fn add_refused(vip: Ipv4Addr, ifname: &str, index: u32, addrs: &[AddrInfo]) -> Option<String> {
    if own_address(vip, index, addrs).is_some() {
        return None;
    }
    Some(format!(
        "{ifname} has no address of its own whose network holds {vip}: the VIP is added only \
         beside one (it could not be removed again)"
    ))
}

/// What start-up finds wrong with the VIP among this host's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The host uses the address, or it lies outside the interface's network: a
    /// configuration error (exit 78).
    Config(String),
    /// The interface has no IPv4 address yet to judge the VIP by (it may not be
    /// configured yet): `run` exits 1 and systemd tries again.
    NoAddressYet(String),
}

/// The VIP among every interface's addresses (`index`: our interface's, `name_of`
/// names the others). Empty when the VIP is fit to manage on this interface.
pub fn startup_problems(
    vip: Ipv4Addr,
    ifname: &str,
    index: u32,
    addrs: &[AddrInfo],
    name_of: impl Fn(u32) -> String,
) -> Vec<Problem> {
    let mut out: Vec<Problem> = addrs
        .iter()
        .filter(|a| a.addr == vip && a.index != index)
        .map(|a| {
            Problem::Config(format!(
                "the VIP {vip} is already an address of {} ({}, {}): this host uses it; a VIP \
                 must be an address no interface has",
                name_of(a.index),
                cidr(a),
                if a.secondary { "secondary" } else { "primary" }
            ))
        })
        .collect();
    let own: Vec<&AddrInfo> = addrs
        .iter()
        .filter(|a| a.index == index && a.addr != vip)
        .collect();
    let vip_here = addrs.iter().any(|a| a.index == index && a.addr == vip);
    match own_address(vip, index, addrs) {
        Some(o) => {
            if let Some(why) = network_or_broadcast(vip, o.prefix_len) {
                out.push(Problem::Config(format!(
                    "{why} ({ifname}'s own address {}): not a host's address",
                    cidr(o)
                )));
            }
        }
        None if own.is_empty() && !vip_here => out.push(Problem::NoAddressYet(format!(
            "{ifname} has no IPv4 address: the VIP is managed beside the interface's own \
             address, in its network"
        ))),
        None if own.is_empty() => {}
        None => out.push(Problem::Config(format!(
            "the VIP {vip} is outside {ifname}'s network ({}): it must lie in the network of \
             the interface's own address (else it is a foreign network on this link)",
            own.iter().map(|a| cidr(a)).collect::<Vec<_>>().join(", ")
        ))),
    }
    if let Some(why) = removal_refused(vip, ifname, index, addrs) {
        out.push(Problem::Config(format!(
            "the VIP is on {ifname} now, and {why}"
        )));
    }
    out
}

#[cfg(test)]
#[path = "own_address_tests.rs"]
mod tests;
