//! The other nodes' PostgreSQL, asked once (issue 18, sequence 10): is the server
//! behind the VIP's holder a standby of this cluster, and is every other data node
//! one too? One short-lived connection each, all at once, with the local conninfo's
//! credentials (`PgSettings::peer_config`); every failure is an answer
//! (`PeerAnswer::Unreachable`), never an error.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::join_all;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::postgres::{describe, system_id_from_text};
use crate::config::conninfo::PgSettings;
use crate::core::observation::{ClusterAnswer, PeerAnswer};

const RECOVERY_SQL: &str = "SELECT pg_is_in_recovery()";
const SYSTEM_ID_SQL: &str = "SELECT system_identifier FROM pg_control_system()";
/// The newest timeline a standby shows: its WAL receiver's (visible to superusers and
/// `pg_read_all_stats`), else its last restartpoint's. NULL when it may not say.
const TIMELINE_SQL: &str = "SELECT GREATEST((SELECT received_tli FROM pg_stat_wal_receiver), \
     (SELECT timeline_id FROM pg_control_checkpoint()))";

/// The other data nodes as `repmgr.nodes` lists them: (node id, conninfo).
pub fn peers_sql(node_id: i32) -> String {
    format!(
        "SELECT node_id, conninfo FROM repmgr.nodes \
         WHERE node_id <> {node_id} AND type <> 'witness' ORDER BY node_id"
    )
}

/// Ask the holder's server at `holder` and every peer, all within `limit`. A peer
/// whose conninfo host is `holder` is asked once, as the holder.
pub async fn ask_cluster(
    settings: &PgSettings,
    peers: Result<Vec<(i32, String)>, String>,
    holder: Ipv4Addr,
    limit: Duration,
) -> ClusterAnswer {
    let holder_host = holder.to_string();
    let peers = match peers {
        Ok(p) => p,
        Err(why) => {
            let holder = ask(settings, &holder_host, None, limit).await;
            let others = vec![("repmgr.nodes".to_owned(), PeerAnswer::Unreachable(why))];
            return ClusterAnswer { holder, others };
        }
    };
    let mut targets: Vec<(String, Target)> = peers
        .iter()
        .map(|(id, conninfo)| (format!("node {id}"), tcp_target(conninfo)))
        .collect();
    let holder_at = targets
        .iter()
        .position(|(_, t)| t.as_ref().is_ok_and(|(h, _)| *h == holder_host));
    if holder_at.is_none() {
        targets.push(("the holder".to_owned(), Ok((holder_host.clone(), None))));
    }
    let asked = join_all(targets.iter().map(|(_, t)| async move {
        match t {
            Ok((host, port)) => ask(settings, host, *port, limit).await,
            Err(why) => PeerAnswer::Unreachable(why.clone()),
        }
    }))
    .await;
    let mut named: Vec<(String, PeerAnswer)> = targets
        .into_iter()
        .zip(asked)
        .map(|((name, t), a)| match t {
            Ok((host, _)) => (format!("{name} at {host}"), a),
            Err(_) => (name, a),
        })
        .collect();
    let holder_index = holder_at.unwrap_or(named.len() - 1);
    let (_, holder) = named.remove(holder_index);
    ClusterAnswer {
        holder,
        others: named,
    }
}

/// A peer's host and port, or why it cannot be reached.
type Target = Result<(String, Option<u16>), String>;

/// The first TCP host (and port) of a peer's conninfo.
fn tcp_target(conninfo: &str) -> Target {
    let cfg = tokio_postgres::Config::from_str(conninfo)
        .map_err(|_| "its repmgr.nodes conninfo does not parse".to_owned())?;
    match cfg.get_hosts().first() {
        Some(Host::Tcp(h)) => Ok((h.clone(), cfg.get_ports().first().copied())),
        _ => Err("its repmgr.nodes conninfo has no TCP host".to_owned()),
    }
}

/// Ask the PostgreSQL at `host`, all of it within `limit`.
pub async fn ask(
    settings: &PgSettings,
    host: &str,
    port: Option<u16>,
    limit: Duration,
) -> PeerAnswer {
    let config = settings.peer_config(host, port, limit);
    let asked = async {
        let (client, conn) = config
            .connect(NoTls)
            .await
            .map_err(|e| format!("connect: {}", describe(&e)))?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let answer = questions(&client).await;
        task.abort();
        answer
    };
    match tokio::time::timeout(limit, asked).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(reason)) => PeerAnswer::Unreachable(reason),
        Err(_) => PeerAnswer::Unreachable(format!("no answer within {} ms", limit.as_millis())),
    }
}

async fn questions(client: &Client) -> Result<PeerAnswer, String> {
    let first = |msgs: Vec<SimpleQueryMessage>| {
        msgs.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
            _ => None,
        })
    };
    let in_recovery = match client.simple_query(RECOVERY_SQL).await {
        Ok(msgs) => match first(msgs).flatten().as_deref() {
            Some("t") => true,
            Some("f") => false,
            other => return Err(format!("pg_is_in_recovery() answered {other:?}")),
        },
        Err(e) => return Err(describe(&e)),
    };
    // Either may be refused (permissions): an unknown, not a failure.
    let optional = |sql: &'static str| async move {
        client
            .simple_query(sql)
            .await
            .ok()
            .and_then(|msgs| first(msgs).flatten())
    };
    let system_id = optional(SYSTEM_ID_SQL)
        .await
        .and_then(|t| system_id_from_text(&t));
    let timeline = optional(TIMELINE_SQL)
        .await
        .and_then(|t| t.parse::<u32>().ok());
    Ok(PeerAnswer::Answered {
        in_recovery,
        system_id,
        timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_reached_at_its_conninfos_first_tcp_host() {
        assert_eq!(
            tcp_target("host=10.0.0.3 port=5433 user=repmgr dbname=repmgr"),
            Ok(("10.0.0.3".into(), Some(5433)))
        );
        assert_eq!(
            tcp_target("host=db3.example user=repmgr"),
            Ok(("db3.example".into(), None))
        );
        assert!(tcp_target("host=/var/run/postgresql user=repmgr").is_err());
        assert!(tcp_target("user=repmgr").is_err());
        assert!(tcp_target("host='unterminated").is_err());
    }
}
