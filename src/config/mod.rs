//! Typed, validated settings. `load()` merges the sources (raw.rs), reads
//! repmgr.conf for `node_id`/`conninfo` when they are not set, fills the password
//! from `PGPASSWORD` or `.pgpass` when the conninfo has none, and reports every
//! problem at once, one line each ("key: problem"); the CLI exits 78 (EX_CONFIG) on
//! them. No password ever appears in Debug, errors or `redacted_toml()`.
//!
//! Here: the typed settings and the entry points. raw.rs: the sources; keys.rs:
//! every key once (reload, environment, `check-config`'s rendering); validate.rs:
//! the rules.

pub mod conninfo;
pub mod http;
pub mod keys;
pub mod pgpass;
pub mod raw;
pub mod repmgr_conf;
pub mod secret;
pub mod small_file;
mod validate;
pub mod vip_address;

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::config::conninfo::{PgSettings, redact_conninfo};
use crate::config::raw::{RawConfig, Source};
use crate::config::secret::Secret;
use crate::config::validate::validate;
pub use crate::config::validate::{format_duration, parse_duration};
use crate::health::socket_access::Principal;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStop {
    Keep,
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsSettings {
    pub enabled: bool,
    pub region: Option<String>,
    pub eni_id: Option<String>,
    pub subnet_id: Option<String>,
    pub verify_interval: Duration,
    pub cloud_unknown_hold: Duration,
    /// How long EC2's reads may lag its writes (decide's lag rules).
    pub consistency_bound: Duration,
    /// Where a fence (stale-primary incident) is kept across restarts.
    pub state_file: PathBuf,
    pub fence_command: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub vip: Ipv4Addr,
    pub interface: String,
    pub prefix_len: Option<u8>,
    pub node_id: i32,
    pub pg: PgSettings,
    pub interval: Duration,
    pub pg_timeout: Duration,
    pub pg_unknown_hold: Duration,
    pub on_stop: OnStop,
    pub socket: PathBuf,
    pub socket_mode: u32,
    /// The socket file's group (`None`: the service user's primary group).
    pub socket_group: Option<Principal>,
    /// Users allowed to POST /kick besides root and the service user.
    pub kick_allow: Vec<Principal>,
    pub log_level: String,
    pub aws: AwsSettings,
    /// `[http]`: the optional TCP listener.
    pub http: http::HttpSettings,
    pub source: Source,
    /// Non-fatal findings (e.g. an insecure .pgpass), logged at start.
    pub warnings: Vec<String>,
}

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl ConfigErrors {
    pub const EXIT_CODE: i32 = 78;
}

/// The config loader's problems, one a line.
impl From<raw::RawError> for ConfigErrors {
    fn from(e: raw::RawError) -> Self {
        ConfigErrors(e.to_string().lines().map(str::to_owned).collect())
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "config error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub fn default_socket() -> PathBuf {
    PathBuf::from(RawConfig::default().socket)
}

/// Load from the file (or the default path) and the process environment.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigErrors> {
    load_from(path, std::env::vars(), pgpass::default_path())
}

/// `load` with injected environment and .pgpass path (tests).
pub fn load_from(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    pgpass_path: Option<PathBuf>,
) -> Result<Settings, ConfigErrors> {
    let mut env_password = None;
    let env: Vec<(String, String)> = env
        .into_iter()
        .filter_map(|(k, v)| {
            if k == "PGPASSWORD" {
                // libpq ignores an empty one too.
                env_password = Some(v).filter(|v| !v.is_empty()).map(Secret::new);
                None
            } else {
                Some((k, v))
            }
        })
        .collect();
    let (raw, source, keys) = raw::load_raw_all(path, env)?;
    with_key_problems(
        keys,
        validate(&raw, source, env_password.as_ref(), pgpass_path),
    )
}

/// The merge's problems first, then validation's, except for a key the merge
/// already named (validation saw its default, or nothing, in its place).
fn with_key_problems(
    keys: raw::KeyProblems,
    validated: Result<Settings, ConfigErrors>,
) -> Result<Settings, ConfigErrors> {
    if keys.is_empty() {
        return validated;
    }
    let named = |line: &str| {
        keys.iter()
            .any(|(k, _)| !k.is_empty() && line.split(':').next() == Some(k.as_str()))
    };
    let mut lines: Vec<String> = keys.iter().map(|(_, l)| l.clone()).collect();
    if let Err(ConfigErrors(more)) = validated {
        lines.extend(more.into_iter().filter(|l| !named(l)));
    }
    Err(ConfigErrors(lines))
}

/// The same rules over a file's text and an environment, touching no .pgpass or
/// PGPASSWORD (the fuzz target; `repmgr_config` is still read when named).
pub fn from_text(
    toml: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigErrors> {
    let (raw, keys) = raw::from_text(Some(toml), env)?;
    with_key_problems(keys, validate(&raw, Source { file: None }, None, None))
}

#[cfg(test)]
mod tests;
