//! Every configuration key, declared once: its name as the file, the environment
//! and docs/configuration.md spell it, what a reload does with it, how a
//! `VIP_ARBITER_*` variable's text is read for it, and how `check-config` prints it.
//! The restart-only check and the values a reload carries over (daemon/reload.rs),
//! `redacted_toml()` and the environment's conversions are derived from [`KEYS`];
//! unit tests hold it against `RawConfig`, docs/configuration.md and
//! etc/vip-arbiter.toml. Validation (validate.rs) is per key by nature: its rules
//! and messages are the table in docs/configuration.md.

use crate::config::{OnStop, Settings, format_duration};

/// One key of the configuration.
pub struct Key {
    /// `vip`, or `aws.enabled` for a key of the `[aws]` table.
    pub name: &'static str,
    pub reload: OnReload,
    pub env: EnvText,
    /// The effective value as `check-config` prints it, password masked (`None`:
    /// not printed; `repmgr_config` only supplies `node_id` and `conninfo`).
    show: Option<fn(&Settings) -> String>,
}

/// What a reload (SIGHUP) does with a key.
pub enum OnReload {
    /// The new value takes effect at once.
    Applies,
    /// A change is logged as needing a restart and the running value is kept.
    Restart {
        changed: fn(&Settings, &Settings) -> bool,
        /// Put the running value back into the newly loaded settings.
        keep: fn(new: &mut Settings, running: &Settings),
    },
}

/// How a `VIP_ARBITER_*` variable's text becomes the key's value. Only numbers,
/// booleans and lists are converted: "0660" must stay the string a socket mode is
/// written as, and a fence command must never be read as a TOML array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvText {
    Text,
    Integer,
    Bool,
    /// Comma-separated: `VIP_ARBITER_KICK_ALLOW="alice,monitor"`.
    List,
}

/// A key that needs a restart, compared and carried over field by field.
macro_rules! restart {
    ($($field:ident).+) => {
        OnReload::Restart {
            changed: |old, new| old.$($field).+ != new.$($field).+,
            keep: |new, running| new.$($field).+.clone_from(&running.$($field).+),
        }
    };
}

const fn key(
    name: &'static str,
    reload: OnReload,
    env: EnvText,
    show: fn(&Settings) -> String,
) -> Key {
    Key {
        name,
        reload,
        env,
        show: Some(show),
    }
}

use EnvText::{Bool, Integer, List, Text};
use OnReload::Applies;

