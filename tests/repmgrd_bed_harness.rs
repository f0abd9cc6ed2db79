//! The repmgrd testbed itself: two PostgreSQL nodes in their own namespaces over TCP,
//! repmgrd on both; automatic failover and rejoin, switchover over ssh, repmgrd
//! crash and restart, cleanup.

mod support;

use std::time::Duration;

use support::repmgrd_bed::{BedOptions, RepmgrdBed};
use support::sampler::Role;
use support::testbed::wait_until;

#[test]
fn repmgrd_fails_over_over_tcp_and_the_old_primary_rejoins() {
    let bed = RepmgrdBed::start(BedOptions::default());
    assert_eq!(bed.roles(), [Role::Primary, Role::Standby]);
    assert_eq!(bed.primary_id(), Some(1));
    // repmgr's view goes over TCP between the namespaces.
    let show = bed.repmgr_bounded(1, &["cluster", "show", "--csv"], Duration::from_secs(20));
    assert!(show.0.success(), "{}", show.1);
    let conninfo: String = bed
        .node(2)
        .psql("SELECT conninfo FROM repmgr.nodes WHERE node_id = 1");
    assert!(conninfo.contains("host=10.77.0.11 port=5432"), "{conninfo}");
    assert_eq!(
        bed.node(1)
            .psql("SELECT client_addr FROM pg_stat_replication WHERE application_name = 'node2'"),
        "10.77.0.12",
        "n2 streams from n1 over the bridge"
    );
    assert_eq!(bed.timeline(1), 1);

    bed.node(1).stop_immediate();
    bed.wait_primary(2, Duration::from_secs(60));
    assert!(
        bed.repmgrd_log(2)
            .contains("this node is the only available candidate"),
        "{}",
        bed.logs()
    );
    assert_eq!(bed.timeline(2), 2);
    wait_until(
        Duration::from_secs(10),
        "repmgr.nodes names n2 primary",
        || {
            bed.node(2)
                .try_psql("SELECT type FROM repmgr.nodes WHERE node_id = 2 AND active")
                .as_deref()
                == Ok("primary")
        },
    );

    bed.rejoin(1);
    assert_eq!(bed.roles(), [Role::Standby, Role::Primary]);
    assert_eq!(bed.primary_id(), Some(2));
    assert_eq!(bed.timeline(1), 2);
}

#[test]
fn switchover_over_ssh_and_back() {
    let bed = RepmgrdBed::start(BedOptions {
        ssh: true,
        ..BedOptions::default()
    });
    let (ok, out) = bed.switchover_dry_run(2);
    assert!(ok, "switchover --dry-run failed:\n{out}");
    assert!(
        out.contains("would pause repmgrd"),
        "repmgrd seen running:\n{out}"
    );
    bed.switchover_to(2);
    assert_eq!(bed.roles(), [Role::Standby, Role::Primary]);
    assert_eq!(bed.timeline(2), 2);
    bed.switchover_to(1);
    assert_eq!(bed.roles(), [Role::Primary, Role::Standby]);
    assert_eq!(bed.timeline(1), 3);
}

#[test]
fn no_failover_without_repmgrd_then_a_restarted_repmgrd_fails_over() {
    let mut bed = RepmgrdBed::start(BedOptions::default());
    bed.kill_repmgrd(2);
    assert!(!bed.repmgrd_running(2));
    bed.node(1).stop_immediate();
    // Twice repmgrd's reconnect window: nobody promotes.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(bed.role(2), Role::Standby);
    bed.node(1).start();
    bed.wait_streaming(2, Duration::from_secs(30));
    bed.start_repmgrd(2);
    assert!(bed.repmgrd_running(2));
    bed.node(1).stop_immediate();
    bed.wait_primary(2, Duration::from_secs(60));
}

