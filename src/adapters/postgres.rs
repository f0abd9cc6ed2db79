//! Local PostgreSQL over ONE persistent tokio-postgres connection: recovery state,
//! timeline and this node's view of `repmgr.nodes`. Owns reconnecting (with
//! backoff) when the connection drops.
//!
//! Session hardening:
//! * Right after connecting, the session gets `statement_timeout` (80 % of
//!   `pg_timeout`) and `lock_timeout` (70 %; each at least 100 ms) with one `SET`
//!   round trip, not as startup options: it also works through a pooler that refuses
//!   `options`, and a reloaded `pg_timeout` is applied with another `SET` on the same
//!   connection. The server then ends a query stuck on a lock or a slow plan by itself.
//! * The observer bounds each `observe()` itself (`PgTimeouts::deadline`: 90 % of
//!   `pg_timeout`, inside `gather_local`'s own bound). A query in flight when that
//!   deadline passes, or when the `observe()` future is dropped by its caller (a
//!   dropped future runs no code, but its locals' `Drop` does), is cancelled on the
//!   server (`CancelToken::cancel_query`, a separate connection, in a spawned task) and
//!   the connection is dropped: a backend blocked on a lock does not notice its client
//!   going away, only a cancel reaches it.
//! * Each new connection reads the password source again (`PgSettings::connect_config`:
//!   the password file, when that is where the password comes from), so a rotated
//!   password is used at the next reconnect.
//! * Each new connection reads `system_identifier` once (`pg_control_system()`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::{CancelToken, Client, NoTls, SimpleQueryMessage};
use tracing::{debug, warn};

use crate::config::conninfo::PgSettings;
use crate::core::backoff::Backoff;
use crate::core::observation::{ClusterAnswer, PgRole, PgView, RepmgrSays};
use crate::pass::jitter;
use crate::pass::observe::{PgReport, PgSource, Replication};

/// Reconnect schedule: 250 ms, 500 ms, 1 s, 2 s, 2 s, ... (before jitter). Short,
/// because `pg_unknown_hold` (10 s by default) runs while we are disconnected.
const RECONNECT: Backoff = Backoff {
    base: Duration::from_millis(250),
    max: Duration::from_secs(2),
};

/// How long a cancel request may take (it runs in the background, never in a pass).
const CANCEL_LIMIT: Duration = Duration::from_secs(5);

/// The floor of the session's `statement_timeout` / `lock_timeout`.
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_millis(100);

const ROLE_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END, \
     to_regclass('repmgr.nodes') IS NOT NULL, \
     (SELECT status FROM pg_stat_wal_receiver), \
     pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint, \
     CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
     ELSE (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint END";

const SYSTEM_ID_SQL: &str = "SELECT system_identifier FROM pg_control_system()";

/// The observer's two bounds, both derived from `pg_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTimeouts {
    /// The observer's own bound on one `observe()` (connect and queries). Below
    /// `pg_timeout`, so the observer, not `gather_local`'s timeout, is what ends a
    /// slow observation, and it cancels the server's query when it does.
    pub deadline: Duration,
    /// `statement_timeout` of the session. Below `deadline`, so a slow query
    /// normally ends on the server first, with its SQLSTATE (57014).
    pub statement: Duration,
    /// `lock_timeout` of the session, below `statement`, so a query waiting on a
    /// lock ends as such (55P03, "lock timeout"): someone holds a lock we need.
    pub lock: Duration,
}

impl PgTimeouts {
    /// `deadline` 90 %, `statement` 80 % and `lock` 70 % of `pg_timeout`, the last two
    /// at least 100 ms: for the default 2 s, 1.8 s, 1.6 s and 1.4 s.
    pub fn for_pg_timeout(pg_timeout: Duration) -> Self {
        PgTimeouts {
            deadline: pg_timeout * 9 / 10,
            statement: (pg_timeout * 8 / 10).max(MIN_SESSION_TIMEOUT),
            lock: (pg_timeout * 7 / 10).max(MIN_SESSION_TIMEOUT),
        }
    }
}

/// The observer's timeouts, shared with whoever may change them (SIGHUP reload).
#[derive(Debug, Clone)]
pub struct TimeoutsHandle(Arc<Mutex<PgTimeouts>>);

impl TimeoutsHandle {
    pub fn get(&self) -> PgTimeouts {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set(&self, t: PgTimeouts) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = t;
    }