/// Every key, in the order of the file (and of `check-config`'s output).
pub static KEYS: &[Key] = &[
    key("vip", restart!(vip), Text, |s| format!("\"{}\"", s.vip)),
    key("interface", restart!(interface), Text, |s| {
        format!("{:?}", s.interface)
    }),
    key("prefix_len", Applies, Integer, |s| {
        s.prefix_len
            .map_or("(from the interface's own address)".into(), |p| {
                p.to_string()
            })
    }),
    Key {
        name: "repmgr_config",
        reload: Applies,
        env: Text,
        show: None,
    },
    key("node_id", restart!(node_id), Integer, |s| {
        s.node_id.to_string()
    }),
    key(
        "conninfo",
        OnReload::Restart {
            changed: conninfo_changed,
            keep: |new, running| new.pg.clone_from(&running.pg),
        },
        Text,
        |s| format!("{:?}", s.pg.conninfo_redacted),
    ),
    key("interval", Applies, Text, |s| duration(s.interval)),
    key("pg_timeout", Applies, Text, |s| duration(s.pg_timeout)),
    key("pg_unknown_hold", Applies, Text, |s| {
        duration(s.pg_unknown_hold)
    }),
    key("on_stop", Applies, Text, |s| {
        match s.on_stop {
            OnStop::Keep => "\"keep\"",
            OnStop::Release => "\"release\"",
        }
        .into()
    }),
    key("socket", restart!(socket), Text, |s| {
        format!("{:?}", s.socket.display().to_string())
    }),
    key("socket_mode", restart!(socket_mode), Text, |s| {
        format!("\"{:04o}\"", s.socket_mode)
    }),
    key("socket_group", restart!(socket_group), Text, |s| {
        s.socket_group
            .as_ref()
            .map_or("(the service user's group)".to_owned(), |g| {
                format!("{:?}", g.name)
            })
    }),
    key("kick_allow", restart!(kick_allow), List, |s| {
        let users: Vec<String> = s
            .kick_allow
            .iter()
            .map(|u| format!("{:?}", u.name))
            .collect();
        format!(
            "[{}]  # root and the service user are always allowed",
            users.join(", ")
        )
    }),
    key("log_level", Applies, Text, |s| format!("{:?}", s.log_level)),
    key("aws.enabled", restart!(aws.enabled), Bool, |s| {
        s.aws.enabled.to_string()
    }),
    // The EC2 adapter (client, ENI, subnet) is built once at start.
    key("aws.region", restart!(aws.region), Text, |s| {
        unset(&s.aws.region)
    }),
    key("aws.eni_id", restart!(aws.eni_id), Text, |s| {
        unset(&s.aws.eni_id)
    }),
    key("aws.subnet_id", restart!(aws.subnet_id), Text, |s| {
        unset(&s.aws.subnet_id)
    }),
    key("aws.verify_interval", Applies, Text, |s| {
        duration(s.aws.verify_interval)
    }),
    key("aws.cloud_unknown_hold", Applies, Text, |s| {
        duration(s.aws.cloud_unknown_hold)
    }),
    key("aws.consistency_bound", Applies, Text, |s| {
        duration(s.aws.consistency_bound)
    }),
    key("aws.state_file", Applies, Text, |s| {
        format!("{:?}", s.aws.state_file.display().to_string())
    }),
    key(
        "aws.fence_command",
        restart!(aws.fence_command),
        Text,
        |s| unset(&s.aws.fence_command),
    ),
    // The TCP listener is bound once at start.
    key("http.listen", restart!(http.listen), Text, |s| {
        s.http
            .listen
            .map_or("(unset: no TCP listener)".to_owned(), |a| {
                format!("\"{a}\"")
            })
    }),
    key("http.allow", restart!(http.allow), List, |s| {
        let nets: Vec<String> = s.http.allow.0.iter().map(|n| format!("\"{n}\"")).collect();
        format!("[{}]", nets.join(", "))
    }),
];

/// The key named `name` (`aws.enabled` for a key of `[aws]`).
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The masked text hides a changed password: compare what the driver would use,
/// except a password file's, which is read again at every connect anyway.
fn conninfo_changed(old: &Settings, new: &Settings) -> bool {
    let password_changed = match (&old.pg.passfile, &new.pg.passfile) {
        (Some(a), Some(b)) => a.path != b.path,
        (None, None) => old.pg.config.get_password() != new.pg.config.get_password(),
        _ => true,
    };
    old.pg.conninfo_redacted != new.pg.conninfo_redacted || password_changed
}

fn duration(d: std::time::Duration) -> String {
    format!("\"{}\"", format_duration(d))
}

fn unset(v: &Option<String>) -> String {
    v.as_ref()
        .map_or("(unset)".to_owned(), |s| format!("{s:?}"))
}

