//! The local PostgreSQL connection settings: a libpq conninfo parsed into a
//! tokio-postgres config with the defaults vip-arbiter needs, the password from
//! `PGPASSWORD` or `.pgpass` when the conninfo has none (libpq's order), and a
//! redacted form for logs and `check-config`. Nothing here ever puts a password, or
//! any other text of the conninfo, into an error message.
//!
//! When the password comes from the password file (neither the conninfo nor
//! `PGPASSWORD` has one), `PgSettings::connect_config` reads the file again for every
//! new connection, so a rotated password is used at the next reconnect without a
//! restart. A password in the conninfo or in `PGPASSWORD` is fixed for the life of the
//! process (the conninfo needs a restart; a process's environment does not change).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use crate::config::pgpass;
use crate::config::secret::{MASK, Secret};

#[derive(Clone)]
pub struct PgSettings {
    /// As resolved at load time (with the password file's password, if any).
    pub config: tokio_postgres::Config,
    pub conninfo_redacted: String,
    /// Set when the password is the password file's: read again at every connect.
    pub passfile: Option<Passfile>,
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSettings")
            .field("conninfo", &self.conninfo_redacted)
            .field("passfile", &self.passfile.as_ref().map(|p| &p.path))
            .finish()
    }
}

/// The password file lookup for this conninfo: the file and the line it looks for.
#[derive(Clone)]
pub struct Passfile {
    pub path: PathBuf,
    host: String,
    port: u16,
    dbname: String,
    user: String,
    /// The driver config before any password was added (neither the conninfo nor
    /// `PGPASSWORD` had one, or there would be no `Passfile`).
    base: tokio_postgres::Config,
}

impl Passfile {
    /// libpq's lookup, now.
    pub fn lookup(&self) -> pgpass::Lookup {
        pgpass::lookup(
            &self.path,
            &pgpass::Target {
                host: &self.host,
                port: self.port,
                dbname: &self.dbname,
                user: &self.user,
            },
        )
    }
}

/// Why a password file was not used, for a warning (names the file, never a line).
fn insecure_warning(p: &std::path::Path) -> String {
    format!(
        "{} is readable by group or others: ignored, as libpq does (chmod 0600 it)",
        p.display()
    )
}

impl PgSettings {
    /// Fixed settings around a driver config (no password file): tests and tools.
    pub fn fixed(config: tokio_postgres::Config) -> Self {
        PgSettings {
            config,
            conninfo_redacted: String::new(),
            passfile: None,
        }
    }

    /// The driver config for a new connection, with the password file read again
    /// when the password comes from it; plus a warning when the file is ignored
    /// (group- or world-readable). A file that is gone or has no matching line
    /// means no password, as in libpq.
    pub fn connect_config(&self) -> (tokio_postgres::Config, Option<String>) {
        let Some(pf) = &self.passfile else {
            return (self.config.clone(), None);
        };
        let mut cfg = pf.base.clone();
        match pf.lookup() {
            pgpass::Lookup::Found(pw) => {
                cfg.password(pw.expose());
                (cfg, None)
            }
            pgpass::Lookup::Insecure(p) => (cfg, Some(insecure_warning(&p))),
            pgpass::Lookup::NotFound => (cfg, None),
        }
    }
}

impl PgSettings {
    /// The driver config for the PostgreSQL of another node at `host` (is the VIP's
    /// holder a standby?): this conninfo's user, database, TLS mode and application
    /// name, over TCP to `host` at `port` (else this conninfo's port), connecting
    /// within `timeout`. The password is the conninfo's or `PGPASSWORD`'s; when it
    /// comes from the password file, the line for that host and port is looked up
    /// now, as libpq would.
    pub fn peer_config(
        &self,
        host: &str,
        port: Option<u16>,
        timeout: Duration,
    ) -> tokio_postgres::Config {
        let base = &self.config;
        let port = port.unwrap_or_else(|| base.get_ports().first().copied().unwrap_or(5432));
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(host)
            .port(port)
            .ssl_mode(base.get_ssl_mode())
            .application_name("vip-arbiter")
            .connect_timeout(
                base.get_connect_timeout()
                    .map_or(timeout, |t| (*t).min(timeout)),
            );
        if let Some(user) = base.get_user() {
            cfg.user(user);
        }
        if let Some(db) = base.get_dbname() {
            cfg.dbname(db);
        }
        match &self.passfile {
            Some(pf) => {
                let target = Passfile {
                    host: host.to_owned(),
                    port,
                    ..pf.clone()
                };
                if let pgpass::Lookup::Found(pw) = target.lookup() {
                    cfg.password(pw.expose());
                }
            }
            None => {
                if let Some(pw) = base.get_password() {
                    cfg.password(pw);
                }
            }
        }
        cfg
    }
}

