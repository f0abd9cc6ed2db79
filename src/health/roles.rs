//! The TCP endpoint's role answers (Patroni's REST conventions, docs/operations.md
//! "The TCP endpoint"), from the last health snapshot and its age. Pure: each
//! answer is `Ok(what this node is)` (200) or `Err(why not)` (503); every unknown,
//! a snapshot older than the staleness bound included, is an `Err`.

use std::time::Duration;

use crate::health::state::Snapshot;

/// A `?lag=` bound: bytes of WAL received but not replayed, or time since the last
/// replayed transaction's commit (0 when replay has caught up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    Bytes(u64),
    Time(Duration),
}

/// The `lag` parameter of a query (`lag=16MB&x=y`), if any. Bytes are a number
/// with an optional unit `B`, `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1024, as
/// PostgreSQL's memory units and Patroni); a duration needs a unit `ms`, `s`, `m`
/// or `h`. A malformed value is an error (the request is refused 400, never read
/// as "no bound").
pub fn lag_of(query: &str) -> Result<Option<Lag>, String> {
    let Some(value) = query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find_map(|(k, v)| (k == "lag").then_some(v))
    else {
        return Ok(None);
    };
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let bad = || format!("lag={value:?} is not a size (16MB, 1048576) or a duration (10s, 500ms)");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = |shift: u32| Ok(Some(Lag::Bytes(n.saturating_mul(1u64 << shift))));
    let time = |ms: u64| Ok(Some(Lag::Time(Duration::from_millis(n.saturating_mul(ms)))));
    match unit {
        "" | "B" => bytes(0),
        "kB" | "KB" => bytes(10),
        "MB" => bytes(20),
        "GB" => bytes(30),
        "TB" => bytes(40),
        "ms" => time(1),
        "s" => time(1000),
        "m" | "min" => time(60_000),
        "h" => time(3_600_000),
        _ => Err(bad()),
    }
}

/// The snapshot if it is fresh enough to answer from.
fn fresh(s: Option<&(Snapshot, Duration)>, stale_after: Duration) -> Result<&Snapshot, String> {
    match s {
        None => Err("starting: no pass completed yet".into()),
        Some((_, age)) if *age > stale_after => Err(format!(
            "unknown: the last pass ended {} ms ago (stale after {} ms)",
            age.as_millis(),
            stale_after.as_millis()
        )),
        Some((s, _)) => Ok(s),
    }
}

/// `/primary`: this node is eligible and holds the VIP (in its kernel, and at EC2
/// in EC2 mode): the verdict is `holding`, or `holding-untagged` (the VIP is here;
/// only a future claim is at risk).
pub fn primary(s: Option<&(Snapshot, Duration)>, stale_after: Duration) -> Result<String, String> {
    let s = fresh(s, stale_after)?;
    let holding = matches!(s.verdict_kind.as_str(), "holding" | "holding-untagged");
    if holding && s.eligible && s.role == "primary" {
        Ok(format!("primary: {}", s.verdict))
    } else {
        Err(format!("not the primary: {}", s.verdict))
    }
}

/// `/replica`: a standby whose WAL receiver is streaming from the primary this
/// node's `repmgr.nodes` names (its own `upstream_node_id` is that primary), within
/// `lag` when given.
pub fn replica(
    s: Option<&(Snapshot, Duration)>,
    stale_after: Duration,
    lag: Option<Lag>,
) -> Result<String, String> {
    let s = fresh(s, stale_after)?;
    if s.role != "standby" {
        return Err(format!("not a replica: role {}", s.role));
    }
    let Some(r) = &s.replication else {
        return Err("not a replica: replication unknown".into());
    };
    match r.receiver.as_deref() {
        Some("streaming") => {}
        Some(other) => return Err(format!("not a replica: WAL receiver {other}")),
        None => {
            return Err(
                "not a replica: no WAL receiver (or not visible: grant pg_read_all_stats)".into(),
            );
        }
    }
    let Some(primary) = s.repmgr_primary else {
        return Err("not a replica: repmgr.nodes names no active primary".into());
    };
    if r.upstream != Some(primary) {
        let up = r
            .upstream
            .map_or("an unknown node".into(), |u| format!("node {u}"));
        return Err(format!(
            "not a replica of the primary: upstream is {up}, the primary is node {primary}"
        ));
    }
    let shown = |v: Option<u64>| v.map_or("unknown".into(), |v| v.to_string());
    let within = match lag {
        None => true,
        Some(Lag::Bytes(max)) => r.lag_bytes.is_some_and(|b| b <= max),
        Some(Lag::Time(max)) => r.lag_ms.is_some_and(|ms| u128::from(ms) <= max.as_millis()),
    };
    let what = format!(
        "streaming from node {primary}, lag {} bytes, {} ms",
        shown(r.lag_bytes),
        shown(r.lag_ms)
    );
    if within {
        Ok(format!("replica: {what}"))
    } else {
        Err(format!("replica lagging: {what}, over the bound"))
    }
}

/// `/read-only`: the primary, or a replica (within `lag`, which applies to replicas).
pub fn read_only(
    s: Option<&(Snapshot, Duration)>,
    stale_after: Duration,
    lag: Option<Lag>,
) -> Result<String, String> {
    primary(s, stale_after)
        .or_else(|p| replica(s, stale_after, lag).map_err(|r| format!("{p}; {r}")))
}

#[cfg(test)]
#[path = "roles_tests.rs"]
mod tests;