#[test]
fn partition_cuts_tcp_between_nodes_and_drop_cleans_up() {
    let bed = RepmgrdBed::start(BedOptions {
        ssh: true,
        repmgrd: false,
        ..BedOptions::default()
    });
    for port in [5432, 22] {
        assert!(bed.tcp_reachable(2, 1, port), "n2 reaches n1:{port}");
        assert!(bed.tcp_reachable(1, 2, port), "n1 reaches n2:{port}");
    }
    bed.partition(1);
    assert!(!bed.tcp_reachable(2, 1, 5432), "partitioned");
    assert!(!bed.tcp_reachable(1, 2, 5432), "partitioned");
    // psql goes through the unix socket: the tests still see a partitioned node.
    assert_eq!(bed.role(1), Role::Primary);
    bed.heal(1);
    wait_until(Duration::from_secs(10), "n1 reachable again", || {
        bed.tcp_reachable(2, 1, 5432)
    });
    let dir = bed.dir().to_owned();
    let ns = [bed.ns(1).to_owned(), bed.ns(2).to_owned()];
    let pids: Vec<String> = ns
        .iter()
        .flat_map(|n| {
            support::testbed::run("ip", &["netns", "pids", n])
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !pids.is_empty(),
        "postgres and sshd run inside the namespaces"
    );
    drop(bed);
    assert!(!dir.exists(), "{} removed", dir.display());
    let list = support::testbed::run("ip", &["netns", "list"]);
    for n in &ns {
        assert!(!list.contains(n.as_str()), "{n} deleted: {list}");
    }
    // Killed processes are gone once reaped; zombies (State Z) are dead already.
    let alive = |pid: &String| {
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
    };
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        wait_until(
            Duration::from_secs(5),
            &format!("process {pid} gone: {status}"),
            || !alive(&pid),
        );
    }
}

const KILL_HELPER_ENV: &str = "VA_BED_KILL_HELPER";

/// Not a test of its own: `a_killed_test_leaves_nothing_behind` runs this test binary
/// with only this test and `VA_BED_KILL_HELPER=<file>`; it starts a bed, writes what
/// it made to the file and waits to be SIGKILLed. Without the variable it does nothing.
#[test]
fn helper_bed_for_the_kill_test() {
    let Ok(file) = std::env::var(KILL_HELPER_ENV) else {
        return;
    };
    let bed = RepmgrdBed::start(BedOptions {
        ssh: true,
        ..BedOptions::default()
    });
    let mut info = format!("{}\n{}\n", bed.dir().display(), bed.hub().ns);
    for ns in [bed.ns(1), bed.ns(2), bed.hub().ns.as_str()] {
        info.push_str(&support::testbed::run("ip", &["netns", "pids", ns]).replace('\n', " "));
    }
    std::fs::write(format!("{file}.tmp"), info).expect("write info");
    std::fs::rename(format!("{file}.tmp"), &file).expect("publish info");
    std::thread::sleep(Duration::from_secs(120));
    panic!("helper bed was not killed within 120 s");
}

#[test]
fn a_killed_test_leaves_nothing_behind() {
    support::require_root("this test (it SIGKILLs a helper that holds a bed)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("bed.info");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "helper_bed_for_the_kill_test", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(KILL_HELPER_ENV, &file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the helper");
    wait_until(Duration::from_secs(90), "the helper's bed", || {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("helper exited early ({st})");
        }
        file.exists()
    });
    let info = std::fs::read_to_string(&file).expect("info");
    let mut lines = info.lines();
    let (dir, hub) = (lines.next().expect("dir"), lines.next().expect("hub"));
    let pids: Vec<&str> = lines.flat_map(str::split_whitespace).collect();
    assert!(pids.len() > 4, "postgres, repmgrd and sshd run: {pids:?}");
    child.kill().expect("SIGKILL the helper");
    let _ = child.wait();

    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
    };
    wait_until(Duration::from_secs(30), "the reapers to clean up", || {
        let list = support::testbed::run("ip", &["netns", "list"]);
        !std::path::Path::new(dir).exists()
            && !list.lines().any(|l| l.starts_with(hub))
            && !pids.iter().any(|p| alive(p))
    });
}