    pub fn set_pg_timeout(&self, pg_timeout: Duration) {
        self.set(PgTimeouts::for_pg_timeout(pg_timeout));
    }
}

/// One open connection and what we learnt when opening it.
struct Session {
    client: Client,
    task: JoinHandle<()>,
    /// The (`statement_timeout`, `lock_timeout`) this session was given.
    session_timeouts: (Duration, Duration),
    system_id: Option<u64>,
    system_id_read: bool,
}

pub struct PgObserver {
    settings: PgSettings,
    node_id: i32,
    timeouts: TimeoutsHandle,
    session: Option<Session>,
    /// Set when a query was abandoned mid-flight (its future dropped): the
    /// connection it ran on is dropped before the next query.
    abandoned: Arc<AtomicBool>,
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: String,
    /// The last password-file warning logged, so it is logged once per change.
    passfile_warning: Option<String>,
}

impl PgObserver {
    /// Does not connect yet; the first `observe()` does. Fixed config (no password
    /// file), timeouts for the default `pg_timeout` (2 s).
    pub fn new(config: tokio_postgres::Config, node_id: i32) -> Self {
        Self::from_settings(
            PgSettings::fixed(config),
            node_id,
            PgTimeouts::for_pg_timeout(Duration::from_secs(2)),
        )
    }

    /// As the daemon builds it: the password file (if that is the password's
    /// source) is read again at every connect.
    pub fn from_settings(settings: PgSettings, node_id: i32, timeouts: PgTimeouts) -> Self {
        PgObserver {
            settings,
            node_id,
            timeouts: TimeoutsHandle(Arc::new(Mutex::new(timeouts))),
            session: None,
            abandoned: Arc::new(AtomicBool::new(false)),
            failures: 0,
            next_attempt: None,
            last_error: String::new(),
            passfile_warning: None,
        }
    }

    /// Other timeouts (tests: a session timeout above the deadline, so the deadline
    /// and the cancel are what end a blocked query).
    #[must_use]
    pub fn with_timeouts(self, timeouts: PgTimeouts) -> Self {
        self.timeouts.set(timeouts);
        self
    }

    /// The handle that changes this observer's timeouts (taken at the next observe).
    pub fn timeouts(&self) -> TimeoutsHandle {
        self.timeouts.clone()
    }

