//! Validation: the raw configuration into typed `Settings`, every problem
//! collected as one line "key: problem" (docs/configuration.md has the rules).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::config::conninfo::pg_config;
use crate::config::raw::{self, RawConfig, Source};
use crate::config::secret::Secret;
use crate::config::{AwsSettings, ConfigErrors, OnStop, PgSettings, Settings, repmgr_conf};
use crate::health::socket_access::{self, Principal};

/// "1s", "500ms", "2m", "1h"; "0s" is allowed. Bare numbers are refused: units matter.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"1s\" or \"500ms\""))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        "" => Err(format!("{s:?} has no unit: write \"{n}s\" or \"{n}ms\"")),
        _ => Err(format!("{s:?} has an unknown unit (use ms, s, m or h)")),
    }
}

pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Collects problems instead of stopping at the first.
struct Problems(Vec<String>);

impl Problems {
    fn take<T>(&mut self, key: &str, r: Result<T, impl std::fmt::Display>) -> Option<T> {
        r.map_err(|e| self.0.push(format!("{key}: {e}"))).ok()
    }
    fn duration(&mut self, key: &str, v: &str, min: Duration, max: Duration) -> Option<Duration> {
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

const HOUR: Duration = Duration::from_secs(3600);

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

fn validate_aws(p: &mut Problems, a: &raw::RawAws) -> Option<AwsSettings> {
    let id_like = |key: &str, v: &Option<String>, prefix: &str, p: &mut Problems| match v {
        Some(s)
            if !(s.starts_with(prefix)
                && s.len() > prefix.len()
                && s[prefix.len()..].chars().all(|c| c.is_ascii_hexdigit())) =>
        {
            p.0.push(format!("aws.{key}: {s:?} does not look like {prefix}<hex>"));
        }
        _ => {}
    };
    id_like("eni_id", &a.eni_id, "eni-", p);
    id_like("subnet_id", &a.subnet_id, "subnet-", p);
    if a.fence_command
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        p.0.push("aws.fence_command: is empty (remove the key to disable fencing)".into());
    }
    let verify_interval = p.duration(
        "aws.verify_interval",
        &a.verify_interval,
        Duration::from_secs(5),
        HOUR,
    )?;
    let cloud_unknown_hold = p.duration(
        "aws.cloud_unknown_hold",
        &a.cloud_unknown_hold,
        Duration::ZERO,
        HOUR,
    )?;
    let consistency_bound = p.duration(
        "aws.consistency_bound",
        &a.consistency_bound,
        Duration::ZERO,
        HOUR,
    )?;
    if !a.state_file.starts_with('/') {
        p.0.push(format!(
            "aws.state_file: {:?} is not an absolute path",
            a.state_file
        ));
    }
    Some(AwsSettings {
        enabled: a.enabled,
        region: a.region.clone(),
        eni_id: a.eni_id.clone(),
        subnet_id: a.subnet_id.clone(),
        verify_interval,
        cloud_unknown_hold,
        consistency_bound,
        state_file: PathBuf::from(&a.state_file),
        fence_command: a.fence_command.clone(),
    })
}

/// node_id and conninfo: explicit keys win, else repmgr.conf supplies them.
fn node_and_conninfo(
    p: &mut Problems,
    raw: &RawConfig,
    pg_timeout: Option<Duration>,
    (env_password, pgpass_path): (Option<&Secret>, Option<PathBuf>),
    warnings: &mut Vec<String>,
) -> (Option<i32>, Option<PgSettings>) {
    let needs_repmgr = raw.node_id.is_none() || raw.conninfo.is_none();
    let repmgr = if needs_repmgr {
        match crate::config::small_file::read(Path::new(&raw.repmgr_config)) {
            Ok(text) => p.take(
                "repmgr_config",
                repmgr_conf::parse(&text).map_err(|e| format!("{}: {e}", raw.repmgr_config)),
            ),
            Err(e) => p.take(
                "repmgr_config",
                Err(format!(
                    "cannot read {} ({e}); set node_id and conninfo explicitly or fix the path",
                    raw.repmgr_config
                )),
            ),
        }
    } else {
        None
    };
    let from_repmgr = |k: &str| repmgr.as_ref().and_then(|m| m.get(k).cloned());
    let node_id = match raw
        .node_id
        .map(|n| n.to_string())
        .or_else(|| from_repmgr("node_id"))
    {
        Some(s) => p.take(
            "node_id",
            s.parse::<i32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{s:?} is not a positive integer")),
        ),
        None if repmgr.is_some() => p.take(
            "node_id",
            Err(format!("not set, and {} has no node_id", raw.repmgr_config)),
        ),
        None => None,
    };
    let conninfo = match raw
        .conninfo
        .as_ref()
        .map(|c| c.expose().to_owned())
        .or_else(|| from_repmgr("conninfo"))
    {
        Some(c) => Some(c),
        None if repmgr.is_some() => p.take(
            "conninfo",
            Err(format!(
                "not set, and {} has no conninfo",
                raw.repmgr_config
            )),
        ),
        None => None,
    };
    let pg = conninfo.and_then(|c| {
        p.take(
            "conninfo",
            pg_config(&c, pg_timeout, env_password, pgpass_path, warnings),
        )
    });
    (node_id, pg)
}
