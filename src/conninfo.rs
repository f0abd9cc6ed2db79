//! The local PostgreSQL connection settings: a libpq conninfo parsed into a
//! tokio-postgres config with the defaults vip-arbiter needs, the password from
//! `.pgpass` when the conninfo has none, and a redacted form for logs and
//! `check-config`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use crate::pgpass;

#[derive(Clone)]
pub struct PgSettings {
    pub config: tokio_postgres::Config,
    pub conninfo_redacted: String,
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSettings")
            .field("conninfo", &self.conninfo_redacted)
            .finish()
    }
}

pub(crate) fn pg_config(
    conninfo: &str,
    pg_timeout: Option<Duration>,
    pgpass_path: Option<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<PgSettings, String> {
    let mut cfg = tokio_postgres::Config::from_str(conninfo).map_err(|e| {
        format!("cannot parse ({e}); expected libpq key=value pairs or a postgres:// URI")
    })?;
    if cfg.get_hosts().is_empty() {
        cfg.host_path("/var/run/postgresql");
    }
    if cfg.get_ports().is_empty() {
        cfg.port(5432);
    }
    let Some(user) = cfg.get_user().map(str::to_owned) else {
        return Err("no user: add user=... (the repmgr superuser is recommended)".into());
    };
    if matches!(cfg.get_ssl_mode(), SslMode::Require) {
        return Err("sslmode=require is not supported: vip-arbiter talks to the local server without TLS (use a unix socket or sslmode=prefer/disable)".into());
    }
    if cfg.get_connect_timeout().is_none()
        && let Some(t) = pg_timeout
    {
        cfg.connect_timeout(t);
    }
    if cfg.get_password().is_none()
        && let Some(path) = pgpass_path
    {
        let host = match cfg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let dbname = cfg.get_dbname().unwrap_or(&user).to_owned();
        let target = pgpass::Target {
            host: &host,
            port,
            dbname: &dbname,
            user: &user,
        };
        match pgpass::lookup(&path, &target) {
            pgpass::Lookup::Found(pw) => {
                cfg.password(pw);
            }
            pgpass::Lookup::Insecure(p) => warnings.push(format!(
                "{} is readable by group or others: ignored, as libpq does (chmod 0600 it)",
                p.display()
            )),
            pgpass::Lookup::NotFound => {}
        }
    }
    cfg.application_name("vip-arbiter");
    Ok(PgSettings {
        conninfo_redacted: redact_conninfo(conninfo),
        config: cfg,
    })
}

/// The conninfo with any password value replaced, for logs and `check-config`.
pub fn redact_conninfo(conninfo: &str) -> String {
    let c = conninfo.trim();
    if let Some(scheme_end) = c.find("://") {
        // postgres://user:password@host/db?password=x → both masked.
        let (head, rest) = c.split_at(scheme_end + 3);
        let rest = match rest.split_once('@') {
            Some((auth, tail)) if auth.contains(':') && !auth.contains('/') => {
                format!("{}:********@{tail}", auth.split(':').next().unwrap_or(""))
            }
            _ => rest.to_owned(),
        };
        let rest = match rest.split_once('?') {
            Some((path, query)) => {
                let q: Vec<String> = query
                    .split('&')
                    .map(|kv| {
                        if kv.starts_with("password=") {
                            "password=********".into()
                        } else {
                            kv.to_owned()
                        }
                    })
                    .collect();
                format!("{path}?{}", q.join("&"))
            }
            None => rest,
        };
        return format!("{head}{rest}");
    }
    let mut out = Vec::new();
    let mut chars = c.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            out.push(key);
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            while let Some(ch) = chars.next() {
                value.push(ch);
                if ch == '\\' {
                    value.extend(chars.next());
                } else if ch == '\'' {
                    break;
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        if key == "password" {
            value = "********".into();
        }
        out.push(format!("{key}={value}"));
    }
    out.join(" ")
}
