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

/// Issue 19: `vip` = the interface's own address. Whatever the config says, the
/// actuator never removes it, and a VIP that is the primary of its prefix with the own
/// address depending on it (as the kernel flags them) is not removed either.
#[test]
fn the_interfaces_own_address_is_never_removed() {
    let ns = Netns::new("kown", "10.77.1.11/20");
    // ens5p: the VIP came first (primary), the own address second (its secondary).
    ns.add_address("ens5p", "10.77.6.100/24");
    ns.add_address("ens5p", "10.77.6.11/24");
    let (own, promoted) = in_ns(&ns, || {
        rt().block_on(async {
            let own = Netlink::connect("ens5", Ipv4Addr::new(10, 77, 1, 11)).expect("netlink");
            let promoted =
                Netlink::connect("ens5p", Ipv4Addr::new(10, 77, 6, 100)).expect("netlink");
            (own.remove_vip().await, promoted.remove_vip().await)
        })
    });
    let own = own.expect_err("the own address must not be removed");
    assert!(
        matches!(&own, KernelError::Refused { ifname, reason }
            if ifname == "ens5" && reason.contains("interface's own address")),
        "{own}"
    );
    let step: vip_arbiter::pass::act::StepError = own.into();
    assert!(step.kind.needs_operator() && step.refused, "{step:?}");
    let promoted = promoted.expect_err("a primary with a dependant must not be removed");
    assert!(
        promoted.to_string().contains("10.77.6.11/24 depends on it"),
        "{promoted}"
    );
    assert!(ns.addresses("ens5").contains(&("10.77.1.11".into(), 20)));
    let left = ns.addresses("ens5p");
    assert!(
        left.contains(&("10.77.6.100".into(), 24)) && left.contains(&("10.77.6.11".into(), 24)),
        "{left:?}"
    );
}

/// The VIP beside the own address goes, whether the kernel made it secondary (same
/// mask) or primary of its own /32; it is never added outside the own address's
/// network (where it could not be removed again).
#[test]
fn the_vip_beside_the_own_address_goes_and_is_never_added_outside_it() {
    let ns = Netns::new("kbeside", "10.77.1.11/20");
    let outside = Ipv4Addr::new(10, 77, 99, 100);
    let (secondary, lone, refused) = in_ns(&ns, move || {
        rt().block_on(async {
            let nl = Netlink::connect("ens5", VIP).expect("netlink");
            nl.add_vip(20).await.expect("add /20");
            let secondary = nl.remove_vip().await.expect("remove the secondary");
            nl.add_vip(32).await.expect("add /32");
            let lone = nl.remove_vip().await.expect("remove the /32");
            let far = Netlink::connect("ens5", outside).expect("netlink");
            (secondary, lone, far.add_vip(24).await)
        })
    });
    assert_eq!((secondary, lone), (Applied::Changed, Applied::Changed));
    let refused = refused.expect_err("outside the network");
    assert!(
        refused
            .to_string()
            .contains("no address of its own whose network holds 10.77.99.100"),
        "{refused}"
    );
    assert_eq!(ns.addresses("ens5"), [("10.77.1.11".to_owned(), 20)]);
}
