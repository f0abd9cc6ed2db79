//! own_address.rs's rules over address lists as the kernel reports them
//! (tests/kernel_netns.rs and tests/check_config_host.rs run them on a real kernel).

use super::*;

const ENS5: u32 = 2;
const OTHER: u32 = 3;

fn a(index: u32, cidr: &str, secondary: bool) -> AddrInfo {
    let (addr, len) = cidr.split_once('/').expect("cidr");
    AddrInfo {
        index,
        addr: addr.parse().expect("addr"),
        prefix_len: len.parse().expect("len"),
        secondary,
    }
}

fn vip(s: &str) -> Ipv4Addr {
    s.parse().expect("vip")
}

fn name(i: u32) -> String {
    if i == ENS5 { "ens5" } else { "ens6" }.to_owned()
}

#[test]
fn the_vip_beside_the_own_address_may_go_whatever_its_flag() {
    // Same mask: the VIP is the secondary.
    let same = [
        a(ENS5, "10.0.0.11/20", false),
        a(ENS5, "10.0.0.100/20", true),
    ];
    assert_eq!(
        removal_refused(vip("10.0.0.100"), "ens5", ENS5, &same),
        None
    );
    // A /32 is the primary of its own network, with nothing depending on it.
    let lone = [
        a(ENS5, "10.0.0.11/20", false),
        a(ENS5, "10.0.0.100/32", false),
    ];
    assert_eq!(
        removal_refused(vip("10.0.0.100"), "ens5", ENS5, &lone),
        None
    );
    // Absent: nothing to refuse.
    assert_eq!(
        removal_refused(vip("10.0.0.100"), "ens5", ENS5, &same[..1]),
        None
    );
    assert!(startup_problems(vip("10.0.0.100"), "ens5", ENS5, &same, name).is_empty());
    assert!(startup_problems(vip("10.0.0.100"), "ens5", ENS5, &lone, name).is_empty());
}

#[test]
fn the_interfaces_own_address_is_never_removed() {
    // Issue 19: vip = ens5's only address.
    let only = [a(ENS5, "10.0.0.11/24", false)];
    let why = removal_refused(vip("10.0.0.11"), "ens5", ENS5, &only).expect("refused");
    assert!(why.contains("interface's own address"), "{why}");
    assert!(matches!(
        &startup_problems(vip("10.0.0.11"), "ens5", ENS5, &only, name)[..],
        [Problem::Config(w)] if w.contains("never removes")
    ));
    // The primary with a secondary of its prefix: deleting it takes the other along.
    let promoted = [
        a(ENS5, "10.0.0.100/24", false),
        a(ENS5, "10.0.0.11/24", true),
    ];
    let why = removal_refused(vip("10.0.0.100"), "ens5", ENS5, &promoted).expect("refused");
    assert!(why.contains("10.0.0.11/24 depends on it"), "{why}");
    // The host's own address in another network on the link does not hold it.
    let two = [
        a(ENS5, "10.0.0.11/24", false),
        a(ENS5, "192.168.5.1/24", false),
    ];
    assert!(removal_refused(vip("192.168.5.1"), "ens5", ENS5, &two).is_some());
}

#[test]
fn the_vip_is_added_only_beside_an_own_address_holding_it() {
    let own = [a(ENS5, "10.0.0.11/20", false)];
    assert_eq!(add_refused(vip("10.0.15.200"), "ens5", ENS5, &own), None);
    assert!(add_refused(vip("10.0.16.200"), "ens5", ENS5, &own).is_some());
    assert!(add_refused(vip("10.0.0.200"), "ens5", ENS5, &[]).is_some());
    // On another link it does not count.
    let elsewhere = [a(OTHER, "10.0.0.11/20", false)];
    assert!(add_refused(vip("10.0.0.200"), "ens5", ENS5, &elsewhere).is_some());
}

#[test]
fn startup_names_each_problem() {
    let addrs = [
        a(ENS5, "10.0.0.11/24", false),
        a(OTHER, "10.0.9.100/24", false),
        a(OTHER, "10.0.9.101/24", true),
    ];
    let p = |v: &str| startup_problems(vip(v), "ens5", ENS5, &addrs, name);
    assert_eq!(
        p("10.0.9.101"),
        [
            Problem::Config(
                "the VIP 10.0.9.101 is already an address of ens6 (10.0.9.101/24, secondary): \
                 this host uses it; a VIP must be an address no interface has"
                    .into()
            ),
            Problem::Config(
                "the VIP 10.0.9.101 is outside ens5's network (10.0.0.11/24): it must lie in the \
                 network of the interface's own address (else it is a foreign network on this link)"
                    .into()
            ),
        ]
    );
    assert_eq!(
        p("10.0.0.255"),
        [Problem::Config(
            "10.0.0.255 is the broadcast address of 10.0.0.0/24 (ens5's own address \
             10.0.0.11/24): not a host's address"
                .into()
        )]
    );
    assert!(matches!(&p("10.0.0.0")[..], [Problem::Config(w)] if w.contains("network address")));
    assert!(p("10.0.0.100").is_empty());
    // No address at all yet: not a configuration error (it may come).
    assert!(matches!(
        &startup_problems(vip("10.0.0.100"), "ens5", ENS5, &[], name)[..],
        [Problem::NoAddressYet(_)]
    ));
}