    /// `SHOW name` on the current connection (diagnostics and tests); None when not
    /// connected, on an error, or for a name that is not a plain setting name.
    pub async fn show(&self, name: &str) -> Option<String> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return None;
        }
        let s = self.session.as_ref()?;
        let rows = rows_of(
            run(&s.client, &format!("SHOW {name}"), &self.abandoned)
                .await
                .ok()?,
        );
        rows.first()?.first()?.clone()
    }

    /// Connect (under the reconnect backoff) and bring the session's timeouts up to
    /// date.
    async fn session(&mut self, t: PgTimeouts) -> Result<&Session, String> {
        if self.abandoned.swap(false, Ordering::SeqCst) {
            self.drop_connection("an earlier query was abandoned");
        }
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            self.drop_connection("connection closed");
        }
        if self.session.is_none() {
            if let Some(at) = self.next_attempt
                && Instant::now() < at
            {
                // Same text as the failure itself, so the verdict does not flicker.
                return Err(format!("connect: {}", self.last_error));
            }
            let (config, warning) = self.settings.connect_config();
            if warning != self.passfile_warning {
                if let Some(w) = &warning {
                    warn!(warning = %w, "password file: {w}");
                }
                self.passfile_warning = warning;
            }
            match config.connect(NoTls).await {
                Ok((client, conn)) => {
                    let task = tokio::spawn(async move {
                        // Ends when the server goes away; `is_closed()` then reports it.
                        let _ = conn.await;
                    });
                    self.session = Some(Session {
                        client,
                        task,
                        session_timeouts: (Duration::ZERO, Duration::ZERO),
                        system_id: None,
                        system_id_read: false,
                    });
                    self.failures = 0;
                    self.next_attempt = None;
                }
                Err(e) => {
                    self.failures = self.failures.saturating_add(1);
                    self.next_attempt =
                        Some(Instant::now() + RECONNECT.delay(self.failures, jitter()));
                    self.last_error = describe(&e);
                    return Err(format!("connect: {}", self.last_error));
                }
            }
        }
        let s = self.session.as_mut().ok_or("not connected")?;
        if s.session_timeouts != (t.statement, t.lock) {
            let sql = format!(
                "SET statement_timeout = {}; SET lock_timeout = {}",
                t.statement.as_millis(),
                t.lock.as_millis()
            );
            run(&s.client, &sql, &self.abandoned)
                .await
                .map_err(|e| format!("setting the session's timeouts: {}", describe(&e)))?;
            s.session_timeouts = (t.statement, t.lock);
        }
        if !s.system_id_read {
            // Once per connection; a server that refuses it (permissions) is no failure.
            s.system_id = match run(&s.client, SYSTEM_ID_SQL, &self.abandoned).await {
                Ok(msgs) => system_id_of(&rows_of(msgs)),
                Err(e) => {
                    debug!(error = %describe(&e), "cannot read system_identifier");
                    None
                }
            };
            s.system_id_read = true;
        }
        self.session
            .as_ref()
            .ok_or_else(|| "not connected".to_owned())
    }

    fn drop_connection(&mut self, why: &str) {
        if let Some(s) = self.session.take() {
            s.task.abort();
        }
        self.last_error = why.to_owned();
    }

    async fn query(&mut self, t: PgTimeouts) -> Result<PgReport, String> {
        let node_id = self.node_id;
        let abandoned = self.abandoned.clone();
        let session = self.session(t).await?;
        let (client, system_id) = (&session.client, session.system_id);
        let rows = rows_of(
            run(client, ROLE_SQL, &abandoned)
                .await
                .map_err(|e| describe(&e))?,
        );
        let [row] = rows.as_slice() else {
            return Err(format!("role query returned {} rows", rows.len()));
        };
        let in_recovery = parse_bool(row.first())?;
        // For the TCP endpoint's /replica (health::roles): columns 3-5 of ROLE_SQL.
        let number = |i: usize| {
            row.get(i)
                .and_then(|v| v.as_deref())
                .and_then(|v| v.parse::<i64>().ok())
                .map(|n| u64::try_from(n).unwrap_or(0))
        };
        let mut replication = in_recovery.then(|| Replication {
            receiver: row.get(3).cloned().flatten(),
            upstream: None,
            lag_bytes: number(4),
            lag_ms: number(5),
        });
        let role = if in_recovery {
            PgRole::Standby
        } else {
            PgRole::Primary {
                timeline: timeline_of(row.get(1).and_then(|v| v.as_deref()))?,
            }
        };
        if !parse_bool(row.get(2))? {
            return Ok(PgReport {
                view: PgView::Known {
                    role,
                    repmgr: RepmgrSays::NoMetadata,
                },
                repmgr_primary: None,
                system_id,
                known_nodes: None,
                replication,
            });
        }
        let sql =
            "SELECT node_id, type, active, upstream_node_id FROM repmgr.nodes ORDER BY node_id";
        let rows = rows_of(
            run(client, sql, &abandoned)
                .await
                .map_err(|e| describe(&e))?,
        );
        let nodes = rows
            .iter()
            .map(|r| parse_node(r))
            .collect::<Result<Vec<_>, _>>()?;
        let repmgr_primary = nodes.iter().find(|n| n.primary && n.active).map(|n| n.id);
        if let Some(r) = replication.as_mut() {
            let own = rows
                .iter()
                .find(|row| parse_node(row).is_ok_and(|n| n.id == node_id));
            r.upstream = own
                .and_then(|row| row.get(3).cloned().flatten())
                .and_then(|v| v.parse().ok());
        }
        Ok(PgReport {
            view: PgView::Known {
                role,
                repmgr: repmgr_says(&nodes, node_id),
            },
            repmgr_primary,
            system_id,
            known_nodes: Some(nodes.iter().map(|n| n.id).collect()),
            replication,
        })
    }
}

