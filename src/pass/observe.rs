//! The observer traits, one per external system, and `gather()`, which asks them
//! under a timeout each and turns every failure into an explicit `Unknown`.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::core::observation::{
    CloudView, ClusterAnswer, KernelView, MarkView, PeerAnswer, PgView,
};

/// Local PostgreSQL and its repmgr metadata; and, with the same settings, the other
/// nodes' PostgreSQL (is the VIP's holder a standby, and nobody else a primary?).
pub trait PgSource {
    fn observe(&mut self) -> impl Future<Output = PgReport> + Send;

    /// Ask the PostgreSQL at `holder` (the holder ENI's primary address) and every
    /// other data node in `repmgr.nodes` what each is. Sources that cannot reach
    /// other nodes say so.
    fn ask_cluster(&mut self, holder: Ipv4Addr) -> impl Future<Output = ClusterAnswer> + Send {
        let _ = holder;
        async {
            ClusterAnswer {
                holder: PeerAnswer::Unreachable("this source does not ask other nodes".into()),
                others: vec![],
            }
        }
    }
}

/// What the PostgreSQL observer saw, with the details health reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgReport {
    pub view: PgView,
    /// The active primary according to this node's repmgr.nodes.
    pub repmgr_primary: Option<i32>,
    /// `pg_control_system()`'s `system_identifier`, read once per connection; None
    /// when unknown (not connected, or the server refused to say).
    pub system_id: Option<u64>,
    /// Every node id in this node's `repmgr.nodes`, when read.
    pub known_nodes: Option<Vec<i32>>,
    /// A standby's WAL receiver and lag (None on a primary or when unknown); only
    /// the TCP endpoint's `/replica` uses it, never `decide()`.
    pub replication: Option<Replication>,
}

/// What a standby's PostgreSQL says of its replication, all in one pass's query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replication {
    /// `pg_stat_wal_receiver.status` (`streaming`, `waiting`, ...); None when no WAL
    /// receiver runs, or the role may not see it (it needs `pg_read_all_stats`).
    pub receiver: Option<String>,
    /// This node's `upstream_node_id` in its `repmgr.nodes`.
    pub upstream: Option<i32>,
    /// WAL received but not yet replayed: `pg_last_wal_receive_lsn()` minus
    /// `pg_last_wal_replay_lsn()`, in bytes.
    pub lag_bytes: Option<u64>,
    /// `now() - pg_last_xact_replay_timestamp()` in ms, or 0 when replay has caught
    /// up with what was received (an idle primary sends no new transactions).
    pub lag_ms: Option<u64>,
}

/// The VIP on the configured interface.
pub trait KernelSource {
    fn observe(&self) -> impl Future<Output = KernelView> + Send;
}

/// Which ENI EC2 says holds the VIP, and the subnet's high-water marks.
pub trait CloudSource {
    fn observe(&self) -> impl Future<Output = CloudView> + Send;
    fn marks(&self) -> impl Future<Output = MarkView> + Send;

    /// The primary private address of ENI `eni`, as the last look showed it (no
    /// call of its own); None when unknown.
    fn address_of(&self, eni: &str) -> Option<Ipv4Addr> {
        let _ = eni;
        None
    }

    /// Whether the subnet carried the `vip-arbiter-cluster` tag at the last read of
    /// the marks (no call of its own); None when unknown.
    fn cluster_tagged(&self) -> Option<bool> {
        None
    }
}

/// Run one observer (or, for `act::execute`, one step) under `limit`; a timeout
/// becomes `on_timeout("no answer within N ms")`.
pub async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = T>,
    on_timeout: impl FnOnce(String) -> T,
) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => on_timeout(format!("no answer within {} ms", limit.as_millis())),
    }
}

/// PostgreSQL and the kernel, concurrently, each under its own timeout.
pub async fn gather_local<P: PgSource, K: KernelSource>(
    pg: &mut P,
    kernel: &K,
    limit: Duration,
) -> (PgReport, KernelView) {
    let pg_fut = bounded(limit, pg.observe(), |r| PgReport {
        view: PgView::Unknown(r),
        repmgr_primary: None,
        system_id: None,
        known_nodes: None,
        replication: None,
    });
    let k_fut = bounded(limit, kernel.observe(), KernelView::Unknown);
    tokio::join!(pg_fut, k_fut)
}
