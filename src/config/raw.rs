//! The raw configuration as the operator writes it, and where it comes from:
//! built-in defaults → the TOML file → `VIP_ARBITER_*` environment (nested keys with
//! `__`, e.g. `VIP_ARBITER_AWS__ENABLED=true`). Unknown keys are errors: a typo must
//! not be silently ignored. validate.rs turns this into typed `Settings`.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::error::{Actual, Kind};
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use serde::{Deserialize, Serialize};

use crate::config::keys::EnvText;
use crate::config::secret::ConninfoText;

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
    let raw = merge(text.as_deref(), env)?;
    Ok((raw, Source { file }))
}

/// The merge over a file's text (`None`: no file), as `load_raw` does it once the
/// file is read. One line per problem.
pub fn from_text(
    toml: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<RawConfig, RawError> {
    if let Some(text) = toml {
        check_toml(text)?;
    }
    merge(toml, env)
}

/// The merge itself, over text that passed `check_toml` (our own syntax check comes
/// first because figment's error would quote the offending line).
fn merge(
    toml: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<RawConfig, RawError> {
    let mut fig = Figment::from(Serialized::defaults(RawConfig::default()));
    if let Some(text) = toml {
        fig = fig.merge(Toml::string(text));
    }
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path = key.to_ascii_lowercase().replace("__", ".");
        fig = fig.merge(Serialized::default(&path, env_value(&path, value)));
    }
    fig.extract().map_err(|e| {
        let lines = e
            .into_iter()
            .map(|one| {
                let key = one.path.join(".");
                let what = describe_kind(&one.kind);
                one_line(if key.is_empty() {
                    what
                } else {
                    format!("{key}: {what}")
                })
            })
            .collect();
        RawError::Keys(lines)
    })
}

/// One line per problem, whatever the input held: control characters (a key may
/// hold a CR, from a quoted TOML key or an environment variable's name) are escaped.
fn one_line(line: String) -> String {
    if !line.chars().any(char::is_control) {
        return line;
    }
    line.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
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

/// A deserialisation problem, without the offending value when it is text (figment
/// would print it quoted; it could be a password put under the wrong key).
fn describe_kind(kind: &Kind) -> String {
    match kind {
        Kind::InvalidType(Actual::Str(_), expected) => {
            format!("invalid type: found a string, expected {expected}")
        }
        Kind::InvalidValue(Actual::Str(_), expected) => {
            format!("invalid value: found a string, expected {expected}")
        }
        other => other.to_string(),
    }
}

/// Environment values are text; `keys::KEYS` says which keys convert it (an unknown
/// key stays text, and the merge refuses it).
fn env_value(path: &str, text: String) -> Value {
    match crate::config::keys::find(path).map_or(EnvText::Text, |k| k.env) {
        EnvText::Integer => text
            .trim()
            .parse::<i64>()
            .map_or(Value::from(text), Value::from),
        EnvText::List => Value::from(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect::<Vec<_>>(),
        ),
        EnvText::Bool => match text.trim() {
            "true" => Value::from(true),
            "false" => Value::from(false),
            _ => Value::from(text),
        },
        EnvText::Text => Value::from(text),
    }
}