impl PgSource for PgObserver {
    /// The peers from this node's `repmgr.nodes` (on the session), then short-lived
    /// connections of their own (`adapters::peer`), never the session's.
    async fn ask_cluster(&mut self, holder: std::net::Ipv4Addr) -> ClusterAnswer {
        let t = self.timeouts.get();
        let abandoned = self.abandoned.clone();
        let sql = super::peer::peers_sql(self.node_id);
        let peers = match self.session(t).await {
            Ok(s) => match run(&s.client, &sql, &abandoned).await {
                Ok(msgs) => Ok(rows_of(msgs)
                    .into_iter()
                    .filter_map(|r| {
                        let id = r.first()?.as_deref()?.parse().ok()?;
                        Some((id, r.get(1)?.clone()?))
                    })
                    .collect()),
                Err(e) => Err(format!("reading repmgr.nodes: {}", describe(&e))),
            },
            Err(e) => Err(format!("reading repmgr.nodes: {e}")),
        };
        super::peer::ask_cluster(&self.settings, peers, holder, t.deadline).await
    }

    async fn observe(&mut self) -> PgReport {
        let t = self.timeouts.get();
        let result = match tokio::time::timeout(t.deadline, self.query(t)).await {
            Ok(r) => r,
            // The query's guard has sent the cancel; the connection goes below.
            Err(_) => Err(format!(
                "no answer within {} ms (query cancelled on the server)",
                t.deadline.as_millis()
            )),
        };
        match result {
            Ok(report) => report,
            Err(reason) => {
                // A failed query on a live connection may mean a wedged session: start over.
                self.abandoned.store(false, Ordering::SeqCst);
                if self.session.is_some() {
                    self.drop_connection(&reason);
                }
                PgReport {
                    view: PgView::Unknown(reason),
                    repmgr_primary: None,
                    system_id: None,
                    known_nodes: None,
                    replication: None,
                }
            }
        }
    }
}

/// One simple query, cancelled on the server if its future is dropped before the
/// answer (our deadline, or the caller's timeout, ran out).
async fn run(
    client: &Client,
    sql: &str,
    abandoned: &Arc<AtomicBool>,
) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
    let guard = CancelOnDrop {
        token: Some(client.cancel_token()),
        abandoned: abandoned.clone(),
    };
    let r = client.simple_query(sql).await;
    guard.disarm();
    r
}

/// Armed while a query is in flight; dropped armed, it marks the connection
/// abandoned and sends the server a cancel request from a spawned task (so neither a
/// dropped caller nor a wedged server holds up the pass).
struct CancelOnDrop {
    token: Option<CancelToken>,
    abandoned: Arc<AtomicBool>,
}

impl CancelOnDrop {
    fn disarm(mut self) {
        self.token = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        self.abandoned.store(true, Ordering::SeqCst);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            match tokio::time::timeout(CANCEL_LIMIT, token.cancel_query(NoTls)).await {
                Ok(Ok(())) => debug!("cancel request sent for an abandoned query"),
                Ok(Err(e)) => warn!(error = %describe(&e), "cannot cancel an abandoned query"),
                Err(_) => warn!(
                    "cannot cancel an abandoned query: no answer within {} s",
                    CANCEL_LIMIT.as_secs()
                ),
            }
        });
    }
}

/// `system_identifier` is a bigint in SQL; the control file's value is unsigned, so
/// a negative text is the same 64 bits (what pg_controldata prints).
pub fn system_id_of(rows: &[Vec<Option<String>>]) -> Option<u64> {
    system_id_from_text(rows.first()?.first()?.as_deref()?)
}

/// One `system_identifier` as text: unsigned, or the same 64 bits of a negative bigint.
pub(crate) fn system_id_from_text(text: &str) -> Option<u64> {
    text.parse::<u64>()
        .ok()
        .or_else(|| text.parse::<i64>().ok().map(|v| v.cast_unsigned()))
}

/// One `repmgr.nodes` row as far as eligibility goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRow {
    pub id: i32,
    pub primary: bool,
    /// `type = 'witness'`: repmgr's witness, a writable server that never holds the VIP.
    pub witness: bool,
    pub active: bool,
}

/// Classify this node's view of the cluster (see `RepmgrSays`).
pub fn repmgr_says(nodes: &[NodeRow], node_id: i32) -> RepmgrSays {
    let Some(me) = nodes.iter().find(|n| n.id == node_id) else {
        return RepmgrSays::NotRegistered;
    };
    if me.witness {
        return RepmgrSays::SelfWitness;
    }
    if !me.primary {
        return RepmgrSays::SelfNotPrimary;
    }
    if !me.active {
        return RepmgrSays::SelfInactive;
    }
    match nodes
        .iter()
        .find(|n| n.id != node_id && n.primary && n.active)
    {
        Some(other) => RepmgrSays::OtherPrimary(other.id),
        None => RepmgrSays::SelfPrimary,
    }
}

