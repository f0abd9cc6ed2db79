//! Local PostgreSQL over ONE persistent tokio-postgres connection: recovery state,
//! timeline and this node's view of `repmgr.nodes`. Owns reconnecting (with
//! backoff) when the connection drops. Each new connection reads the password
//! source again (`PgSettings::connect_config`: the password file, when that is where
//! the password comes from), so a rotated password is used at the next reconnect.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tracing::warn;

use crate::backoff::Backoff;
use crate::conninfo::PgSettings;
use crate::observation::{PgRole, PgView, RepmgrSays};
use crate::observe::{PgReport, PgSource};

/// Reconnect schedule: 250 ms, 500 ms, 1 s, 2 s, 2 s, ... (before jitter). Short,
/// because `pg_unknown_hold` (10 s by default) runs while we are disconnected.
const RECONNECT: Backoff = Backoff {
    base: Duration::from_millis(250),
    max: Duration::from_secs(2),
};

const ROLE_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END, \
     to_regclass('repmgr.nodes') IS NOT NULL";

pub struct PgObserver {
    settings: PgSettings,
    node_id: i32,
    client: Option<(Client, JoinHandle<()>)>,
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: String,
    /// The last password-file warning logged, so it is logged once per change.
    passfile_warning: Option<String>,
}

impl PgObserver {
    /// Does not connect yet; the first `observe()` does. Fixed config (no password
    /// file).
    pub fn new(config: tokio_postgres::Config, node_id: i32) -> Self {
        Self::from_settings(PgSettings::fixed(config), node_id)
    }

    /// As the daemon builds it: the password file (if that is the password's
    /// source) is read again at every connect.
    pub fn from_settings(settings: PgSettings, node_id: i32) -> Self {
        PgObserver {
            settings,
            node_id,
            client: None,
            failures: 0,
            next_attempt: None,
            last_error: String::new(),
            passfile_warning: None,
        }
    }

    async fn client(&mut self) -> Result<&Client, String> {
        if self.client.as_ref().is_some_and(|(c, _)| c.is_closed()) {
            self.drop_connection("connection closed");
        }
        if self.client.is_none() {
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
                    self.client = Some((client, task));
                    self.failures = 0;
                    self.next_attempt = None;
                }
                Err(e) => {
                    self.failures = self.failures.saturating_add(1);
                    self.next_attempt =
                        Some(Instant::now() + RECONNECT.delay(self.failures, rand_u32()));
                    self.last_error = describe(&e);
                    return Err(format!("connect: {}", self.last_error));
                }
            }
        }
        self.client
            .as_ref()
            .map(|(c, _)| c)
            .ok_or_else(|| "not connected".to_owned())
    }

    fn drop_connection(&mut self, why: &str) {
        if let Some((_, task)) = self.client.take() {
            task.abort();
        }
        self.last_error = why.to_owned();
    }

    async fn query(&mut self) -> Result<PgReport, String> {
        let node_id = self.node_id;
        let client = self.client().await?;
        let rows = rows_of(
            client
                .simple_query(ROLE_SQL)
                .await
                .map_err(|e| describe(&e))?,
        );
        let [row] = rows.as_slice() else {
            return Err(format!("role query returned {} rows", rows.len()));
        };
        let in_recovery = parse_bool(row.first())?;
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
            });
        }
        let sql = format!(
            "SELECT node_id, type, active FROM repmgr.nodes \
             WHERE node_id = {node_id} OR (type = 'primary' AND active) ORDER BY node_id"
        );
        let rows = rows_of(client.simple_query(&sql).await.map_err(|e| describe(&e))?);
        let nodes = rows
            .iter()
            .map(|r| parse_node(r))
            .collect::<Result<Vec<_>, _>>()?;
        let repmgr_primary = nodes.iter().find(|n| n.primary && n.active).map(|n| n.id);
        Ok(PgReport {
            view: PgView::Known {
                role,
                repmgr: repmgr_says(&nodes, node_id),
            },
            repmgr_primary,
        })
    }
}

impl PgSource for PgObserver {
    async fn observe(&mut self) -> PgReport {
        match self.query().await {
            Ok(report) => report,
            Err(reason) => {
                // A failed query on a live connection may mean a wedged session: start over.
                if self.client.is_some() {
                    self.drop_connection(&reason);
                }
                PgReport {
                    view: PgView::Unknown(reason),
                    repmgr_primary: None,
                }
            }
        }
    }
}

/// One `repmgr.nodes` row as far as eligibility goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRow {
    pub id: i32,
    pub primary: bool,
    pub active: bool,
}

/// Classify this node's view of the cluster (see `RepmgrSays`).
pub fn repmgr_says(nodes: &[NodeRow], node_id: i32) -> RepmgrSays {
    let Some(me) = nodes.iter().find(|n| n.id == node_id) else {
        return RepmgrSays::NotRegistered;
    };
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
        active: parse_bool(r.get(2))?,
    })
}

/// An error as one line, with the SQLSTATE when the server sent one. Never includes
/// the connection string (and so never a password).
fn describe(e: &tokio_postgres::Error) -> String {
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

/// Jitter for the reconnect schedule; quality does not matter, spread does.
fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos.wrapping_mul(2_654_435_761)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i32, primary: bool, active: bool) -> NodeRow {
        NodeRow {
            id,
            primary,
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
