//! SIGHUP: the config file is read again. What each key does on a reload is
//! declared in `config::keys::KEYS`; this applies it to the running loop.

use std::path::PathBuf;

use tracing::warn;

use crate::adapters::postgres::TimeoutsHandle;
use crate::config::keys::{KEYS, OnReload};
use crate::config::{self, Settings};
use crate::daemon::logging::LevelHandle;
use crate::daemon::loop_config;
use crate::pass::run_loop::{LoopConfig, Reload};

/// Re-reads the config file on SIGHUP. Keys that need a restart are reported and
/// keep their running values.
pub struct FileReload {
    pub path: Option<PathBuf>,
    pub running: Settings,
    pub prefix_len: u8,
    pub level: Option<LevelHandle>,
    /// The PostgreSQL observer's timeouts, which follow `pg_timeout`.
    pub pg_timeouts: Option<TimeoutsHandle>,
}

impl Reload for FileReload {
    fn reload(&mut self) -> Result<LoopConfig, String> {
        let new = config::load(self.path.as_deref()).map_err(|e| e.to_string())?;
        for key in restart_only_changes(&self.running, &new) {
            warn!(
                key,
                "{key} changed in the config file, but only takes effect after a restart (systemctl restart vip-arbiter)"
            );
        }
        if new.log_level != self.running.log_level
            && let Some(level) = &self.level
        {
            level.set(&new.log_level)?;
        }
        let prefix_len = new.prefix_len.unwrap_or(self.prefix_len);
        let mut cfg = loop_config(&new, prefix_len);
        if let Some(t) = &self.pg_timeouts {
            t.set_pg_timeout(new.pg_timeout);
        }
        // The running adapters were built for these; keep them coherent.
        cfg.policy.node_id = self.running.node_id;
        if new.aws.enabled != self.running.aws.enabled {
            cfg.policy.cloud = loop_config(&self.running, prefix_len).policy.cloud;
        }
        if let Some(c) = cfg.policy.cloud.as_mut() {
            c.fence_configured = self.running.aws.fence_command.is_some();
        }
        // Keys that need a restart keep their running values in what we remember too.
        let mut new = new;
        for key in KEYS {
            if let OnReload::Restart { keep, .. } = key.reload {
                keep(&mut new, &self.running);
            }
        }
        self.running = new;
        Ok(cfg)
    }
}

/// The keys that changed and only take effect after a restart, in file order.
pub fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    KEYS.iter()
        .filter(|k| match k.reload {
            OnReload::Restart { changed, .. } => changed(old, new),
            OnReload::Applies => false,
        })
        .map(|k| k.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(extra: &str) -> Settings {
        let text = format!("vip = \"10.0.1.100\"\ninterface = \"ens5\"\nnode_id = 1\n{extra}");
        config::from_text(&text, Vec::new()).expect("a valid config")
    }

    #[test]
    fn a_changed_password_or_socket_access_is_reported_as_needing_a_restart() {
        let a = settings("conninfo = \"user=repmgr password=one\"\n");
        let b = settings("conninfo = \"user=repmgr password=two\"\n");
        assert_eq!(restart_only_changes(&a, &b), ["conninfo"]);
        assert!(restart_only_changes(&a, &a).is_empty());
        let c = settings(
            "conninfo = \"user=repmgr password=one\"\nkick_allow = [\"root\"]\nsocket_group = \"0\"\nsocket_mode = \"0600\"\n",
        );
        assert_eq!(
            restart_only_changes(&a, &c),
            ["socket_mode", "socket_group", "kick_allow"]
        );
    }

    #[test]
    fn a_rotated_password_file_needs_no_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (toml, pgpass) = (dir.path().join("va.toml"), dir.path().join("pgpass"));
        std::fs::write(
            &toml,
            "vip = \"10.0.1.100\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"user=repmgr\"\n",
        )
        .expect("write");
        let load = |pw: &str| {
            std::fs::write(&pgpass, format!("*:*:*:*:{pw}\n")).expect("write");
            std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
            config::load_from(Some(&toml), Vec::new(), Some(pgpass.clone())).expect("loads")
        };
        let (a, b) = (load("one"), load("two"));
        assert!(restart_only_changes(&a, &b).is_empty());
    }

    #[test]
    fn every_restart_only_key_is_reported_and_keeps_its_running_value() {
        let old = "vip = \"10.0.1.100\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"user=a\"\ninterval = \"1s\"\n";
        let new = "vip = \"10.0.1.101\"\ninterface = \"ens6\"\nnode_id = 2\nconninfo = \"user=b\"\n\
                   interval = \"2s\"\nsocket = \"/run/x.sock\"\nsocket_mode = \"0600\"\nsocket_group = \"0\"\n\
                   kick_allow = [\"root\"]\nlog_level = \"debug\"\n[aws]\nenabled = true\nfence_command = \"/bin/true\"\n";
        let (a, b) = (
            config::from_text(old, Vec::new()).expect("loads"),
            config::from_text(new, Vec::new()).expect("loads"),
        );
        assert_eq!(
            restart_only_changes(&a, &b),
            [
                "vip",
                "interface",
                "node_id",
                "conninfo",
                "socket",
                "socket_mode",
                "socket_group",
                "kick_allow",
                "aws.enabled",
                "aws.fence_command"
            ]
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("va.toml");
        std::fs::write(&path, new).expect("write");
        let mut reload = FileReload {
            path: Some(path),
            running: a.clone(),
            prefix_len: 24,
            level: None,
            pg_timeouts: None,
        };
        let cfg = reload.reload().expect("reloads");
        assert_eq!(cfg.interval, Duration::from_secs(2), "applies at once");
        assert_eq!(cfg.policy.node_id, 1);
        assert!(cfg.policy.cloud.is_none(), "aws.enabled needs a restart");
        let r = &reload.running;
        assert!(restart_only_changes(&a, r).is_empty(), "{r:?}");
        assert_eq!(
            (r.interval, r.log_level.as_str()),
            (Duration::from_secs(2), "debug")
        );
    }
}
