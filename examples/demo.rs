//! `scripts/demo`: the main job on a local cluster. Two PostgreSQL 15 nodes, each in its
//! own network namespace (bridged like an EC2 subnet, TCP between them), repmgrd with
//! automatic failover on both, vip-arbiter on both in EC2 mode, moto playing EC2 in a
//! hub namespace. Shows `status` on both nodes, crashes the primary, lets repmgrd fail
//! over, prints a timeline of what happened, and tears everything down.
//! Run as root (scripts/demo builds the binary and sets VA_TEST_ARBITER_BIN).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::repmgrd_bed::{ArbiterConf, BedOptions, RepmgrdBed, VIP};
use support::sampler::{Role, Samples};
use support::testbed::{Arbiter, kernel_has, wait_until};

fn show(title: &str, a: &Arbiter) {
    let (_, table) = a.cli(&["status"]);
    println!("--- vip-arbiter status on {title}\n{table}");
}

fn main() {
    println!(
        "== starting: 2 PostgreSQL 15 nodes in namespaces n1/n2 (10.77.0.11/12), repmgrd (failover=automatic),"
    );
    println!(
        "   vip-arbiter on both (EC2 mode, repmgr events kick it), moto as the EC2 API; VIP {VIP}"
    );
    let bed = RepmgrdBed::start(BedOptions::kicking());
    let ec2 = bed.start_ec2();
    let conf = ArbiterConf {
        ec2: Some(&ec2),
        ..ArbiterConf::default()
    };
    let a1 = bed.start_arbiter(1, &conf);
    let a2 = bed.start_arbiter(2, &conf);
    let (eni1, eni2) = (ec2.eni(1).to_owned(), ec2.eni(2).to_owned());
    wait_until(Duration::from_secs(20), "the VIP on node1", || {
        ec2.holders() == [eni1.clone()] && kernel_has(bed.ns(1), VIP) && a1.verdict() == "holding"
    });
    wait_until(Duration::from_secs(5), "node2 standby", || {
        a2.verdict() == "standby"
    });
    println!("EC2: the VIP is on node1's ENI {eni1}; node2's ENI is {eni2}\n");
    show("node1 (primary)", &a1);
    show("node2 (standby)", &a2);

    println!(
        "== crashing the primary: pg_ctl stop -m immediate on node1; repmgrd on node2 will promote it"
    );
    let sampler = bed.sampler(Some(&ec2), Duration::from_secs(90));
    let t0 = Instant::now();
    bed.node(1).stop_immediate();
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bed.wait_primary(2, Duration::from_secs(60));
        wait_until(Duration::from_secs(20), "the VIP on node2 only", || {
            ec2.holders() == [eni2.clone()]
                && kernel_has(bed.ns(2), VIP)
                && !kernel_has(bed.ns(1), VIP)
        });
    }))
    .is_ok();
    std::thread::sleep(Duration::from_millis(500));
    let rec = sampler.stop();
    // The sampler started just before the crash; its clock is the failure's clock.
    let offset = t0
        .elapsed()
        .saturating_sub(rec.last().map_or(Duration::ZERO, |s| s.t));
    let at = |d: Option<Duration>| {
        d.map_or("never".to_owned(), |d| {
            format!("+{:>5} ms", (d.saturating_sub(offset)).as_millis())
        })
    };
    println!("\n== timeline (relative to the crash)");
    println!(
        "  {}  node1 PostgreSQL seen down",
        at(rec.first_time(|s| s.role[0] == Role::Down))
    );
    println!(
        "  {}  node2 out of recovery (promoted by repmgrd)",
        at(rec.first_time(|s| s.role[1] == Role::Primary))
    );
    println!(
        "  {}  EC2: VIP assigned to node2's ENI",
        at(rec.moves_at_ec2().first().map(|m| m.0))
    );
    println!(
        "  {}  kernel: VIP added on node2's ens5",
        at(rec.first_time(|s| s.kernel[1]))
    );
    println!(
        "  {}  kernel: VIP removed from node1's ens5",
        at(rec.first_time(|s| !s.kernel[0]))
    );
    println!(
        "  (repmgrd waits 3 × 2 s of reconnect attempts before promoting; vip-arbiter follows repmgr.nodes)"
    );
    println!();
    show("node1 (PostgreSQL down)", &a1);
    show("node2 (new primary)", &a2);
    println!(
        "== {}; tearing down",
        if ok {
            "the VIP followed the primary"
        } else {
            "DID NOT CONVERGE"
        }
    );
    drop((a1, a2, ec2, bed));
    if !ok {
        std::process::exit(1);
    }
}
