//! `scripts/demo`: the main job on a local cluster. Two PostgreSQL 15 nodes managed
//! by repmgr, each with vip-arbiter in its own network namespace, EC2 played by moto
//! in a hub namespace. Shows `status` on both nodes, fails the primary, promotes the
//! standby with repmgr, prints a timeline of what happened, and tears everything down.
//! Run as root (scripts/demo builds the binary and sets VA_TEST_ARBITER_BIN).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::pg_cluster::{PgCluster, PgNode};
use support::testbed::{Arbiter, Emulator, Hub, aws_env, kernel_has, wait_until};

const VIP: &str = "10.77.0.100";

fn arbiter(
    hub_dir: &std::path::Path,
    ns: &str,
    node: &PgNode,
    eni: &str,
    subnet: &str,
    url: &str,
    name: &str,
) -> Arbiter {
    let cfg = format!(
        "vip = \"{VIP}\"\ninterface = \"ens5\"\nprefix_len = 32\nrepmgr_config = {:?}\n\
         [aws]\nenabled = true\nregion = \"us-east-1\"\neni_id = \"{eni}\"\nsubnet_id = \"{subnet}\"\n",
        node.repmgr_conf().display().to_string()
    );
    let env = aws_env(url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Arbiter::start(ns, hub_dir, name, &cfg, &env)
}

fn show(title: &str, a: &Arbiter) {
    let (_, table) = a.cli(&["status"]);
    println!("--- vip-arbiter status on {title}\n{table}");
}

fn main() {
    println!(
        "== starting: PostgreSQL 15 primary + standby (repmgr), namespaces n1/n2 bridged like an EC2 subnet, moto as EC2"
    );
    let cluster = PgCluster::start();
    let mut hub = Hub::new();
    let n1 = hub.node("n1", "10.77.0.11");
    let n2 = hub.node("n2", "10.77.0.12");
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::start(&hub, dir.path());
    let ids = emu.setup(&[("n1", "10.77.0.11"), ("n2", "10.77.0.12")]);
    let eni = |n: &str| {
        ids["enis"][n]["eni_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (eni1, eni2) = (eni("n1"), eni("n2"));
    let subnet = ids["subnet_id"].as_str().unwrap_or_default().to_owned();
    let a1 = arbiter(
        dir.path(),
        &n1,
        cluster.node1(),
        &eni1,
        &subnet,
        &emu.url,
        "node1",
    );
    let a2 = arbiter(
        dir.path(),
        &n2,
        cluster.node2(),
        &eni2,
        &subnet,
        &emu.url,
        "node2",
    );
    wait_until(Duration::from_secs(20), "the VIP on node1", || {
        emu.holders(VIP) == vec![eni1.clone()] && kernel_has(&n1, VIP) && a1.verdict() == "holding"
    });
    println!(
        "VIP {VIP}: EC2 says {:?} (node1's ENI {eni1}); node2's ENI is {eni2}\n",
        emu.holders(VIP)
    );
    show("node1 (primary)", &a1);
    show("node2 (standby)", &a2);

    println!(
        "== failing the primary: pg_ctl stop -m immediate on node1, then repmgr standby promote on node2"
    );
    let t0 = Instant::now();
    cluster.node1().stop_immediate();
    let stopped = t0.elapsed();
    cluster.promote_standby();
    let promoted = t0.elapsed();
    let mut events: Vec<(Duration, String)> = vec![
        (stopped, "node1 PostgreSQL stopped".into()),
        (
            promoted,
            "node2 promoted (repmgr standby promote returned)".into(),
        ),
    ];
    let (mut ec2_moved, mut n2_added, mut n1_removed) = (false, false, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(ec2_moved && n2_added && n1_removed) && Instant::now() < deadline {
        let t = t0.elapsed();
        if !ec2_moved && emu.holders(VIP) == vec![eni2.clone()] {
            ec2_moved = true;
            events.push((t, format!("EC2: VIP assigned to node2's ENI {eni2}")));
        }
        if !n2_added && kernel_has(&n2, VIP) {
            n2_added = true;
            events.push((t, "kernel: VIP added on node2's ens5".into()));
        }
        if !n1_removed && !kernel_has(&n1, VIP) {
            n1_removed = true;
            events.push((t, "kernel: VIP removed from node1's ens5".into()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    events.sort();
    println!("\n== timeline (relative to the failure)");
    for (t, what) in &events {
        println!("  +{:>6} ms  {what}", t.as_millis());
    }
    wait_until(Duration::from_secs(5), "node2 holding", || {
        a2.verdict() == "holding"
    });
    println!();
    show("node1 (PostgreSQL down)", &a1);
    show("node2 (new primary)", &a2);
    let ok = ec2_moved && n2_added && n1_removed;
    println!(
        "== {}; tearing down",
        if ok {
            "the VIP followed the primary"
        } else {
            "DID NOT CONVERGE within 60 s"
        }
    );
    drop((a1, a2, emu, hub, cluster));
    if !ok {
        std::process::exit(1);
    }
}
