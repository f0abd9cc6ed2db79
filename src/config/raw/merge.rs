//! The merge of the sources into `RawConfig`, key by key: serde stops at the first
//! bad key, so a refused key is set back to its default (an unknown one dropped) and
//! the merge tried again, every problem kept as one line.

use figment::Figment;
use figment::error::{Actual, Kind};
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;

use super::{ENV_PREFIX, KeyProblems, RawConfig, RawError};
use crate::config::keys::EnvText;

/// The merge itself, over text that passed `check_toml` (our own syntax check comes
/// first because figment's error would quote the offending line).
pub(super) fn merge(
    toml: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(RawConfig, KeyProblems), RawError> {
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
    let mut keys: KeyProblems = Vec::new();
    let (mut data, defaults) = match (
        fig.extract::<Value>(),
        Value::serialize(RawConfig::default()),
    ) {
        (Ok(d), Ok(def)) => (d, def),
        _ => (Value::from(false), Value::from(false)),
    };
    // serde stops at the first problem: set that key back and try again, a bounded
    // number of times (each round repairs one key).
    for _ in 0..64 {
        let e = match fig.extract::<RawConfig>() {
            Ok(raw) => return Ok((raw, keys)),
            Err(e) => e,
        };
        let mut repaired = true;
        for one in e {
            let key = one.path.join(".");
            let what = describe_kind(&one.kind);
            keys.push((
                key.clone(),
                one_line(if key.is_empty() {
                    what
                } else {
                    format!("{key}: {what}")
                }),
            ));
            repaired &= set_back(&mut data, &defaults, &one.path);
        }
        if !repaired {
            break;
        }
        fig = Figment::from(Serialized::defaults(&data));
    }
    Err(RawError::Keys(
        keys.into_iter().map(|(_, line)| line).collect(),
    ))
}

/// The value at `path` in `data` set back to the one in `defaults`, or removed when
/// the defaults have none there. False when `path` names nothing in `data`.
fn set_back(data: &mut Value, defaults: &Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let (mut here, mut def) = (data, Some(defaults));
    for p in parents {
        let Value::Dict(_, dict) = here else {
            return false;
        };
        let Some(next) = dict.get_mut(p) else {
            return false;
        };
        here = next;
        def = def.and_then(|d| d.find_ref(p));
    }
    let Value::Dict(_, dict) = here else {
        return false;
    };
    match def.and_then(|d| d.find_ref(last)) {
        Some(v) => dict.insert(last.clone(), v.clone()).is_some(),
        None => dict.remove(last).is_some(),
    }
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
