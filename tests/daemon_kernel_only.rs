//! The whole daemon, kernel-only, in two network namespaces against a real primary
//! and standby: the VIP is on the primary's namespace only; after promotion it moves;
//! `kick` shortens that; `status`/`check`/health report it; SIGTERM honours on_stop.

mod support;

use std::path::Path;
use std::time::Duration;

use support::bed::{Bed, VIP};
use support::pg_cluster::PgNode;
use support::testbed::{Arbiter, kernel_has, wait_until};

fn config(node: &PgNode, interval: &str, extra: &str) -> String {
    format!(
        "vip = \"{VIP}\"\ninterface = \"ens5\"\nrepmgr_config = {:?}\ninterval = \"{interval}\"\npg_unknown_hold = \"2s\"\nlog_level = \"debug\"\n{extra}",
        node.repmgr_conf().display().to_string()
    )
}

/// A primary and a standby (root namespace, unix sockets) and two bridged node
/// namespaces whose arbiters reach them through the sockets.
fn bed() -> Bed {
    Bed::builder().postgres().build()
}

/// The daemon in namespace `ns` for `node`, kernel-only, with `interval` and `extra` lines.
fn arbiter(
    ns: &str,
    dir: &Path,
    name: &str,
    node: &PgNode,
    interval: &str,
    extra: &str,
) -> Arbiter {
    Arbiter::start(ns, dir, name, &config(node, interval, extra), &[])
}

fn passes(a: &Arbiter) -> u64 {
    a.health()
        .and_then(|h| h["pass_count"].as_u64())
        .unwrap_or(0)
}

