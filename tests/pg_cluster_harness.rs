//! The test harness itself, against real PostgreSQL 15 + repmgr and real network
//! namespaces. Needs root; without it these fail with a message, never skip.

mod support;

use std::path::Path;
use std::time::Instant;

use support::netns::Netns;
use support::pg_cluster::{ClusterOptions, PgCluster, output_text};

/// `id|type|active` of every row in the node's own repmgr.nodes, ordered by id.
fn nodes_table(node: &support::pg_cluster::PgNode) -> Vec<String> {
    node.psql("SELECT node_id || '|' || type || '|' || active FROM repmgr.nodes ORDER BY node_id")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn primary_and_standby_are_up_and_registered() {
    let t = Instant::now();
    let c = PgCluster::start();
    eprintln!("cluster start took {:?}", t.elapsed());
    let (n1, n2) = (c.node1(), c.node2());

    assert_eq!(n1.psql("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(n2.psql("SELECT pg_is_in_recovery()"), "t");
    assert!(n1.is_running() && n2.is_running());
    assert_eq!(
        (n1.node_id(), n1.name(), n2.node_id(), n2.name()),
        (1, "node1", 2, "node2")
    );
    assert_ne!(n1.port(), n2.port());

    for node in [n1, n2] {
        assert_eq!(
            node.psql("SELECT node_id || '|' || node_name || '|' || type || '|' || active FROM repmgr.nodes ORDER BY node_id"),
            "1|node1|primary|true\n2|node2|standby|true",
            "repmgr.nodes as seen on {}",
            node.name()
        );
        // repmgr.nodes holds exactly the conninfo the accessor gives.
        assert_eq!(
            node.psql(&format!(
                "SELECT conninfo FROM repmgr.nodes WHERE node_id = {}",
                node.node_id()
            )),
            node.conninfo()
        );
        // Unix sockets only: no TCP listener.
        assert_eq!(node.psql("SHOW listen_addresses"), "");
        assert_eq!(node.psql("SHOW max_connections"), "20");
        assert_eq!(node.psql("SHOW superuser_reserved_connections"), "3");
        assert_eq!(node.psql("SHOW port"), node.port().to_string());
        assert!(
            node.socket_dir()
                .join(format!(".s.PGSQL.{}", node.port()))
                .exists()
        );
        let conf = std::fs::read_to_string(node.repmgr_conf()).unwrap();
        assert!(
            conf.contains(&format!("conninfo='{}'", node.conninfo())),
            "{conf}"
        );
        assert!(node.data_dir().join("PG_VERSION").exists());
    }

    // Replication really works.
    n1.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (42)");
    let lsn = n1.psql("SELECT pg_current_wal_lsn()");
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while n2.psql(&format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'")) != "t" {
        assert!(Instant::now() < deadline, "standby did not replay {lsn}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(n2.psql("SELECT x FROM t"), "42");
    assert!(
        n2.try_psql("INSERT INTO t VALUES (1)")
            .unwrap_err()
            .contains("read-only")
    );

    let show = n1.repmgr(&["cluster", "show"]);
    assert!(show.status.success(), "{}", output_text(&show));
    assert!(c.timeline(n1) == 1 && c.timeline(n2) == 1);
}

#[test]
fn failover_then_stale_primary() {
    let c = PgCluster::start();
    let (n1, n2) = (c.node1(), c.node2());
    assert_eq!(c.timeline(n1), 1);

    // repmgr refuses to promote while the primary is still up.
    let refused = c.try_promote_standby();
    assert!(!refused.status.success(), "{}", output_text(&refused));
    assert_eq!(n2.psql("SELECT pg_is_in_recovery()"), "t");

    let t = Instant::now();
    c.stop_primary_and_promote_standby();
    eprintln!("stop + promote took {:?}", t.elapsed());
    assert!(!n1.is_running());
    assert_eq!(n2.psql("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(c.timeline(n2), 2);
    let after_promote = nodes_table(n2);
    eprintln!("node2's repmgr.nodes after promote: {after_promote:?}");
    assert_eq!(
        after_promote[1], "2|primary|true",
        "node2 names itself primary"
    );

    c.start_old_primary_as_is();
    assert!(n1.is_running());
    assert_eq!(n1.psql("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(c.timeline(n1), 1, "stale primary stays on the old timeline");
    // The stale primary never saw the promotion: its own table still names itself.
    assert_eq!(nodes_table(n1), ["1|primary|true", "2|standby|true"]);
    // And node2 keeps what the promotion wrote.
    assert_eq!(nodes_table(n2), after_promote);
    // Both accept writes: a real split brain.
    n1.psql("CREATE TABLE s1 (x int)");
    n2.psql("CREATE TABLE s2 (x int)");
}

#[test]
fn stop_start_and_options() {
    let c = PgCluster::start_with(ClusterOptions {
        repmgr_conf_extra: Some(Box::new(|n| {
            format!("event_notification_command='/bin/true %n %e {}'", n.name())
        })),
        postgresql_conf_extra: "application_name = 'harness'".into(),
    });
    let n2 = c.node2();
    let conf = std::fs::read_to_string(n2.repmgr_conf()).unwrap();
    assert!(
        conf.contains("event_notification_command='/bin/true %n %e node2'"),
        "{conf}"
    );
    assert_eq!(
        c.node1().psql("SHOW application_name"),
        "psql",
        "psql sets its own"
    );
    assert!(
        std::fs::read_to_string(c.node1().data_dir().join("postgresql.conf"))
            .unwrap()
            .contains("application_name = 'harness'")
    );

    n2.stop_fast();
    assert!(!n2.is_running());
    assert!(n2.try_psql("SELECT 1").is_err());
    n2.start();
    assert_eq!(n2.psql("SELECT pg_is_in_recovery()"), "t");
    n2.stop_immediate();
    assert!(!n2.is_running());
    n2.start();
    assert_eq!(n2.psql("SELECT 1"), "1");
}

#[test]
fn drop_stops_servers_and_removes_dir() {
    let c = PgCluster::start();
    let base = c.base_dir().to_owned();
    let pids: Vec<String> = c
        .nodes()
        .iter()
        .map(|n| {
            let pidfile = std::fs::read_to_string(n.data_dir().join("postmaster.pid")).unwrap();
            pidfile.lines().next().unwrap().to_owned()
        })
        .collect();
    drop(c);
    assert!(!base.exists(), "{} still exists", base.display());
    for pid in pids {
        assert!(!alive(&pid), "postmaster {pid} still running");
    }
}

/// A process that exists and is not a zombie (the stopped postmaster was reparented to
/// pid 1, which may reap it a little later).
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn drop_cleans_up_after_a_panic() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let c = PgCluster::start();
        let pid = std::fs::read_to_string(c.node1().data_dir().join("postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().to_owned();
        *seen.lock().unwrap() = Some((c.base_dir().to_owned(), pid));
        panic!("test body fails");
    }));
    assert!(result.is_err());
    let (base, pid) = seen.lock().unwrap().take().expect("cluster started");
    assert!(
        !base.exists(),
        "{} left behind after a panic",
        base.display()
    );
    assert!(!alive(&pid), "postmaster {pid} still running after a panic");
}

#[test]
fn netns_has_ens5_and_address_drift_is_visible() {
    let ns = Netns::new("harn", "10.77.1.11/20");
    let name = ns.name().to_owned();
    assert!(name.starts_with("va-harn-"));
    assert!(ns.path().exists());
    assert_eq!(ns.addresses("ens5"), vec![("10.77.1.11".to_owned(), 20)]);
    assert_eq!(ns.addresses("ens5p"), vec![]);
    assert_eq!(ns.addresses("lo"), vec![("127.0.0.1".to_owned(), 8)]);

    let links = ns
        .exec("ip", &["-o", "link", "show", "ens5"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(links.contains("state UP"), "{links}");

    ns.add_address("ens5", "10.77.1.100/32");
    assert!(
        ns.addresses("ens5")
            .contains(&("10.77.1.100".to_owned(), 32))
    );
    ns.del_address("ens5", "10.77.1.100/32");
    assert_eq!(ns.addresses("ens5"), vec![("10.77.1.11".to_owned(), 20)]);

    // Nothing in the root namespace.
    let root = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&root.stdout).contains("ens5p"));

    drop(ns);
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name),
        "{name} still listed"
    );
    assert!(!Path::new("/var/run/netns").join(&name).exists());
}

#[test]
fn unix_sockets_reach_into_a_namespace() {
    let c = PgCluster::start();
    let ns = Netns::new("sock", "10.77.1.12/20");
    let n1 = c.node1();
    let port = n1.port().to_string();
    let sock = n1.socket_dir();
    let out = ns
        .exec("/usr/sbin/runuser", &["-u", "postgres", "--"])
        .arg(format!("{}/psql", support::pg_cluster::PG_BINDIR))
        .args([
            "-XAtq",
            "-h",
            sock.to_str().unwrap(),
            "-p",
            &port,
            "-U",
            "repmgr",
            "-d",
            "repmgr",
        ])
        .args(["-c", "SELECT type FROM repmgr.nodes WHERE node_id = 1"])
        .current_dir(c.base_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "primary");
}
