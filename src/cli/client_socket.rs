//! Where the client verbs (`status`, `check`, `kick`) find the daemon. They need only
//! the socket path, so a daemon config that does not validate must never stop them:
//! `--socket` wins; else `VIP_ARBITER_SOCKET`; else the config file's `socket` key,
//! read leniently (the rest of the file may be broken, even its TOML); else the
//! default path. Whether the config would validate is worked out separately and only
//! reported (one line), never fatal.

use std::path::{Path, PathBuf};

use crate::config;
use crate::config::raw::{DEFAULT_PATH, ENV_PREFIX};

/// Where the socket path came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSource {
    Flag,
    Environment,
    ConfigFile(PathBuf),
    Default,
}

/// The socket to ask, and what is wrong with the daemon's config (if anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSocket {
    pub path: PathBuf,
    pub source: SocketSource,
    /// One line: the config file and its first problem (and how many more).
    pub config_problem: Option<String>,
}

/// `flag`: `--socket`; `config`: `--config` (None: the default path, which may be absent).
pub fn resolve(flag: Option<&Path>, config: Option<&Path>) -> ClientSocket {
    resolve_with(flag, config, std::env::vars())
}

/// `resolve` with an injected environment (tests).
pub fn resolve_with(
    flag: Option<&Path>,
    config: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> ClientSocket {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let file = config.map_or_else(|| PathBuf::from(DEFAULT_PATH), Path::to_owned);
    // A missing default file is normal on a client-only host; a missing --config is not.
    let file_exists = file.exists();
    let text = if file_exists {
        crate::config::small_file::read(&file).ok()
    } else {
        None
    };
    let env_socket = env
        .iter()
        .find(|(k, _)| k.strip_prefix(ENV_PREFIX) == Some("SOCKET"))
        .map(|(_, v)| v.clone())
        .filter(|v| Path::new(v).is_absolute());
    let (path, source) = if let Some(p) = flag {
        (p.to_owned(), SocketSource::Flag)
    } else if let Some(p) = env_socket {
        (PathBuf::from(p), SocketSource::Environment)
    } else if let Some(p) = text.as_deref().and_then(socket_key) {
        (PathBuf::from(p), SocketSource::ConfigFile(file.clone()))
    } else {
        (config::default_socket(), SocketSource::Default)
    };
    let config_problem = if file_exists || config.is_some() {
        problem(&file, config, env)
    } else {
        None
    };
    ClientSocket {
        path,
        source,
        config_problem,
    }
}

/// The config's first problem as one line, or None when it validates.
fn problem(file: &Path, explicit: Option<&Path>, env: Vec<(String, String)>) -> Option<String> {
    if !file.exists() {
        let missing = crate::config::raw::RawError::NoFile(file.to_owned());
        return Some(one_line(&missing.to_string()));
    }
    let errors = match config::load_from(
        Some(explicit.unwrap_or(file)),
        env,
        crate::config::pgpass::default_path(),
    ) {
        Ok(_) => return None,
        Err(e) => e.0,
    };
    // A repmgr.conf that exists but that this (monitoring) user may not read says
    // nothing about the daemon, which reads it as the service user.
    let errors: Vec<String> = errors
        .into_iter()
        .filter(|e| {
            !(e.starts_with("repmgr_config: cannot read") && e.contains("ermission denied"))
        })
        .collect();
    let first = errors.first()?;
    let more = match errors.len() {
        1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    let shown = file.display().to_string();
    if first.starts_with(&shown) {
        // "<file>: TOML syntax error …"
        return Some(one_line(&format!("config {first}")));
    }
    if first.contains(&shown) {
        // "cannot read config file <file> (…)"
        return Some(one_line(first));
    }
    Some(one_line(&format!(
        "config {} does not validate: {first}{more}",
        file.display()
    )))
}

/// The top-level `socket` key of a config file's text, however broken the rest is: a
/// TOML parse when the file parses, else the first top-level line `socket = "…"` (a
/// basic string without escapes, or a literal string). Only absolute paths count
/// (the daemon refuses others).
pub fn socket_key(text: &str) -> Option<String> {
    let value = match text.parse::<toml::Table>() {
        Ok(table) => table.get("socket")?.as_str()?.to_owned(),
        Err(_) => scan_socket_line(text)?,
    };
    Path::new(&value).is_absolute().then_some(value)
}

fn scan_socket_line(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            return None; // past the top-level table
        }
        let Some(rest) = line.strip_prefix("socket") else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let quote = rest.chars().next()?;
        if quote != '"' && quote != '\'' {
            continue;
        }
        let inner = &rest[1..];
        let end = inner.find(quote)?;
        let value = &inner[..end];
        if quote == '"' && value.contains('\\') {
            continue;
        }
        return Some(value.to_owned());
    }
    None
}

/// Control characters escaped and `|` (a monitoring plugin's perfdata separator)
/// replaced: whatever the input, one line.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '|' => "/".to_owned(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_key_is_found_in_broken_files() {
        let good = "vip = \"10.0.0.5\"\nsocket = \"/run/x.sock\"\n[aws]\nsocket = \"/no\"\n";
        assert_eq!(socket_key(good).as_deref(), Some("/run/x.sock"));
        // Valid TOML, invalid config: still found.
        assert_eq!(
            socket_key("colour = 5\nsocket = '/run/y.sock'\n").as_deref(),
            Some("/run/y.sock")
        );
        // Broken TOML: the line scan.
        let broken = "vip = \"10.0.0.5\nsocket = \"/run/z.sock\"  # here\n[aws\n";
        assert_eq!(socket_key(broken).as_deref(), Some("/run/z.sock"));
        // Under a table, relative, or absent: not a socket.
        assert_eq!(socket_key("x = [\n[aws]\nsocket = \"/run/a.sock\"\n"), None);
        assert_eq!(socket_key("socket = \"rel.sock\"\n"), None);
        assert_eq!(socket_key("sockets = \"/run/b.sock\"\nx = [\n"), None);
        assert_eq!(socket_key(""), None);
    }

    #[test]
    fn flag_then_environment_then_file_then_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("va.toml");
        std::fs::write(&cfg, "socket = \"/run/file.sock\"\nvip = \"nope\"\n").expect("write");
        let env = || vec![("VIP_ARBITER_SOCKET".to_owned(), "/run/env.sock".to_owned())];
        let flag = Path::new("/run/flag.sock");
        let r = resolve_with(Some(flag), Some(&cfg), env());
        assert_eq!((r.path.as_path(), r.source), (flag, SocketSource::Flag));
        let r = resolve_with(None, Some(&cfg), env());
        assert_eq!(r.source, SocketSource::Environment);
        let r = resolve_with(None, Some(&cfg), Vec::new());
        assert_eq!(r.path, Path::new("/run/file.sock"));
        assert_eq!(r.source, SocketSource::ConfigFile(cfg.clone()));
        let p = r.config_problem.expect("broken config reported");
        assert!(p.contains("does not validate") && p.contains("vip:"), "{p}");
        let missing = dir.path().join("none.toml");
        let r = resolve_with(None, Some(&missing), Vec::new());
        assert_eq!(r.source, SocketSource::Default);
        assert!(
            r.config_problem
                .expect("reported")
                .contains("does not exist")
        );
    }

    #[test]
    fn one_line_whatever_the_input() {
        assert_eq!(one_line("a\nb|c\r"), "a\\nb/c\\r");
    }
}
