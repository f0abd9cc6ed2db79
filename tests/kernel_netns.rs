//! The netlink adapter against a real kernel, in a fresh network namespace with a
//! veth pair (the `dummy` link type is not available on these kernels). Needs root;
//! without it the tests fail with a message, never skip.

mod support;

use support::testbed::rt;

use std::net::Ipv4Addr;

use support::netns::Netns;
use vip_arbiter::adapters::netlink::{KernelError, Netlink};
use vip_arbiter::core::observation::KernelView;
use vip_arbiter::pass::act::Applied;
use vip_arbiter::pass::observe::KernelSource;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 100);

/// Run `f` inside the namespace (its netlink socket opens there).
fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    support::testbed::in_netns(ns.name(), move |_| f())
}

/// What a fresh netlink adapter on `ens5` in `ns` sees of the VIP.
fn observe_in(ns: &Netns) -> KernelView {
    in_ns(ns, || {
        rt().block_on(async {
            Netlink::connect("ens5", VIP)
                .expect("netlink")
                .observe()
                .await
        })
    })
}

#[test]
fn add_twice_remove_twice_is_idempotent() {
    let ns = Netns::new("kern", "10.77.1.11/20");
    let results = in_ns(&ns, || {
        rt().block_on(async {
            let nl = Netlink::connect("ens5", VIP).expect("netlink");
            let before = nl.observe().await;
            let add1 = nl.add_vip(32).await.expect("first add");
            let add2 = nl.add_vip(32).await.expect("second add");
            let during = nl.observe().await;
            let rm1 = nl.remove_vip().await.expect("first remove");
            let rm2 = nl.remove_vip().await.expect("second remove");
            let after = nl.observe().await;
            (before, add1, add2, during, rm1, rm2, after)
        })
    });
    assert_eq!(results.0, KernelView::Absent);
    assert_eq!(
        (results.1, results.2),
        (Applied::Changed, Applied::AlreadyDone)
    );
    assert_eq!(results.3, KernelView::Present { prefix_len: 32 });
    assert_eq!(
        (results.4, results.5),
        (Applied::Changed, Applied::AlreadyDone)
    );
    assert_eq!(results.6, KernelView::Absent);
    // Cross-check with iproute2 that the kernel really has no VIP left.
    assert!(!ns.addresses("ens5").iter().any(|(a, _)| a == "10.77.1.100"));
}

#[test]
fn address_is_really_in_the_kernel_and_prefix_is_replaced() {
    let ns = Netns::new("kpfx", "10.77.1.11/20");
    let seen = in_ns(&ns, || {
        rt().block_on(async {
            let nl = Netlink::connect("ens5", VIP).expect("netlink");
            let primary = nl.primary_prefix().await.expect("primary prefix");
            nl.add_vip(24).await.expect("add /24");
            let a = nl.observe().await;
            // Re-adding with another prefix replaces it rather than keeping both.
            let replaced = nl.add_vip(32).await.expect("add /32");
            let b = nl.observe().await;
            (primary, a, replaced, b)
        })
    });
    assert_eq!(seen.0, 20, "prefix of the interface's own address");
    assert_eq!(seen.1, KernelView::Present { prefix_len: 24 });
    assert_eq!(seen.2, Applied::Changed);
    assert_eq!(seen.3, KernelView::Present { prefix_len: 32 });
    let vips: Vec<_> = ns
        .addresses("ens5")
        .into_iter()
        .filter(|(a, _)| a == "10.77.1.100")
        .collect();
    assert_eq!(vips, vec![("10.77.1.100".to_owned(), 32)]);
}

#[test]
fn wrong_prefix_and_missing_interface_are_clear_errors() {
    let ns = Netns::new("kerr", "10.77.1.11/20");
    let (bad_prefix, zero_prefix, missing_add, missing_observe) = in_ns(&ns, || {
        rt().block_on(async {
            let nl = Netlink::connect("ens5", VIP).expect("netlink");
            let bad = nl.add_vip(33).await.expect_err("prefix 33");
            let zero = nl.add_vip(0).await.expect_err("prefix 0");
            let gone = Netlink::connect("nosuch0", VIP).expect("netlink");
            let missing = gone.add_vip(32).await.expect_err("missing interface");
            (bad, zero, missing, gone.observe().await)
        })
    });
    assert!(
        matches!(bad_prefix, KernelError::InvalidPrefix { prefix_len: 33 }),
        "{bad_prefix}"
    );
    assert!(matches!(
        zero_prefix,
        KernelError::InvalidPrefix { prefix_len: 0 }
    ));
    assert!(
        matches!(&missing_add, KernelError::NoSuchInterface { ifname } if ifname == "nosuch0"),
        "{missing_add}"
    );
    assert_eq!(
        missing_add.to_string(),
        "interface \"nosuch0\" does not exist"
    );
    assert!(
        matches!(missing_observe, KernelView::Unknown(ref r) if r.contains("nosuch0")),
        "{missing_observe:?}"
    );
}

#[test]
fn drift_by_hand_is_seen() {
    let ns = Netns::new("kdrift", "10.77.1.11/20");
    ns.add_address("ens5", "10.77.1.100/32");
    let seen = observe_in(&ns);
    assert_eq!(seen, KernelView::Present { prefix_len: 32 });
    ns.del_address("ens5", "10.77.1.100/32");
    let seen = observe_in(&ns);
    assert_eq!(seen, KernelView::Absent);
}
