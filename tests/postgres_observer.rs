//! The PostgreSQL observer against real PostgreSQL 15 + repmgr (a primary and a
//! streaming standby made by the harness): role, timeline, repmgr's view, the
//! persistent connection's loss and reconnect, and the session's hardening: its
//! timeouts, a query blocked behind a lock (ended on the server, cancelled when our
//! deadline or the caller's runs out), a rotated password, the system identifier.

mod support;

use support::testbed::rt;

use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use support::pg_cluster::{PG_BINDIR, PgCluster, PgNode, path_str, write_postgres_file};
use support::reaper::Reaper;
use support::testbed::wait_until;
use vip_arbiter::adapters::postgres::{PgObserver, PgTimeouts};
use vip_arbiter::core::observation::{PgRole, PgView, RepmgrSays};
use vip_arbiter::pass::observe::{PgReport, PgSource, bounded};

fn observer(node: &PgNode) -> PgObserver {
    let mut cfg = tokio_postgres::Config::from_str(&node.conninfo()).expect("conninfo");
    cfg.connect_timeout(Duration::from_secs(2));
    cfg.application_name("vip-arbiter-test");
    PgObserver::new(cfg, i32::try_from(node.node_id()).expect("node id"))
}

fn observe(rt: &tokio::runtime::Runtime, o: &mut PgObserver) -> PgReport {
    rt.block_on(o.observe())
}

