//! Validation: the raw configuration into typed `Settings`, every problem
//! collected as one line "key: problem" (docs/configuration.md has the rules).
//! validate/aws.rs: the `[aws]` table; validate/pg.rs: `node_id` and `conninfo`.

mod aws;
mod pg;

use aws::validate_aws;
use pg::node_and_conninfo;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::config::raw::{RawConfig, Source};
use crate::config::secret::Secret;
use crate::config::{ConfigErrors, OnStop, Settings};
use crate::health::socket_access::{self, Principal};

/// "1s", "500ms", "2m", "1h", "1.5s"; "0s" is allowed. Bare numbers are refused:
/// units matter. A fraction is kept to the millisecond.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || format!("{s:?} is not a duration like \"1s\", \"1.5s\" or \"500ms\"");
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() || num.matches('.').count() > 1 || (num.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let n: u64 = whole.parse().map_err(|_| bad())?;
    // The fraction in thousandths (more digits are cut).
    let milli: u64 = format!("{frac:0<3}")[..3].parse().map_err(|_| bad())?;
    let per_unit_ms: u64 = match unit {
        "ms" if frac.is_empty() => return Ok(Duration::from_millis(n)),
        "ms" => return Err(format!("{s:?}: milliseconds are whole numbers")),
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => {
            return Err(format!(
                "{s:?} has no unit: write \"{num}s\" or \"{num}ms\""
            ));
        }
        _ => return Err(format!("{s:?} has an unknown unit (use ms, s, m or h)")),
    };
    Ok(Duration::from_millis(
        n.saturating_mul(per_unit_ms)
            .saturating_add(milli.saturating_mul(per_unit_ms) / 1000),
    ))
}

pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Collects problems instead of stopping at the first.
pub(super) struct Problems(pub(super) Vec<String>);

impl Problems {
    pub(super) fn take<T>(&mut self, key: &str, r: Result<T, impl std::fmt::Display>) -> Option<T> {
        r.map_err(|e| self.0.push(format!("{key}: {e}"))).ok()
    }
    pub(super) fn duration(
        &mut self,
        key: &str,
        v: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let d = parse_duration(v).and_then(|d| {
            if d < min || d > max {
                Err(format!(
                    "{v} is outside {}..={}",
                    format_duration(min),
                    format_duration(max)
                ))
            } else {
                Ok(d)
            }
        });
        self.take(key, d)
    }
}

pub(super) const HOUR: Duration = Duration::from_secs(3600);
/// `sun_path` holds 108 bytes with its NUL: the longest path `bind` takes.
pub const SUN_PATH_MAX: usize = 107;

