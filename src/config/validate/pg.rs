//! `node_id` and `conninfo`: explicit keys win, else repmgr.conf supplies them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Problems;
use crate::config::conninfo::pg_config;
use crate::config::raw::RawConfig;
use crate::config::secret::Secret;
use crate::config::{PgSettings, repmgr_conf};

/// node_id and conninfo: explicit keys win, else repmgr.conf supplies them.
pub(super) fn node_and_conninfo(
    p: &mut Problems,
    raw: &RawConfig,
    pg_timeout: Option<Duration>,
    (env_password, pgpass_path): (Option<&Secret>, Option<PathBuf>),
    warnings: &mut Vec<String>,
) -> (Option<i32>, Option<PgSettings>) {
    let needs_repmgr = raw.node_id.is_none() || raw.conninfo.is_none();
    let repmgr = if needs_repmgr {
        match crate::config::small_file::read(Path::new(&raw.repmgr_config)) {
            Ok(text) => p.take(
                "repmgr_config",
                repmgr_conf::parse(&text).map_err(|e| format!("{}: {e}", raw.repmgr_config)),
            ),
            Err(e) => p.take(
                "repmgr_config",
                Err(format!(
                    "cannot read {} ({e}); set node_id and conninfo explicitly or fix the path",
                    raw.repmgr_config
                )),
            ),
        }
    } else {
        None
    };
    let from_repmgr = |k: &str| repmgr.as_ref().and_then(|m| m.get(k).cloned());
    let node_id = match raw
        .node_id
        .map(|n| n.to_string())
        .or_else(|| from_repmgr("node_id"))
    {
        Some(s) => p.take(
            "node_id",
            s.parse::<i32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{s:?} is not a positive integer")),
        ),
        None if repmgr.is_some() => p.take(
            "node_id",
            Err(format!("not set, and {} has no node_id", raw.repmgr_config)),
        ),
        None => None,
    };
    let conninfo = match raw
        .conninfo
        .as_ref()
        .map(|c| c.expose().to_owned())
        .or_else(|| from_repmgr("conninfo"))
    {
        Some(c) => Some(c),
        None if repmgr.is_some() => p.take(
            "conninfo",
            Err(format!(
                "not set, and {} has no conninfo",
                raw.repmgr_config
            )),
        ),
        None => None,
    };
    let pg = conninfo.and_then(|c| {
        p.take(
            "conninfo",
            pg_config(&c, pg_timeout, env_password, pgpass_path, warnings),
        )
    });
    (node_id, pg)
}