#[test]
fn primary_standby_promotion_and_stale_primary() {
    let cluster = PgCluster::start();
    let rt = rt();
    let mut o1 = observer(cluster.node1());
    let mut o2 = observer(cluster.node2());

    let r1 = observe(&rt, &mut o1);
    assert_eq!(
        r1.view,
        PgView::Known {
            role: PgRole::Primary { timeline: 1 },
            repmgr: RepmgrSays::SelfPrimary
        }
    );
    assert_eq!(r1.repmgr_primary, Some(1));
    assert_eq!(r1.known_nodes, Some(vec![1, 2]), "every repmgr.nodes row");
    let r2 = observe(&rt, &mut o2);
    assert_eq!(
        r2.view,
        PgView::Known {
            role: PgRole::Standby,
            repmgr: RepmgrSays::SelfNotPrimary
        }
    );
    assert_eq!(r2.repmgr_primary, Some(1));
    // The TCP endpoint's /replica: the standby's WAL receiver, its upstream, its lag.
    assert_eq!(r1.replication, None, "a primary reports no replication");
    let rep = r2
        .replication
        .clone()
        .expect("a standby reports its replication");
    assert_eq!(
        (rep.receiver.as_deref(), rep.upstream),
        (Some("streaming"), Some(1)),
        "{rep:?}"
    );
    assert!(rep.lag_bytes.is_some() && rep.lag_ms.is_some(), "{rep:?}");

    cluster.stop_primary_and_promote_standby();
    let r1 = observe(&rt, &mut o1);
    assert!(
        matches!(r1.view, PgView::Unknown(_)),
        "stopped primary is unknown, not 'not primary': {:?}",
        r1.view
    );
    let r2 = observe(&rt, &mut o2);
    assert_eq!(
        r2.view,
        PgView::Known {
            role: PgRole::Primary { timeline: 2 },
            repmgr: RepmgrSays::SelfPrimary
        },
        "same connection sees the promotion"
    );
    assert_eq!(r2.replication, None, "promoted: no replication");
    assert_eq!(r2.repmgr_primary, Some(2));
    assert_eq!(cluster.timeline(cluster.node2()), 2);

    // The old primary restarted as it was: its own repmgr.nodes still names it primary.
    cluster.start_old_primary_as_is();
    let mut tries = 0;
    let r1 = loop {
        let r = observe(&rt, &mut o1);
        if !matches!(r.view, PgView::Unknown(_)) || tries > 20 {
            break r;
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        r1.view,
        PgView::Known {
            role: PgRole::Primary { timeline: 1 },
            repmgr: RepmgrSays::SelfPrimary
        },
        "reconnected; stale view"
    );
}

#[test]
fn connection_loss_is_unknown_then_reconnects() {
    let cluster = PgCluster::start();
    let rt = rt();
    let mut o = observer(cluster.node1());
    assert!(matches!(observe(&rt, &mut o).view, PgView::Known { .. }));
    // Kill our backend: the persistent connection drops under us.
    let killed = cluster.node1().psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'vip-arbiter-test'");
    assert_eq!(killed, "1", "our one persistent connection");
    let after = observe(&rt, &mut o);
    let view = if matches!(after.view, PgView::Unknown(_)) {
        std::thread::sleep(Duration::from_millis(300));
        observe(&rt, &mut o).view
    } else {
        after.view
    };
    assert!(
        matches!(view, PgView::Known { .. }),
        "reconnected after the backend was killed: {view:?}"
    );
    // Server down: unknown with the reason; back up: known again.
    cluster.node1().stop_fast();
    match observe(&rt, &mut o).view {
        PgView::Unknown(reason) => assert!(
            reason.contains("connect") || reason.contains("closed"),
            "{reason}"
        ),
        other => panic!("expected unknown, got {other:?}"),
    }
    cluster.node1().start();
    let mut known = false;
    for _ in 0..40 {
        if matches!(observe(&rt, &mut o).view, PgView::Known { .. }) {
            known = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        known,
        "observer reconnected after a restart (bounded backoff)"
    );
}

#[test]
fn unregistered_or_missing_metadata_is_not_eligible() {
    let cluster = PgCluster::start();
    let rt = rt();
    let node = cluster.node1();
    let mut cfg = tokio_postgres::Config::from_str(&node.conninfo()).expect("conninfo");
    let mut wrong_id = PgObserver::new(cfg.clone(), 9);
    assert_eq!(
        observe(&rt, &mut wrong_id).view,
        PgView::Known {
            role: PgRole::Primary { timeline: 1 },
            repmgr: RepmgrSays::NotRegistered
        }
    );
    cfg.dbname("postgres");
    let mut no_repmgr = PgObserver::new(cfg, 1);
    assert_eq!(
        observe(&rt, &mut no_repmgr).view,
        PgView::Known {
            role: PgRole::Primary { timeline: 1 },
            repmgr: RepmgrSays::NoMetadata
        }
    );
}

/// Our own sessions on `node` (by application name): (all, active ones, waiting on a lock).
fn our_sessions(node: &PgNode, app: &str) -> (u32, u32, u32) {
    let out = node.psql(&format!(
        "SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'active') || ' ' || \
         count(*) FILTER (WHERE wait_event_type = 'Lock') \
         FROM pg_stat_activity WHERE application_name = '{app}'"
    ));
    let n: Vec<u32> = out
        .split_whitespace()
        .map(|v| v.parse().expect("count"))
        .collect();
    (n[0], n[1], n[2])
}

/// Another session holding `repmgr.nodes` in ACCESS EXCLUSIVE mode in an open
/// transaction; ended (the backend terminated) on drop.
struct LockHolder<'a> {
    /// The server it holds the lock on outlives it.
    _node: &'a PgNode,
    /// Owns the psql holding the lock, and terminates its backend first.
    _reaper: Reaper,
}

impl<'a> LockHolder<'a> {
    fn take(node: &'a PgNode) -> LockHolder<'a> {
        let child = node
            .command(&format!("{PG_BINDIR}/psql"))
            .args(["-XAtq", "-h", path_str(&node.socket_dir())])
            .args([
                "-p",
                &node.port().to_string(),
                "-U",
                "postgres",
                "-d",
                "repmgr",
            ])
            .args([
                "-c",
                "SET application_name = 'lock-holder'; BEGIN; \
                 LOCK TABLE repmgr.nodes IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql holding the lock");
        let mut reaper = Reaper::new();
        reaper.own(child);
        let server = node.clone();
        reaper.then(move || {
            let _ = server.try_psql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lock-holder'",
            );
        });
        let holder = LockHolder {
            _node: node,
            _reaper: reaper,
        };
        wait_until(Duration::from_secs(10), "the lock to be held", || {
            node.psql(
                "SELECT count(*) FROM pg_locks WHERE relation = 'repmgr.nodes'::regclass \
                 AND mode = 'AccessExclusiveLock' AND granted",
            ) == "1"
        });
        holder
    }
}

/// Poll `cond` for up to 3 s while driving the runtime: the cancel request and the
/// dropped connection's close run in tasks, as they do in the daemon.
fn driving(rt: &tokio::runtime::Runtime, what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "timed out waiting for {what}"
        );
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    }
}