pub(super) fn validate(
    raw: &RawConfig,
    source: Source,
    env_password: Option<&Secret>,
    pgpass_path: Option<PathBuf>,
) -> Result<Settings, ConfigErrors> {
    let mut p = Problems(Vec::new());
    let mut warnings = Vec::new();
    let vip = match &raw.vip {
        None => p.take::<Ipv4Addr>(
            "vip",
            Err("is required (the virtual IPv4 address)".to_owned()),
        ),
        Some(v) => p.take(
            "vip",
            Ipv4Addr::from_str(v.trim()).map_err(|_| format!("{v:?} is not an IPv4 address")),
        ),
    };
    let interface = match &raw.interface {
        None => p.take::<String>("interface", Err("is required (e.g. \"ens5\")".to_owned())),
        Some(i) if i.is_empty() || i.len() > 15 || i.contains(['/', ' ', '\t', ':']) => p
            .take::<String>(
                "interface",
                Err(format!("{i:?} is not a valid interface name")),
            ),
        Some(i) => Some(i.clone()),
    };
    let prefix_len = match raw.prefix_len {
        None => Some(None),
        Some(n) if (1..=32).contains(&n) => Some(u8::try_from(n).ok()),
        Some(n) => p.take("prefix_len", Err(format!("{n} is outside 1..=32"))),
    };
    if let (Some(vip), Some(interface)) = (vip, &interface) {
        let why = crate::config::vip_address::unusable(vip, interface).or_else(|| {
            prefix_len
                .flatten()
                .and_then(|len| crate::config::vip_address::network_or_broadcast(vip, len))
                .map(|why| format!("{why} (prefix_len): not a host's address"))
        });
        if let Some(why) = why {
            p.0.push(format!("vip: {why}"));
        }
    }
    let interval = p.duration(
        "interval",
        &raw.interval,
        Duration::from_millis(100),
        Duration::from_secs(60),
    );
    let pg_timeout = p.duration(
        "pg_timeout",
        &raw.pg_timeout,
        Duration::from_millis(100),
        Duration::from_secs(30),
    );
    let pg_unknown_hold = p.duration(
        "pg_unknown_hold",
        &raw.pg_unknown_hold,
        Duration::ZERO,
        HOUR,
    );
    let on_stop = match raw.on_stop.as_str() {
        "keep" => Some(OnStop::Keep),
        "release" => Some(OnStop::Release),
        other => p.take(
            "on_stop",
            Err(format!("{other:?} must be \"keep\" or \"release\"")),
        ),
    };
    let socket_mode = p.take(
        "socket_mode",
        u32::from_str_radix(raw.socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("{:?} is not an octal mode like \"0660\"", raw.socket_mode)),
    );
    if !Path::new(&raw.socket).is_absolute() {
        p.0.push(format!("socket: {:?} must be an absolute path", raw.socket));
    } else if raw.socket.ends_with('/') {
        p.0.push(format!(
            "socket: {:?} names a directory; name the socket file in it",
            raw.socket
        ));
    }
    if raw.socket.len() > SUN_PATH_MAX {
        p.0.push(format!(
            "socket: the path is {} bytes; a unix socket's path holds at most {SUN_PATH_MAX}",
            raw.socket.len()
        ));
    }
    let socket_group = match &raw.socket_group {
        None => None,
        Some(g) => p.take("socket_group", socket_access::resolve_group(g)),
    };
    let kick_allow: Vec<Principal> = raw
        .kick_allow
        .iter()
        .filter_map(|u| p.take("kick_allow", socket_access::resolve_user(u)))
        .collect();
    let log_level = match raw.log_level.as_str() {
        l @ ("error" | "warn" | "info" | "debug" | "trace") => Some(l.to_owned()),
        other => p.take(
            "log_level",
            Err(format!(
                "{other:?} must be error, warn, info, debug or trace"
            )),
        ),
    };
    let aws = validate_aws(&mut p, &raw.aws);
    let http = crate::config::http::validate(&raw.http, &mut p.0);
    let passwords = (env_password, pgpass_path);
    let (node_id, pg) = node_and_conninfo(&mut p, raw, pg_timeout, passwords, &mut warnings);
    if !p.0.is_empty() {
        return Err(ConfigErrors(p.0));
    }
    let (
        Some(vip),
        Some(interface),
        Some(prefix_len),
        Some(interval),
        Some(pg_timeout),
        Some(pg_unknown_hold),
    ) = (
        vip,
        interface,
        prefix_len,
        interval,
        pg_timeout,
        pg_unknown_hold,
    )
    else {
        return Err(ConfigErrors(vec![
            "internal: a problem was not reported".into(),
        ]));
    };
    let (Some(on_stop), Some(socket_mode), Some(log_level), Some(aws), Some(node_id), Some(pg)) =
        (on_stop, socket_mode, log_level, aws, node_id, pg)
    else {
        return Err(ConfigErrors(vec![
            "internal: a problem was not reported".into(),
        ]));
    };
    Ok(Settings {
        vip,
        interface,
        prefix_len,
        node_id,
        pg,
        interval,
        pg_timeout,
        pg_unknown_hold,
        on_stop,
        socket: PathBuf::from(&raw.socket),
        socket_mode,
        socket_group,
        kick_allow,
        log_level,
        aws,
        http,
        source,
        warnings,
    })
}
