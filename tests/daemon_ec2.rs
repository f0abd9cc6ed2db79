//! The whole daemon in EC2 mode: two network namespaces bridged like an EC2 subnet,
//! real PostgreSQL 15 + repmgr, and moto (behind the launcher) as the EC2 API inside
//! the hub namespace. Failover moves the VIP at EC2 and in the kernels; a stale
//! primary never takes it back; a fault window during failover still converges;
//! drift at EC2 is repaired within verify_interval and the consistency bound.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::bed::{Bed, VIP};
use support::pg_cluster::PgNode;
use support::testbed::{Arbiter, aws_env, kernel_has, wait_until};

/// What this file's daemons share: EC2 mode against the emulator, `prefix_len` 32,
/// 500 ms passes, a 5 s `verify_interval` and a 3 s `consistency_bound`, a fence
/// command that appends to `<name>.fence`.
impl Bed {
    fn arbiter(&self, ns: &str, node: &PgNode, eni: &str, name: &str) -> Arbiter {
        let cfg = format!(
            "vip = \"{VIP}\"\ninterface = \"ens5\"\nprefix_len = 32\nrepmgr_config = {:?}\ninterval = \"500ms\"\n\
             pg_unknown_hold = \"10s\"\nlog_level = \"debug\"\n[aws]\nenabled = true\nregion = \"us-east-1\"\n\
             eni_id = \"{eni}\"\nsubnet_id = \"{}\"\nverify_interval = \"5s\"\nconsistency_bound = \"3s\"\nfence_command = \"echo fenced $VIP_FENCE_HOLDER_ENI >> {}\"\n",
            node.repmgr_conf().display().to_string(),
            self.subnet(),
            self.dir().join(format!("{name}.fence")).display()
        );
        let env = aws_env(&self.emu().url);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Arbiter::start(ns, self.dir(), name, &cfg, &env)
    }

    fn fences(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir().join(format!("{name}.fence"))).unwrap_or_default()
    }
}

/// Both nodes, PostgreSQL, and the emulator in the hub.
fn bed() -> Bed {
    Bed::builder().postgres().ec2().build()
}

