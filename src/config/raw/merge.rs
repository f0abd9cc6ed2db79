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
    // Which keys an environment variable set: a problem with one names the variable.
    let mut from_env: Vec<(String, String)> = Vec::new();
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path = key.to_ascii_lowercase().replace("__", ".");
        fig = fig.merge(Serialized::default(&path, env_value(&path, value)));
        from_env.push((path, name.clone()));
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
            let what = describe_kind(&one.kind, &one.path);
            let shown = match from_env.iter().find(|(path, _)| *path == key) {
                Some((_, var)) => format!("{var} (environment)"),
                None => key.clone(),
            };
            keys.push((
                key.clone(),
                one_line(if key.is_empty() {
                    what
                } else {
                    format!("{shown}: {what}")
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

/// A deserialisation problem in words an operator reads, without the offending value
/// when it is text (it could be a password put under the wrong key): no Rust type
/// names, an unknown key with the nearest known one.
fn describe_kind(kind: &Kind, path: &[String]) -> String {
    let parent = match path.split_last() {
        Some((_, parents)) if !parents.is_empty() => format!("{}.", parents.join(".")),
        _ => String::new(),
    };
    let duration = path.last().is_some_and(|k| {
        k.ends_with("interval")
            || k.ends_with("_hold")
            || k.ends_with("timeout")
            || k.ends_with("bound")
    });
    let expected = |e: &str| {
        if duration && e == "a string" {
            "a duration as text (\"2s\", \"500ms\", \"1.5s\")".to_owned()
        } else {
            expected_words(e)
        }
    };
    match kind {
        Kind::UnknownField(found, known) => match nearest(found, known) {
            Some(k) => format!("unknown key; did you mean {parent}{k}?"),
            None => format!("unknown key (the keys here: {})", known.join(", ")),
        },
        Kind::InvalidType(actual, e) => {
            format!("expected {}, found {}", expected(e), actual_words(actual))
        }
        Kind::InvalidValue(actual, e) => {
            format!("{} is not {}", actual_words(actual), expected(e))
        }
        other => other.to_string(),
    }
}

/// The known key closest to `found` (at most two edits away), if any.
fn nearest<'a>(found: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edits(found, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

fn actual_words(a: &Actual) -> String {
    match a {
        Actual::Str(_) => "a string".into(),
        Actual::Signed(n) => format!("the number {n}"),
        Actual::Unsigned(n) => format!("the number {n}"),
        Actual::Float(f) => format!("the number {f}"),
        Actual::Bool(b) => format!("{b}"),
        Actual::Seq => "a list".into(),
        Actual::Map => "a table".into(),
        other => other.to_string(),
    }
}

fn expected_words(e: &str) -> String {
    match e {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => {
            "a whole number".into()
        }
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        other => other.into(),
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
