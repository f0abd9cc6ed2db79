//! The role answers: every unknown is a 503, the lag bound in both units.
use super::*;
use crate::health::state::ReplicationState;

const STALE: Duration = Duration::from_secs(15);

fn holding() -> (Snapshot, Duration) {
    let s = Snapshot {
        role: "primary".into(),
        eligible: true,
        verdict: "holding: primary, VIP here".into(),
        verdict_kind: "holding".into(),
        ..Snapshot::default()
    };
    (s, Duration::from_secs(1))
}

fn streaming(lag_bytes: u64, lag_ms: u64) -> (Snapshot, Duration) {
    let s = Snapshot {
        role: "standby".into(),
        verdict: "standby: not the primary; VIP not here".into(),
        verdict_kind: "standby".into(),
        repmgr_primary: Some(1),
        replication: Some(ReplicationState {
            receiver: Some("streaming".into()),
            upstream: Some(1),
            lag_bytes: Some(lag_bytes),
            lag_ms: Some(lag_ms),
        }),
        ..Snapshot::default()
    };
    (s, Duration::from_secs(1))
}

#[test]
fn lag_is_bytes_or_a_duration() {
    assert_eq!(lag_of(""), Ok(None));
    assert_eq!(lag_of("x=1"), Ok(None));
    assert_eq!(lag_of("lag=1048576"), Ok(Some(Lag::Bytes(1 << 20))));
    assert_eq!(lag_of("a=b&lag=16MB"), Ok(Some(Lag::Bytes(16 << 20))));
    assert_eq!(lag_of("lag=16kB"), Ok(Some(Lag::Bytes(16 << 10))));
    assert_eq!(lag_of("lag=1GB"), Ok(Some(Lag::Bytes(1 << 30))));
    assert_eq!(
        lag_of("lag=10s"),
        Ok(Some(Lag::Time(Duration::from_secs(10))))
    );
    assert_eq!(
        lag_of("lag=500ms"),
        Ok(Some(Lag::Time(Duration::from_millis(500))))
    );
    assert_eq!(
        lag_of("lag=2m"),
        Ok(Some(Lag::Time(Duration::from_secs(120))))
    );
    for bad in [
        "lag=", "lag", "lag=MB", "lag=1.5s", "lag=-1", "lag=10 s", "lag=1xB",
    ] {
        assert!(lag_of(bad).is_err(), "{bad}");
    }
}

#[test]
fn primary_only_when_holding_and_eligible_and_fresh() {
    assert!(primary(Some(&holding()), STALE).is_ok());
    let (mut s, age) = holding();
    s.verdict_kind = "holding-untagged".into();
    assert!(primary(Some(&(s, age)), STALE).is_ok(), "the VIP is here");
    for kind in [
        "pg-unknown-holding",
        "cloud-unknown",
        "action-failed",
        "standby",
        "taking-over",
    ] {
        let (mut s, age) = holding();
        s.verdict_kind = kind.into();
        assert!(primary(Some(&(s, age)), STALE).is_err(), "{kind}");
    }
    let (mut s, age) = holding();
    s.eligible = false;
    assert!(primary(Some(&(s, age)), STALE).is_err());
    let (mut s, age) = holding();
    s.role = "unknown".into();
    assert!(primary(Some(&(s, age)), STALE).is_err());
    assert!(primary(None, STALE).unwrap_err().contains("starting"));
    let (s, _) = holding();
    let old = primary(Some(&(s, STALE + Duration::from_millis(1))), STALE);
    assert!(old.unwrap_err().contains("stale after"));
}

#[test]
fn replica_only_when_streaming_from_the_primary_within_the_lag() {
    let r = replica(Some(&streaming(0, 0)), STALE, None);
    assert_eq!(
        r,
        Ok("replica: streaming from node 1, lag 0 bytes, 0 ms".into())
    );
    let lagging = streaming(2 << 20, 12_000);
    assert!(replica(Some(&lagging), STALE, Some(Lag::Bytes(4 << 20))).is_ok());
    assert!(replica(Some(&lagging), STALE, Some(Lag::Bytes(1 << 20))).is_err());
    assert!(
        replica(
            Some(&lagging),
            STALE,
            Some(Lag::Time(Duration::from_secs(13)))
        )
        .is_ok()
    );
    let over = replica(
        Some(&lagging),
        STALE,
        Some(Lag::Time(Duration::from_secs(10))),
    );
    assert!(over.unwrap_err().contains("over the bound"));

    let with = |f: fn(&mut Snapshot)| {
        let (mut s, age) = streaming(0, 0);
        f(&mut s);
        replica(Some(&(s, age)), STALE, Some(Lag::Bytes(1))).unwrap_err()
    };
    assert!(with(|s| s.role = "primary".into()).contains("role primary"));
    assert!(with(|s| s.role = "unknown".into()).contains("role unknown"));
    assert!(with(|s| s.replication = None).contains("unknown"));
    let waiting = with(|s| {
        if let Some(r) = s.replication.as_mut() {
            r.receiver = Some("waiting".into());
        }
    });
    assert!(waiting.contains("WAL receiver waiting"), "{waiting}");
    let hidden = with(|s| {
        if let Some(r) = s.replication.as_mut() {
            r.receiver = None;
        }
    });
    assert!(hidden.contains("pg_read_all_stats"), "{hidden}");
    let cascade = with(|s| {
        if let Some(r) = s.replication.as_mut() {
            r.upstream = Some(3);
        }
    });
    assert!(
        cascade.contains("upstream is node 3, the primary is node 1"),
        "{cascade}"
    );
    assert!(with(|s| s.repmgr_primary = None).contains("no active primary"));
    let unknown_lag = with(|s| {
        if let Some(r) = s.replication.as_mut() {
            r.lag_bytes = None;
        }
    });
    assert!(unknown_lag.contains("unknown bytes"), "{unknown_lag}");
    assert!(replica(None, STALE, None).is_err());
}

#[test]
fn read_only_is_primary_or_replica() {
    assert!(read_only(Some(&holding()), STALE, Some(Lag::Bytes(0))).is_ok());
    assert!(read_only(Some(&streaming(10, 0)), STALE, None).is_ok());
    let both = read_only(Some(&streaming(10, 0)), STALE, Some(Lag::Bytes(1))).unwrap_err();
    assert!(
        both.contains("not the primary") && both.contains("lagging"),
        "{both}"
    );
}