fn observer_named(node: &PgNode, app: &str) -> PgObserver {
    let mut cfg = tokio_postgres::Config::from_str(&node.conninfo()).expect("conninfo");
    cfg.application_name(app);
    PgObserver::new(cfg, i32::try_from(node.node_id()).expect("node id"))
}

#[test]
fn session_timeouts_are_set_follow_a_reload_and_the_system_id_is_read() {
    let cluster = PgCluster::start();
    let rt = rt();
    let mut o = observer(cluster.node1());
    let r = observe(&rt, &mut o);
    assert!(matches!(r.view, PgView::Known { .. }), "{r:?}");
    // The default pg_timeout, 2 s: 80 % and 70 % on the server.
    assert_eq!(
        rt.block_on(o.show("statement_timeout")).as_deref(),
        Some("1600ms")
    );
    assert_eq!(
        rt.block_on(o.show("lock_timeout")).as_deref(),
        Some("1400ms")
    );
    let want: u64 = cluster
        .node1()
        .psql("SELECT system_identifier FROM pg_control_system()")
        .parse()
        .expect("system_identifier");
    assert_eq!(r.system_id, Some(want));
    // The standby was cloned from the primary: the same system.
    let mut o2 = observer(cluster.node2());
    assert_eq!(observe(&rt, &mut o2).system_id, Some(want));

    // A reload: the next observe sets the new values on the same connection.
    let pid = cluster
        .node1()
        .psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'vip-arbiter-test'");
    o.timeouts().set_pg_timeout(Duration::from_secs(1));
    assert!(matches!(observe(&rt, &mut o).view, PgView::Known { .. }));
    assert_eq!(
        rt.block_on(o.show("statement_timeout")).as_deref(),
        Some("800ms")
    );
    assert_eq!(
        rt.block_on(o.show("lock_timeout")).as_deref(),
        Some("700ms")
    );
    assert_eq!(
        cluster
            .node1()
            .psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'vip-arbiter-test'"),
        pid,
        "same connection"
    );
    // The floor: never below 100 ms.
    o.timeouts().set_pg_timeout(Duration::from_millis(100));
    let _ = observe(&rt, &mut o);
    let _ = observe(&rt, &mut o);
    assert_eq!(
        rt.block_on(o.show("lock_timeout")).as_deref(),
        Some("100ms")
    );
    assert_eq!(rt.block_on(o.show("no such; DROP")), None);
}