/// Sample EC2 and both kernels every 100 ms for `d`; returns (EC2 holder changes, double-kernel samples).
fn sample(bed: &Bed, d: Duration) -> (usize, usize) {
    let start = Instant::now();
    let mut last = bed.holders();
    let (mut moves, mut doubles) = (0, 0);
    while start.elapsed() < d {
        let now = bed.holders();
        if now != last {
            moves += 1;
            last = now;
        }
        if kernel_has(bed.ns(1), VIP) && kernel_has(bed.ns(2), VIP) {
            doubles += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (moves, doubles)
}

#[test]
fn failover_moves_the_vip_and_a_stale_primary_never_takes_it_back() {
    let bed = bed();
    let a1 = bed.arbiter(bed.ns(1), bed.cluster().node1(), bed.eni(1), "a1");
    let a2 = bed.arbiter(bed.ns(2), bed.cluster().node2(), bed.eni(2), "a2");
    wait_until(
        Duration::from_secs(15),
        "VIP on n1 at EC2 and in its kernel",
        || bed.holders() == vec![bed.eni(1).to_owned()] && kernel_has(bed.ns(1), VIP),
    );
    assert!(!kernel_has(bed.ns(2), VIP));
    wait_until(Duration::from_secs(3), "n1 holding", || {
        a1.verdict() == "holding"
    });

    bed.cluster().stop_primary_and_promote_standby();
    wait_until(
        Duration::from_secs(15),
        "VIP on n2 at EC2 and in its kernel",
        || bed.holders() == vec![bed.eni(2).to_owned()] && kernel_has(bed.ns(2), VIP),
    );
    // n1's PostgreSQL is down (unknown); EC2 shows another holder, so no hold is needed.
    wait_until(Duration::from_secs(5), "VIP gone from n1's kernel", || {
        !kernel_has(bed.ns(1), VIP)
    });

    // The old primary comes back as it was, still primary in its own repmgr.nodes.
    bed.cluster().start_old_primary_as_is();
    wait_until(Duration::from_secs(15), "n1 reports stale-primary", || {
        a1.verdict() == "stale-primary"
    });
    let (code, line) = a1.cli(&["check"]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("stale-primary") && line.contains(bed.eni(2)),
        "names the holder: {line}"
    );
    let (moves, doubles) = sample(&bed, Duration::from_secs(60));
    assert_eq!(moves, 0, "zero EC2 moves in 60 s with a stale primary up");
    assert_eq!(doubles, 0, "never in two kernels");
    assert_eq!(bed.holders(), vec![bed.eni(2).to_owned()]);
    assert!(!kernel_has(bed.ns(1), VIP));
    wait_until(Duration::from_secs(3), "n2 holding", || {
        a2.verdict() == "holding"
    });
    assert_eq!(
        bed.fences("a1").lines().count(),
        1,
        "fence_command ran once: {:?}",
        bed.fences("a1")
    );
    assert!(bed.fences("a1").contains(bed.eni(2)));
    let calls = bed.emu().calls();
    let from_n1_assigns = calls
        .iter()
        .filter(|c| c["source"] == "10.77.0.11" && c["action"] == "AssignPrivateIpAddresses")
        .count();
    assert_eq!(
        from_n1_assigns, 1,
        "n1 assigned once (its initial takeover), never after failover"
    );
}

#[test]
fn fault_window_during_failover_still_converges() {
    let bed = bed();
    let _a1 = bed.arbiter(bed.ns(1), bed.cluster().node1(), bed.eni(1), "a1");
    let a2 = bed.arbiter(bed.ns(2), bed.cluster().node2(), bed.eni(2), "a2");
    wait_until(Duration::from_secs(15), "VIP on n1", || {
        bed.holders() == vec![bed.eni(1).to_owned()]
    });
    bed.emu().control(
        "POST",
        "/_va/fault",
        Some(&json!({"kind": "throttle", "seconds": 20})),
    );
    let opened = Instant::now();
    bed.cluster().stop_primary_and_promote_standby();
    // During the window nobody can confirm: n2 must not add the kernel address.
    while opened.elapsed() < Duration::from_secs(19) {
        assert!(
            !kernel_has(bed.ns(2), VIP),
            "kernel address added without an EC2 confirmation"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = wait_until(
        Duration::from_secs(40),
        "VIP on n2 after the window",
        || bed.holders() == vec![bed.eni(2).to_owned()] && kernel_has(bed.ns(2), VIP),
    );
    let after_window = (opened.elapsed()).saturating_sub(Duration::from_secs(20));
    assert!(
        after_window <= Duration::from_secs(17),
        "converged within one backoff step (≤ 16 s) of the window's end: {after_window:?} ({took:?})"
    );
    wait_until(Duration::from_secs(3), "n2 holding", || {
        a2.verdict() == "holding"
    });
}

#[test]
fn drift_at_ec2_is_repaired_within_verify_interval_and_the_bound_and_standby_never_adds() {
    let bed = bed();
    let a1 = bed.arbiter(bed.ns(1), bed.cluster().node1(), bed.eni(1), "a1");
    let _a2 = bed.arbiter(bed.ns(2), bed.cluster().node2(), bed.eni(2), "a2");
    wait_until(Duration::from_secs(15), "VIP on n1", || {
        bed.holders() == vec![bed.eni(1).to_owned()] && kernel_has(bed.ns(1), VIP)
    });
    // Reassign by hand to the standby's ENI (as a human with the aws CLI would).
    support::testbed::hand_assign(&bed.hub().ns, &bed.emu().url, bed.eni(2), VIP);
    assert_eq!(bed.holders(), vec![bed.eni(2).to_owned()]);
    let start = Instant::now();
    while bed.holders() != vec![bed.eni(1).to_owned()] {
        assert!(
            !kernel_has(bed.ns(2), VIP),
            "the standby never adds the VIP to its kernel"
        );
        // The hand-moved VIP has no claim: the holder waits the consistency bound (3 s
        // here) from the look that sees the move (within verify_interval, 5 s).
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not repaired within verify_interval (5 s) + the bound (3 s) + a pass"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(kernel_has(bed.ns(1), VIP));
    // After its start-up self-test, the standby makes no EC2 calls at all.
    let calls = bed.emu().calls();
    let from_n2: Vec<_> = calls
        .iter()
        .filter(|c| c["source"] == "10.77.0.12")
        .collect();
    // The self-test: 3 DryRun calls, a look at its own ENI, the subnet's CIDR and
    // one look at who has the VIP (the VIP against the subnet and the other ENIs).
    let steady: Vec<_> = from_n2
        .iter()
        .skip_while(|c| {
            c["dry_run"] == true
                || c["params"]["NetworkInterfaceId.1"].is_string()
                || c["action"] == "DescribeSubnets"
        })
        .skip(1)
        .collect();
    assert_eq!(
        from_n2.len() - steady.len(),
        6,
        "the self-test: 3 DryRun calls, its own ENI, DescribeSubnets, the VIP's holders: {from_n2:?}"
    );
    assert_eq!(
        from_n2[5]["params"]["Filter.1.Value.1"], VIP,
        "the last self-test call looks for the VIP: {from_n2:?}"
    );
    assert!(
        steady.is_empty(),
        "standby made EC2 calls in steady state: {steady:?}"
    );
    // A hand-added kernel address on the standby is removed within a pass.
    support::testbed::ens5_addr(bed.ns(2), "add", &format!("{VIP}/32"));
    wait_until(
        Duration::from_secs(3),
        "standby's hand-added address removed",
        || !kernel_has(bed.ns(2), VIP),
    );
    wait_until(Duration::from_secs(3), "n1 holding", || {
        a1.verdict() == "holding"
    });
}

#[test]
fn arbiter_crash_and_restart_moves_nothing() {
    let bed = bed();
    let mut a1 = bed.arbiter(bed.ns(1), bed.cluster().node1(), bed.eni(1), "a1");
    let _a2 = bed.arbiter(bed.ns(2), bed.cluster().node2(), bed.eni(2), "a2");
    wait_until(Duration::from_secs(15), "VIP on n1", || {
        bed.holders() == vec![bed.eni(1).to_owned()]
            && kernel_has(bed.ns(1), VIP)
            && a1.verdict() == "holding"
    });
    a1.kill9();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        bed.holders(),
        vec![bed.eni(1).to_owned()],
        "EC2 unchanged while the arbiter is down"
    );
    assert!(
        kernel_has(bed.ns(1), VIP),
        "kernel address unchanged while the arbiter is down"
    );
    bed.emu().control("DELETE", "/_va/calls", None);
    a1.spawn();
    wait_until(Duration::from_secs(5), "restarted arbiter holding", || {
        a1.verdict() == "holding"
    });
    let (moves, doubles) = sample(&bed, Duration::from_secs(3));
    assert_eq!((moves, doubles), (0, 0));
    let writes: Vec<String> = bed
        .emu()
        .calls()
        .iter()
        .filter(|c| c["dry_run"] != true)
        .filter_map(|c| c["action"].as_str().map(str::to_owned))
        .filter(|a| !a.starts_with("Describe"))
        .collect();
    assert!(
        writes.is_empty(),
        "a restart wrote to EC2 (self-test DryRuns aside): {writes:?}"
    );
}