/// The timeline is the first 8 hex digits of the current WAL file name.
pub fn timeline_of(walfile: Option<&str>) -> Result<u32, String> {
    let name = walfile.ok_or("primary without a current WAL file")?;
    name.get(..8)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .filter(|tl| *tl > 0)
        .ok_or_else(|| format!("cannot read a timeline from WAL file name {name:?}"))
}

fn rows_of(msgs: Vec<SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

fn parse_bool(v: Option<&Option<String>>) -> Result<bool, String> {
    match v.and_then(|v| v.as_deref()) {
        Some("t") => Ok(true),
        Some("f") => Ok(false),
        other => Err(format!("expected a boolean, got {other:?}")),
    }
}

fn parse_node(r: &[Option<String>]) -> Result<NodeRow, String> {
    let id = r
        .first()
        .and_then(|v| v.as_deref())
        .and_then(|v| v.parse().ok())
        .ok_or("repmgr.nodes row without a node_id")?;
    Ok(NodeRow {
        id,
        primary: r.get(1).and_then(|v| v.as_deref()) == Some("primary"),
        witness: r.get(1).and_then(|v| v.as_deref()) == Some("witness"),
        active: parse_bool(r.get(2))?,
    })
}

/// An error as one line, with the SQLSTATE when the server sent one. Never includes
/// the connection string (and so never a password).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i32, primary: bool, active: bool) -> NodeRow {
        NodeRow {
            id,
            primary,
            witness: false,
            active,
        }
    }

    #[test]
    fn classifies_repmgr_views() {
        assert_eq!(
            repmgr_says(&[row(1, true, true)], 1),
            RepmgrSays::SelfPrimary
        );
        assert_eq!(
            repmgr_says(&[row(2, true, true)], 1),
            RepmgrSays::NotRegistered
        );
        assert_eq!(
            repmgr_says(&[row(1, false, true), row(2, true, true)], 1),
            RepmgrSays::SelfNotPrimary
        );
        assert_eq!(
            repmgr_says(&[row(1, true, false), row(2, true, true)], 1),
            RepmgrSays::SelfInactive
        );
        assert_eq!(
            repmgr_says(&[row(1, true, true), row(2, true, true)], 1),
            RepmgrSays::OtherPrimary(2)
        );
        let witness = NodeRow {
            witness: true,
            ..row(3, false, true)
        };
        assert_eq!(
            repmgr_says(&[row(1, true, true), witness], 3),
            RepmgrSays::SelfWitness
        );
    }

    #[test]
    fn timeouts_sit_below_pg_timeout_with_a_floor() {
        let t = PgTimeouts::for_pg_timeout(Duration::from_secs(2));
        assert_eq!(
            (t.deadline, t.statement, t.lock),
            (
                Duration::from_millis(1800),
                Duration::from_millis(1600),
                Duration::from_millis(1400)
            )
        );
        let t = PgTimeouts::for_pg_timeout(Duration::from_millis(100));
        assert_eq!(t.deadline, Duration::from_millis(90));
        assert_eq!(
            (t.statement, t.lock),
            (MIN_SESSION_TIMEOUT, MIN_SESSION_TIMEOUT)
        );
        let t = PgTimeouts::for_pg_timeout(Duration::from_secs(30));
        assert!(t.lock < t.statement && t.statement < t.deadline);
    }

    #[test]
    fn system_identifier_text_is_read_as_unsigned() {
        let rows = |v: &str| vec![vec![Some(v.to_owned())]];
        assert_eq!(
            system_id_of(&rows("7412345678901234567")),
            Some(7_412_345_678_901_234_567)
        );
        assert_eq!(system_id_of(&rows("-1")), Some(u64::MAX));
        assert_eq!(system_id_of(&rows("x")), None);
        assert_eq!(system_id_of(&[]), None);
        assert_eq!(system_id_of(&[vec![None]]), None);
    }

    #[test]
    fn reads_timeline_from_wal_file_name() {
        assert_eq!(timeline_of(Some("000000030000000000000004")), Ok(3));
        assert_eq!(timeline_of(Some("0000001A0000000000000004")), Ok(26));
        assert!(timeline_of(Some("00000000000000000000000")).is_err());
        assert!(timeline_of(Some("zz")).is_err());
        assert!(timeline_of(None).is_err());
    }
}