#[test]
fn a_query_blocked_behind_a_lock_ends_within_pg_timeout_and_leaves_nothing_on_the_server() {
    let cluster = PgCluster::start();
    let node = cluster.node1();
    let rt = rt();
    let app = "va-lock-test";
    let pg_timeout = Duration::from_secs(1);
    let mut o = observer_named(node, app).with_timeouts(PgTimeouts::for_pg_timeout(pg_timeout));
    assert!(matches!(observe(&rt, &mut o).view, PgView::Known { .. }));
    let lock = LockHolder::take(node);
    // What gather_local does: the observe under pg_timeout.
    let gather = |o: &mut PgObserver, limit: Duration| {
        let started = Instant::now();
        let r = rt.block_on(bounded(limit, o.observe(), |why| PgReport {
            view: PgView::Unknown(format!("gather_local: {why}")),
            repmgr_primary: None,
            system_id: None,
            known_nodes: None,
            replication: None,
        }));
        (r, started.elapsed())
    };

    // 1. The usual timeouts: the server ends the wait (lock_timeout, 700 ms).
    let (r, took) = gather(&mut o, pg_timeout);
    match &r.view {
        PgView::Unknown(why) => assert!(why.contains("55P03"), "lock timeout: {why}"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(took < pg_timeout, "{took:?}");
    driving(&rt, "our session gone", || {
        our_sessions(node, app) == (0, 0, 0)
    });

    // 2. Server timeouts above our deadline: our deadline (900 ms) ends it, and the
    // cancel reaches the backend, which would otherwise wait on the lock for 30 s
    // without noticing that its client went away.
    o.timeouts().set(PgTimeouts {
        deadline: pg_timeout * 9 / 10,
        statement: Duration::from_secs(30),
        lock: Duration::from_secs(30),
    });
    let (r, took) = gather(&mut o, pg_timeout);
    match &r.view {
        PgView::Unknown(why) => {
            assert!(why.contains("no answer within 900 ms"), "{why}");
            assert!(!why.starts_with("gather_local"), "{why}");
        }
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(took < pg_timeout, "{took:?}");
    driving(&rt, "the cancelled session gone", || {
        our_sessions(node, app) == (0, 0, 0)
    });

    // 3. The caller gives up first and drops the observe (a shorter bound than ours):
    // the query is still cancelled on the server.
    let (r, _) = gather(&mut o, Duration::from_millis(300));
    match &r.view {
        PgView::Unknown(why) => assert!(why.starts_with("gather_local"), "{why}"),
        other => panic!("expected unknown, got {other:?}"),
    }
    driving(&rt, "no query of ours running or waiting", || {
        let (_, active, waiting) = our_sessions(node, app);
        active == 0 && waiting == 0
    });
    assert_eq!(
        node.psql("SELECT count(*) FROM pg_locks WHERE relation = 'repmgr.nodes'::regclass AND NOT granted"),
        "0",
        "nobody waits on the lock"
    );
    drop(lock);
    // The abandoned connection is replaced; one session of ours, known again.
    o.timeouts().set_pg_timeout(pg_timeout);
    assert!(matches!(observe(&rt, &mut o).view, PgView::Known { .. }));
    assert_eq!(our_sessions(node, app), (1, 0, 0));
}

#[test]
fn a_rotated_password_is_used_at_the_next_reconnect() {
    let cluster = PgCluster::start();
    let node = cluster.node1();
    let rt = rt();
    let role = "va_rotating";
    node.psql_db(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 'first-Pw1'"),
    );
    let hba = node.data_dir().join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    write_postgres_file(&hba, &format!("local all {role} scram-sha-256\n{old}"));
    node.psql_db("postgres", "SELECT pg_reload_conf()");

    let dir = tempfile::tempdir().expect("tempdir");
    let pgpass = dir.path().join("pgpass");
    let write_pgpass = |pw: &str| {
        std::fs::write(&pgpass, format!("*:*:*:{role}:{pw}\n")).expect("write pgpass");
        std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod pgpass");
    };
    write_pgpass("first-Pw1");
    let toml = dir.path().join("va.toml");
    std::fs::write(
        &toml,
        format!(
            "vip = \"10.77.0.100\"\ninterface = \"ens5\"\nnode_id = 1\n\
             conninfo = \"host={} port={} user={role} dbname=repmgr\"\n",
            node.socket_dir().display(),
            node.port()
        ),
    )
    .expect("write config");
    // As the daemon loads it: no PGPASSWORD, this password file.
    let s = vip_arbiter::config::load_from(Some(&toml), Vec::new(), Some(pgpass.clone()))
        .expect("settings");
    assert!(s.pg.passfile.is_some(), "the password comes from the file");
    let mut o = PgObserver::from_settings(
        s.pg.clone(),
        s.node_id,
        PgTimeouts::for_pg_timeout(s.pg_timeout),
    );
    let r = observe(&rt, &mut o);
    assert!(matches!(r.view, PgView::Known { .. }), "{r:?}");

    let kill = || {
        node.psql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = '{role}'"
        ))
    };
    let observe_until_known = |o: &mut PgObserver| {
        let mut last = None;
        for _ in 0..20 {
            let r = observe(&rt, o);
            if matches!(r.view, PgView::Known { .. }) {
                return Ok(());
            }
            last = Some(r.view);
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(last)
    };

    // Rotated on the server only: the reconnect, with the file's old password, fails.
    node.psql_db(
        "postgres",
        &format!("ALTER ROLE {role} PASSWORD 'second-Pw2'"),
    );
    assert_eq!(kill(), "1");
    match observe_until_known(&mut o) {
        Err(Some(PgView::Unknown(why))) => assert!(why.contains("28P01"), "{why}"),
        other => panic!("the old password still logs in? {other:?}"),
    }
    // And in the file: the next reconnect reads it, no restart.
    write_pgpass("second-Pw2");
    observe_until_known(&mut o).expect("reconnected with the new password");
    // Once more, with the connection killed under a live observer.
    node.psql_db(
        "postgres",
        &format!("ALTER ROLE {role} PASSWORD 'third-Pw3'"),
    );
    write_pgpass("third-Pw3");
    assert_eq!(kill(), "1");
    observe_until_known(&mut o).expect("reconnected with the third password");
}