/// Why a conninfo was refused. None of them quotes the text (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConninfoError {
    /// The driver's reason, reworded so that it quotes nothing (`parse_error`).
    #[error("cannot parse: {0}; expected libpq key=value pairs or a postgres:// URI")]
    Parse(String),
    #[error("no user: add user=... (the repmgr superuser is recommended)")]
    NoUser,
    #[error(
        "sslmode=require is not supported: vip-arbiter talks to the local server without TLS (use a unix socket or sslmode=prefer/disable)"
    )]
    SslRequire,
}

/// Parse `conninfo`. The password is, as in libpq: the conninfo's own, else
/// `env_password` (`PGPASSWORD`), else the first matching `.pgpass` line.
pub(crate) fn pg_config(
    conninfo: &str,
    pg_timeout: Option<Duration>,
    env_password: Option<&Secret>,
    pgpass_path: Option<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<PgSettings, ConninfoError> {
    let mut cfg = tokio_postgres::Config::from_str(conninfo)
        .map_err(|e| ConninfoError::Parse(parse_error(&e)))?;
    if cfg.get_hosts().is_empty() {
        cfg.host_path("/var/run/postgresql");
    }
    if cfg.get_ports().is_empty() {
        cfg.port(5432);
    }
    let Some(user) = cfg.get_user().map(str::to_owned) else {
        return Err(ConninfoError::NoUser);
    };
    if matches!(cfg.get_ssl_mode(), SslMode::Require) {
        return Err(ConninfoError::SslRequire);
    }
    if cfg.get_connect_timeout().is_none()
        && let Some(t) = pg_timeout
    {
        cfg.connect_timeout(t);
    }
    if cfg.get_password().is_none()
        && let Some(pw) = env_password
    {
        cfg.password(pw.expose());
    }
    cfg.application_name("vip-arbiter");
    let mut passfile = None;
    if cfg.get_password().is_none()
        && let Some(path) = pgpass_path
    {
        let host = match cfg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let pf = Passfile {
            path,
            host,
            port: cfg.get_ports().first().copied().unwrap_or(5432),
            dbname: cfg.get_dbname().unwrap_or(&user).to_owned(),
            user: user.clone(),
            base: cfg.clone(),
        };
        match pf.lookup() {
            pgpass::Lookup::Found(pw) => {
                cfg.password(pw.expose());
            }
            pgpass::Lookup::Insecure(p) => warnings.push(insecure_warning(&p)),
            pgpass::Lookup::NotFound => {}
        }
        passfile = Some(pf);
    }
    let mut shown = redact_conninfo(conninfo);
    // Belt and braces: should the text still hold the password the driver parsed (a
    // grammar corner the redactor reads differently), show the parsed fields instead.
    if let Some(pw) = cfg.get_password().and_then(|p| std::str::from_utf8(p).ok())
        && !pw.is_empty()
        && shown.contains(pw)
    {
        shown = rebuilt(&cfg);
    }
    Ok(PgSettings {
        conninfo_redacted: shown,
        config: cfg,
        passfile,
    })
}

/// The parsed connection fields, password masked: the fallback display.
fn rebuilt(cfg: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = cfg.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host={} port={} user={} dbname={} password={MASK}",
        hosts.join(","),
        ports.join(","),
        cfg.get_user().unwrap_or(""),
        cfg.get_dbname().unwrap_or("")
    )
}

/// libpq's connection keywords: an unknown option that is one of these is named in
/// the error (tokio-postgres does not implement it); any other is not, since it may
/// be a piece of a value (`password=a b=c` makes `b` a key).
const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// Why tokio-postgres refused a conninfo, without any text taken from it: only the
/// causes known to quote nothing pass through; the others are reworded.
fn parse_error(e: &tokio_postgres::Error) -> String {
    let Some(cause) = std::error::Error::source(e).map(ToString::to_string) else {
        return "invalid connection string".into();
    };
    if let Some(key) = cause
        .strip_prefix("unknown option `")
        .and_then(|k| k.strip_suffix('`'))
    {
        return if LIBPQ_KEYWORDS.contains(&key) {
            format!("option `{key}` is not supported by vip-arbiter's driver")
        } else {
            "an unknown option (a misspelt key, or a value with a space that is not quoted: write key='a b')".into()
        };
    }
    if let Some(rest) = cause.strip_prefix("unexpected character at byte ") {
        let pos: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return format!("unexpected character at byte {pos} (every key needs `=value`)");
    }
    let quotes_nothing = cause.starts_with("invalid value for option `")
        || cause.starts_with("invalid utf-8")
        || cause.starts_with("incomplete utf-8")
        || matches!(
            cause.as_str(),
            "unexpected EOF"
                | "unterminated quoted connection parameter value"
                | "unterminated parameter"
        );
    if quotes_nothing {
        cause
    } else {
        "invalid connection string".into()
    }
}