#[test]
fn vip_follows_the_primary_and_reports_it() {
    let bed = bed();
    let (cluster, n1, n2, dir) = (bed.cluster(), bed.ns(1), bed.ns(2), bed.dir());
    let a1 = arbiter(n1, dir, "a1", cluster.node1(), "500ms", "");
    let mut a2 = arbiter(n2, dir, "a2", cluster.node2(), "500ms", "");

    wait_until(Duration::from_secs(10), "VIP on n1", || kernel_has(n1, VIP));
    for _ in 0..10 {
        assert!(!kernel_has(n2, VIP), "the standby never has the VIP");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(a1.verdict(), "holding");
    assert_eq!(a2.verdict(), "standby");
    let (code, line) = a1.cli(&["check"]);
    assert_eq!(
        (code, line.starts_with("VIP-ARBITER OK - holding")),
        (0, true),
        "{line}"
    );
    let (code, table) = a1.cli(&["status"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("role            primary") && table.contains("kernel          present /20"),
        "{table}"
    );
    let health = a1.health().expect("health");
    assert_eq!(
        (
            health["timeline"].as_u64(),
            health["repmgr_primary"].as_u64()
        ),
        (Some(1), Some(1))
    );

    cluster.stop_primary_and_promote_standby();
    let at_promotion = passes(&a2);
    wait_until(Duration::from_secs(10), "VIP on n2", || kernel_has(n2, VIP));
    let took = passes(&a2) - at_promotion;
    assert!(
        took <= 2,
        "moved within 2 passes of the promotion, took {took}"
    );
    // n1's PostgreSQL is down: unknown, held for pg_unknown_hold (2 s), then released.
    wait_until(Duration::from_secs(10), "VIP gone from n1", || {
        !kernel_has(n1, VIP)
    });
    let (code, line) = a1.cli(&["check"]);
    assert_eq!(
        code, 2,
        "CRITICAL: PostgreSQL unknown and VIP released: {line}"
    );
    assert_eq!(a2.verdict(), "holding");
    assert_eq!(a2.health().expect("health")["timeline"].as_u64(), Some(2));

    // SIGTERM with the default on_stop = keep: exit 0, address stays, socket removed.
    assert_eq!(a2.stop(), Some(0));
    assert!(kernel_has(n2, VIP), "on_stop = keep leaves the address");
    assert!(!a2.socket.exists(), "socket removed on stop");
    let (code, line) = a2.cli(&["check"]);
    assert_eq!(code, 3, "UNKNOWN when the daemon is not running: {line}");
    let (code, _) = a2.cli(&[
        "kick",
        "2",
        "standby_promote",
        "1",
        "2026-01-01",
        "details with spaces",
    ]);
    assert_eq!(code, 0, "kick always exits 0, even with no daemon");

    // Restarted with on_stop = release: no move on start, and SIGTERM removes it.
    let a2 = arbiter(
        n2,
        dir,
        "a2r",
        cluster.node2(),
        "500ms",
        "on_stop = \"release\"\n",
    );
    assert!(kernel_has(n2, VIP));
    let mut a2 = a2;
    assert_eq!(a2.stop(), Some(0));
    assert!(
        !kernel_has(n2, VIP),
        "on_stop = release removes the address"
    );
}

#[test]
fn kick_makes_the_move_sooner_than_the_interval() {
    let bed = bed();
    let (cluster, n2, dir) = (bed.cluster(), bed.ns(2), bed.dir());
    // A 60 s interval: without a kick the next pass is a minute away.
    let a2 = arbiter(n2, dir, "a2", cluster.node2(), "60s", "");
    assert_eq!(a2.verdict(), "standby");
    cluster.stop_primary_and_promote_standby();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!kernel_has(n2, VIP), "no pass yet: the interval is 60 s");
    let (code, _) = a2.cli(&["kick", "2", "standby_promote", "1"]);
    assert_eq!(code, 0);
    wait_until(Duration::from_secs(5), "VIP on n2 after the kick", || {
        kernel_has(n2, VIP)
    });
    assert_eq!(passes(&a2), 2, "one pass per kick: startup + kick");
}

#[test]
fn hand_added_address_on_the_standby_is_removed_and_drift_on_primary_repaired() {
    let bed = bed();
    let (cluster, n1, n2, dir) = (bed.cluster(), bed.ns(1), bed.ns(2), bed.dir());
    let a1 = arbiter(n1, dir, "a1", cluster.node1(), "300ms", "");
    let a2 = arbiter(n2, dir, "a2", cluster.node2(), "300ms", "");
    wait_until(Duration::from_secs(10), "VIP on n1", || kernel_has(n1, VIP));
    support::testbed::ens5_addr(n2, "add", &format!("{VIP}/32"));
    wait_until(
        Duration::from_secs(5),
        "hand-added VIP removed from the standby",
        || !kernel_has(n2, VIP),
    );
    support::testbed::ens5_addr(n1, "del", &format!("{VIP}/20"));
    let before = passes(&a1);
    wait_until(Duration::from_secs(5), "VIP back on the primary", || {
        kernel_has(n1, VIP)
    });
    assert!(passes(&a1) - before <= 2, "repaired within 2 passes");
    wait_until(Duration::from_secs(3), "standby verdict on n2", || {
        a2.verdict() == "standby"
    });
}

#[test]
fn connection_exhaustion_keeps_the_vip_through_the_reserved_superuser_slot() {
    let bed = bed();
    let (cluster, n1, dir) = (bed.cluster(), bed.ns(1), bed.dir());
    let mut a1 = arbiter(n1, dir, "a1", cluster.node1(), "300ms", "");
    wait_until(Duration::from_secs(10), "VIP on n1", || kernel_has(n1, VIP));
    let p = cluster.node1();
    p.psql("CREATE ROLE app LOGIN");
    // Ordinary clients take every non-reserved slot (max_connections 20, 3 reserved).
    let sock = p.socket_dir().display().to_string();
    let port = p.port().to_string();
    let hogs = support::testbed::Hogs::fill(&sock, &port, "app", 20, 30, Duration::from_secs(30));
    assert!(
        !support::testbed::slot_for(&sock, &port, "app"),
        "an ordinary client is now refused"
    );
    // The arbiter keeps observing over its persistent connection...
    let before = passes(&a1);
    wait_until(Duration::from_secs(5), "five more passes", || {
        passes(&a1) >= before + 5
    });
    assert_eq!(a1.verdict(), "holding");
    // ...and a restarted arbiter gets in through the reserved superuser slot.
    a1.kill9();
    a1.spawn();
    wait_until(Duration::from_secs(5), "restarted arbiter holding", || {
        a1.verdict() == "holding"
    });
    assert!(kernel_has(n1, VIP), "the VIP never left");
    drop(hogs);
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one() {
    let bed = bed();
    let (cluster, n1, dir) = (bed.cluster(), bed.ns(1), bed.dir());
    let a1 = arbiter(n1, dir, "a1", cluster.node1(), "300ms", "");
    wait_until(Duration::from_secs(10), "VIP on n1", || kernel_has(n1, VIP));
    let good = std::fs::read_to_string(&a1.config).expect("config");
    std::fs::write(&a1.config, format!("{good}\ninterval = \"forever\"\n")).expect("break config");
    let pid = support::testbed::run("ip", &["netns", "pids", n1]);
    for p in pid.split_whitespace() {
        support::testbed::run("kill", &["-HUP", p]);
    }
    wait_until(Duration::from_secs(5), "the refusal in the log", || {
        a1.log_text().contains("configuration reload refused")
    });
    let before = passes(&a1);
    wait_until(
        Duration::from_secs(5),
        "passes continue at the old interval",
        || passes(&a1) >= before + 3,
    );
    assert_eq!(a1.verdict(), "holding");
    // A good change applies: 300 ms → 100 ms. And a key the running adapters were built
    // with (aws.region) says, in its message, that it needs a restart (issue 19, 6).
    std::fs::write(
        &a1.config,
        good.replace("interval = \"300ms\"", "interval = \"100ms\"")
            + "\n[aws]\nregion = \"eu-west-1\"\n",
    )
    .expect("fix config");
    for p in pid.split_whitespace() {
        support::testbed::run("kill", &["-HUP", p]);
    }
    wait_until(Duration::from_secs(5), "reload applied", || {
        a1.log_text().contains("configuration reloaded")
    });
    let log = a1.log_text();
    assert!(
        log.contains("configuration reloaded: interval 300ms -> 100ms"),
        "one line that says what changed:\n{log}"
    );
    assert!(!log.contains("LoopConfig"), "never a Debug dump:\n{log}");
    assert!(
        log.contains(
            "aws.region changed in the config file, but only takes effect after a restart"
        ),
        "{log}"
    );
    let before = passes(&a1);
    std::thread::sleep(Duration::from_secs(1));
    let in_a_second = passes(&a1) - before;
    assert!(
        in_a_second >= 5,
        "about ten passes a second at 100 ms, saw {in_a_second}"
    );
}

#[test]
fn sd_notify_ready_watchdog_status_stopping() {
    let bed = bed();
    let (cluster, n1, dir) = (bed.cluster(), bed.ns(1), bed.dir());
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let notify_env = notify_path.display().to_string();
    let mut a1 = Arbiter::start(
        n1,
        dir,
        "a1",
        &config(cluster.node1(), "200ms", ""),
        &[("NOTIFY_SOCKET", &notify_env)],
    );
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while messages.len() < 6 {
        let n = notify.recv(&mut buf).expect("a notification");
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        messages[0].contains("READY=1") && messages[0].contains("STATUS="),
        "READY first: {messages:?}"
    );
    assert_eq!(
        messages.iter().filter(|m| m.contains("READY=1")).count(),
        1,
        "READY once: {messages:?}"
    );
    let watchdogs = messages.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(watchdogs >= 4, "WATCHDOG after every pass: {messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("STATUS=holding: primary, VIP here")),
        "{messages:?}"
    );
    assert_eq!(a1.stop(), Some(0));
    let mut tail = Vec::new();
    while let Ok(n) = notify.recv(&mut buf) {
        tail.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if tail.last().is_some_and(|m| m.contains("STOPPING=1")) {
            break;
        }
    }
    assert!(
        tail.iter().any(|m| m.contains("STOPPING=1")),
        "STOPPING on SIGTERM: {tail:?}"
    );
}

#[test]
fn plan_prints_what_it_would_do_and_changes_nothing() {
    let bed = bed();
    let (cluster, n1, n2, dir) = (bed.cluster(), bed.ns(1), bed.ns(2), bed.dir());
    let plan = |ns: &str, node: &PgNode, json: bool| {
        let cfg = dir.join(format!("{ns}.toml"));
        std::fs::write(&cfg, config(node, "1s", "")).expect("config");
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                &support::testbed::arbiter_bin(),
                "--config",
            ])
            .arg(&cfg)
            .arg("plan")
            .args(json.then_some("--json"))
            .output()
            .expect("plan");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    // The primary: what each source said, the verdict, the step as the `ip` call.
    let text = plan(n1, cluster.node1(), false);
    for want in [
        "# vip-arbiter plan: node 1, VIP 10.77.0.100/20 on ens5, kernel-only; nothing was changed\n",
        "postgresql:   primary (not in recovery), timeline 1\n",
        "repmgr.nodes: node 1 is the active primary (active primary: node 1)\n",
        "kernel:       10.77.0.100 is not on ens5\n",
        "ec2:          disabled (kernel-only mode)\n",
        "eligibility:  eligible (timeline 1)\n",
        "verdict:      acquiring: primary, taking the VIP\n",
        "severity:     WARNING (check exits 1)\n",
        "step 1:       ip addr add 10.77.0.100/20 dev ens5  # add_kernel",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    let v: serde_json::Value = serde_json::from_str(&plan(n1, cluster.node1(), true))
        .expect("plan --json is one JSON document");
    assert_eq!(v["format"], 1);
    assert_eq!(v["postgres"]["role"], "primary");
    assert_eq!(v["postgres"]["timeline"], 1);
    assert_eq!(v["repmgr"]["says"], "self-primary");
    assert_eq!(v["kernel"]["state"], "absent");
    assert_eq!(v["ec2"]["state"], "disabled");
    assert_eq!(v["eligibility"]["state"], "eligible");
    assert_eq!(v["verdict"]["kind"], "acquiring");
    assert_eq!(v["verdict"]["severity"], "warning");
    assert_eq!(v["steps"][0]["kind"], "add_kernel");
    assert_eq!(v["steps"][0]["call"], "ip addr add 10.77.0.100/20 dev ens5");
    assert_eq!(v["converged"], false);
    assert!(!kernel_has(n1, VIP), "plan changed nothing");
    // The standby: nothing to do.
    let text = plan(n2, cluster.node2(), false);
    for want in [
        "postgresql:   standby (in recovery)\n",
        "repmgr.nodes: node 2 is a standby row (active primary: node 1)\n",
        "eligibility:  not eligible: in recovery\n",
        "verdict:      standby: in recovery; VIP not here\n",
        "severity:     OK (check exits 0)\n",
        "steps:        none (converged)\n",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}
