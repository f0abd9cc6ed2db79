//! The PostgreSQL observer against real PostgreSQL 15 + repmgr (a primary and a
//! streaming standby made by the harness): role, timeline, repmgr's view, and the
//! persistent connection's loss and reconnect, and a password rotated on the server
//! and in the password file while the observer runs.

mod support;

use support::testbed::rt;

use std::str::FromStr;
use std::time::Duration;

use support::pg_cluster::{PgCluster, PgNode, write_postgres_file};
use vip_arbiter::adapters::postgres::PgObserver;
use vip_arbiter::observation::{PgRole, PgView, RepmgrSays};
use vip_arbiter::observe::{PgReport, PgSource};

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
    let r2 = observe(&rt, &mut o2);
    assert_eq!(
        r2.view,
        PgView::Known {
            role: PgRole::Standby,
            repmgr: RepmgrSays::SelfNotPrimary
        }
    );
    assert_eq!(r2.repmgr_primary, Some(1));

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
    let s = vip_arbiter::settings::load_from(Some(&toml), Vec::new(), Some(pgpass.clone()))
        .expect("settings");
    assert!(s.pg.passfile.is_some(), "the password comes from the file");
    let mut o = PgObserver::from_settings(s.pg.clone(), s.node_id);
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