/// The conninfo with any password value replaced, for logs and `check-config`. Reads
/// the text with tokio-postgres's grammar, so what the driver takes for the password
/// is what is masked.
pub fn redact_conninfo(conninfo: &str) -> String {
    let c = conninfo.trim();
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = c.strip_prefix(scheme) {
            return format!("{scheme}{}", redact_uri(rest));
        }
    }
    redact_key_values(c)
}

/// `user:password@host/db?k=v&password=x`. As in tokio-postgres, the credentials
/// end at the first `@` anywhere, and the password is all after their first `:`.
fn redact_uri(rest: &str) -> String {
    let (creds, tail) = match rest.split_once('@') {
        Some((creds, tail)) => {
            let creds = match creds.split_once(':') {
                Some((user, _)) => format!("{user}:{MASK}@"),
                None => format!("{creds}@"),
            };
            (creds, tail)
        }
        None => (String::new(), rest),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if percent_decode(k) == "password" => format!("{k}={MASK}"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{creds}{tail}")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key=value` pairs: a value is `'quoted'` or runs to the next whitespace, and a
/// backslash escapes the next character in both (so `a\ b` is one value).
fn redact_key_values(c: &str) -> String {
    let mut out = Vec::new();
    let mut chars = c.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            // tokio-postgres stops here too; nothing after this is used (or shown).
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            out.push(key);
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::from(if quoted { "'" } else { "" });
        while let Some(ch) = chars.next_if(|ch| if quoted { true } else { !ch.is_whitespace() }) {
            value.push(ch);
            if ch == '\\' {
                value.extend(chars.next());
            } else if quoted && ch == '\'' {
                break;
            }
        }
        if key == "password" {
            value = MASK.into();
        }
        out.push(format!("{key}={value}"));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(cfg: &tokio_postgres::Config) -> Option<String> {
        cfg.get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    #[test]
    fn the_password_file_is_read_again_for_every_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pgpass");
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .expect("chmod");
        };
        write("*:*:*:repmgr:one\n", 0o600);
        let mut warnings = Vec::new();
        let s = pg_config("user=repmgr", None, None, Some(path.clone()), &mut warnings)
            .expect("parses");
        assert!(warnings.is_empty());
        assert_eq!(pw(&s.config).as_deref(), Some("one"), "resolved at load");
        assert_eq!(pw(&s.connect_config().0).as_deref(), Some("one"));
        write("*:*:*:repmgr:two\n", 0o600);
        assert_eq!(pw(&s.connect_config().0).as_deref(), Some("two"), "rotated");
        write("*:*:*:repmgr:three\n", 0o644);
        let (cfg, warning) = s.connect_config();
        assert_eq!(pw(&cfg), None, "an insecure file is ignored");
        assert!(warning.is_some_and(|w| w.contains("readable by group")));
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(pw(&s.connect_config().0), None, "gone: no password");
        assert_eq!(
            s.connect_config().0.get_application_name(),
            Some("vip-arbiter")
        );
        // Later line created: picked up too (libpq reads the file at each connect).
        write("*:*:*:repmgr:four\n", 0o600);
        assert_eq!(pw(&s.connect_config().0).as_deref(), Some("four"));
    }

    #[test]
    fn a_conninfo_or_environment_password_is_fixed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:file\n").expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let mut w = Vec::new();
        let s = pg_config(
            "user=repmgr password=inline",
            None,
            None,
            Some(path.clone()),
            &mut w,
        )
        .expect("parses");
        assert!(s.passfile.is_none());
        assert_eq!(pw(&s.connect_config().0).as_deref(), Some("inline"));
        let env = Secret::new("fromenv");
        let s = pg_config("user=repmgr", None, Some(&env), Some(path), &mut w).expect("parses");
        assert!(s.passfile.is_none());
        assert_eq!(pw(&s.connect_config().0).as_deref(), Some("fromenv"));
    }
}