impl Settings {
    /// The effective configuration as TOML, password masked.
    pub fn redacted_toml(&self) -> String {
        let mut s = match &self.source.file {
            Some(f) => format!("# from {} and VIP_ARBITER_* environment\n", f.display()),
            None => {
                "# from built-in defaults and VIP_ARBITER_* environment (no config file)\n".into()
            }
        };
        let mut table = "";
        for k in KEYS {
            let Some(show) = k.show else { continue };
            let (in_table, leaf) = k.name.split_once('.').unwrap_or(("", k.name));
            if in_table != table {
                s.push_str(&format!("\n[{in_table}]\n"));
                table = in_table;
            }
            s.push_str(&format!("{leaf} = {}\n", show(self)));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names between backticks in `text`.
    fn quoted(text: &str) -> Vec<&str> {
        text.split('`').skip(1).step_by(2).collect()
    }

    fn restart_only() -> Vec<&'static str> {
        KEYS.iter()
            .filter(|k| matches!(k.reload, OnReload::Restart { .. }))
            .map(|k| k.name)
            .collect()
    }

    /// docs/configuration.md: the key table's rows (the keys, the default cell).
    fn documented_rows() -> Vec<(Vec<String>, String)> {
        let docs = include_str!("../../docs/configuration.md");
        docs.lines()
            .filter(|l| l.starts_with("| `"))
            .map(|row| {
                let mut cells = row.split('|').skip(1);
                let keys = quoted(cells.next().unwrap_or_default());
                let keys = keys.into_iter().map(str::to_owned).collect();
                (keys, cells.next().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// docs/configuration.md's Reload section: (what takes effect at once, what is
    /// logged as needing a restart).
    fn documented_reload() -> (Vec<&'static str>, Vec<&'static str>) {
        let docs = include_str!("../../docs/configuration.md");
        let section = docs
            .split("\n## Reload\n")
            .nth(1)
            .expect("a Reload section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let (at_once, rest) = section
            .split_once("take effect at once;")
            .expect("what takes effect at once");
        let at_once = &at_once[at_once.rfind(". ").map_or(0, |i| i + 2)..];
        let (restart, _) = rest
            .split_once("are logged as needing a restart")
            .expect("what needs a restart");
        (quoted(at_once), quoted(restart))
    }

    #[test]
    fn the_table_is_the_raw_configs_keys_in_file_order() {
        let raw = serde_json::to_value(crate::config::raw::RawConfig::default()).expect("json");
        let mut fields: Vec<String> = Vec::new();
        for (k, v) in raw.as_object().expect("object") {
            match v.as_object() {
                Some(table) => fields.extend(table.keys().map(|sub| format!("{k}.{sub}"))),
                None => fields.push(k.clone()),
            }
        }
        let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        let mut sorted = fields.clone();
        sorted.sort();
        names.sort_unstable();
        assert_eq!(names, sorted, "KEYS and RawConfig name the same keys");
        let in_order: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        let top_then_aws: Vec<&str> = in_order
            .iter()
            .copied()
            .filter(|n| !n.contains('.'))
            .chain(in_order.iter().copied().filter(|n| n.contains('.')))
            .collect();
        assert_eq!(
            in_order, top_then_aws,
            "[aws] keys come last, as in the file"
        );
    }

    #[test]
    fn docs_configuration_md_lists_every_key_and_each_default() {
        let rows = documented_rows();
        let mut documented: Vec<&str> = rows
            .iter()
            .flat_map(|(keys, _)| keys.iter().map(String::as_str))
            .collect();
        let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        documented.sort_unstable();
        names.sort_unstable();
        assert_eq!(documented, names, "docs/configuration.md's key table");
        // A default written as text, a boolean or a list is in its key's default cell.
        let raw = serde_json::to_value(crate::config::raw::RawConfig::default()).expect("json");
        for k in KEYS {
            let value = k
                .name
                .split('.')
                .try_fold(&raw, |v, part| v.get(part))
                .expect("a default");
            let shown = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Array(a) if a.is_empty() => "[]".into(),
                _ => continue,
            };
            let (_, cell) = rows
                .iter()
                .find(|(keys, _)| keys.iter().any(|d| d == k.name))
                .expect("a row");
            assert!(
                cell.contains(&shown),
                "{}: default {shown:?}, documented {cell}",
                k.name
            );
        }
    }

    #[test]
    fn docs_configuration_md_names_the_restart_only_keys() {
        let (at_once, restart) = documented_reload();
        assert_eq!(restart, restart_only(), "docs/configuration.md, Reload");
        for name in at_once {
            let key = find(name).or_else(|| find(&format!("aws.{name}")));
            assert!(
                key.is_some_and(|k| matches!(k.reload, OnReload::Applies)),
                "docs/configuration.md says {name} takes effect at once"
            );
        }
    }
}
