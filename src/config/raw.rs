//! The raw configuration as the operator writes it, and where it comes from:
//! built-in defaults → the TOML file → `VIP_ARBITER_*` environment (nested keys with
//! `__`, e.g. `VIP_ARBITER_AWS__ENABLED=true`). Unknown keys are errors: a typo must
//! not be silently ignored. validate.rs turns this into typed `Settings`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::secret::ConninfoText;

mod merge;
use merge::merge;

/// The merge's problems: (the key, its line "key: what"), in the order found.
pub type KeyProblems = Vec<(String, String)>;

pub const DEFAULT_PATH: &str = "/etc/vip-arbiter/vip-arbiter.toml";
pub const ENV_PREFIX: &str = "VIP_ARBITER_";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub vip: Option<String>,
    pub interface: Option<String>,
    pub prefix_len: Option<i64>,
    pub repmgr_config: String,
    pub node_id: Option<i64>,
    /// May hold a password: its Debug shows it redacted.
    pub conninfo: Option<ConninfoText>,
    pub interval: String,
    pub pg_timeout: String,
    pub pg_unknown_hold: String,
    pub on_stop: String,
    pub socket: String,
    pub socket_mode: String,
    pub socket_group: Option<String>,
    pub kick_allow: Vec<String>,
    pub log_level: String,
    pub aws: RawAws,
    #[serde(default)]
    pub http: RawHttp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    pub enabled: bool,
    pub region: Option<String>,
    pub eni_id: Option<String>,
    pub subnet_id: Option<String>,
    pub verify_interval: String,
    pub cloud_unknown_hold: String,
    pub consistency_bound: String,
    pub state_file: String,
    pub fence_command: Option<String>,
}

/// `[http]`: the optional TCP listener (config/http.rs validates it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Option<String>,
    pub allow: Vec<String>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: None,
            allow: vec!["127.0.0.0/8".into(), "::1".into()],
        }
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            vip: None,
            interface: None,
            prefix_len: None,
            repmgr_config: "/etc/repmgr.conf".into(),
            node_id: None,
            conninfo: None,
            interval: "1s".into(),
            pg_timeout: "2s".into(),
            pg_unknown_hold: "10s".into(),
            on_stop: "keep".into(),
            socket: "/run/vip-arbiter/vip-arbiter.sock".into(),
            socket_mode: "0660".into(),
            socket_group: None,
            kick_allow: Vec::new(),
            log_level: "info".into(),
            aws: RawAws {
                enabled: false,
                region: None,
                eni_id: None,
                subnet_id: None,
                verify_interval: "30s".into(),
                cloud_unknown_hold: "300s".into(),
                consistency_bound: "60s".into(),
                state_file: "/var/lib/vip-arbiter/fence.json".into(),
                fence_command: None,
            },
            http: RawHttp::default(),
        }
    }
}

/// Where the configuration came from, for `check-config` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: Option<PathBuf>,
}

/// Why the sources could not be merged. Its text is one line per problem; none
/// quotes the file (a line may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("config file {} does not exist", .0.display())]
    NoFile(PathBuf),
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {syntax}", path.display())]
    FileSyntax { path: PathBuf, syntax: TomlSyntax },
    #[error(transparent)]
    Syntax(#[from] TomlSyntax),
    /// A key's value or name refused by the merge, one line each ("key: what").
    #[error("{}", .0.join("\n"))]
    Keys(Vec<String>),
}

/// A TOML syntax error: where, and toml's message without the quoted line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TOML syntax error{at}: {message}")]
pub struct TomlSyntax {
    /// " at line L, column C", or empty.
    at: String,
    message: String,
}

/// Merge the sources. A missing default file is fine (defaults + environment); a
/// missing file named with `--config` is an error. `env` is injected for tests.
pub fn load_raw(
    explicit: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(RawConfig, Source), RawError> {
    let (raw, source, keys) = load_raw_all(explicit, env)?;
    if !keys.is_empty() {
        return Err(RawError::Keys(
            keys.into_iter().map(|(_, line)| line).collect(),
        ));
    }
    Ok((raw, source))
}

/// `load_raw`, but a key's problem ("key: what", with the key) does not stop the
/// merge: that key is set back to its default (an unknown one dropped), so the other
/// keys can still be validated and every problem reported at once.
pub fn load_raw_all(
    explicit: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(RawConfig, Source, KeyProblems), RawError> {
    let file = match explicit {
        Some(p) if !p.exists() => return Err(RawError::NoFile(p.to_owned())),
        Some(p) => Some(p.to_owned()),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    };
    let text = match &file {
        Some(f) => {
            let text = crate::config::small_file::read(f).map_err(|source| RawError::Read {
                path: f.clone(),
                source,
            })?;
            check_toml(&text).map_err(|syntax| RawError::FileSyntax {
                path: f.clone(),
                syntax,
            })?;
            Some(text)
        }
        None => None,
    };
    let (raw, keys) = merge(text.as_deref(), env)?;
    Ok((raw, Source { file }, keys))
}

/// The merge over a file's text (`None`: no file), as `load_raw` does it once the
/// file is read. One line per problem.
pub fn from_text(
    toml: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(RawConfig, KeyProblems), RawError> {
    if let Some(text) = toml {
        check_toml(text)?;
    }
    merge(toml, env)
}

/// A TOML syntax error as "line L, column C: what", never quoting the file: the
/// line may be `conninfo = "... password=..."` (toml's own message prints it).
fn check_toml(text: &str) -> Result<(), TomlSyntax> {
    let Err(e) = text.parse::<toml::Table>() else {
        return Ok(());
    };
    let at = e.span().map_or(String::new(), |span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" at line {line}, column {column}")
    });
    Err(TomlSyntax {
        at,
        message: e.message().trim().replace('\n', "; "),
    })
}
