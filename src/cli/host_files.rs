//! `check-config`'s look at the files the daemon reads: the repmgr.conf (when
//! `node_id` or `conninfo` comes from it) and the `.pgpass`, readable by the service
//! user and not hidden by the unit's `ProtectHome=`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cli::host_check::{Finding, ServiceUser, UnitFacts, fail, ok, readable_by, warning};
use crate::config::Settings;
use crate::config::raw::RawConfig;

/// Is `path` under what `ProtectHome=yes` hides from the daemon?
fn hidden_by_protect_home(path: &Path) -> bool {
    ["/home", "/root", "/run/user"]
        .iter()
        .any(|p| path.starts_with(p))
}

pub(super) fn file_checks(
    s: &Settings,
    raw: &RawConfig,
    unit: &UnitFacts,
    user: &ServiceUser,
    env: &[(String, String)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let hidden = |p: &Path| unit.protect_home && hidden_by_protect_home(p);
    // repmgr.conf: read at start when node_id or conninfo is not set; unreadable = exit 78.
    if raw.node_id.is_none() || raw.conninfo.is_none() {
        let path = Path::new(&raw.repmgr_config);
        if hidden(path) {
            out.push(fail(format!(
                "repmgr_config {}: ProtectHome= in the unit hides it from the daemon",
                path.display()
            )));
        } else {
            match readable_by(path, user) {
                Ok(()) => out.push(ok(format!(
                    "repmgr_config {} is readable by {}",
                    path.display(),
                    user.name
                ))),
                Err(e) => out.push(fail(format!(
                    "repmgr_config {} is not readable by {}: {e}; the daemon would exit 78",
                    path.display(),
                    user.name
                ))),
            }
        }
    } else {
        out.push(ok(format!(
            "repmgr_config {} is not read (node_id and conninfo are set)",
            raw.repmgr_config
        )));
    }
    // .pgpass: only when neither the conninfo nor PGPASSWORD has the password.
    let lookup = |k: &str| {
        unit.environment
            .iter()
            .chain(env.iter())
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let conninfo_has_password =
        s.pg.conninfo_redacted
            .parse::<tokio_postgres::Config>()
            .is_ok_and(|c| c.get_password().is_some());
    if conninfo_has_password {
        out.push(ok(
            ".pgpass is not read (the conninfo has a password)".into()
        ));
        return out;
    }
    if lookup("PGPASSWORD").is_some_and(|p| !p.is_empty()) {
        out.push(ok(".pgpass is not read (PGPASSWORD is set)".into()));
        return out;
    }
    let (path, whence) = match lookup("PGPASSFILE") {
        Some(p) => (PathBuf::from(p), "PGPASSFILE"),
        None => match &user.home {
            Some(h) => (h.join(".pgpass"), "the service user's home"),
            None => {
                out.push(ok(format!(
                    "no .pgpass: {} has no home directory",
                    user.name
                )));
                return out;
            }
        },
    };
    let shown = path.display();
    if hidden(&path) {
        out.push(warning(format!(
            "{shown} ({whence}): ProtectHome= in the unit hides it from the daemon; \
             a password it holds is never used"
        )));
        return out;
    }
    let Ok(meta) = std::fs::metadata(&path) else {
        out.push(ok(format!(
            "no {shown} ({whence}): fine for peer or trust authentication"
        )));
        return out;
    };
    match readable_by(&path, user) {
        Err(e) => out.push(warning(format!(
            "{shown} ({whence}) is not readable by {}: {e}; a password it holds is never used",
            user.name
        ))),
        Ok(()) if meta.permissions().mode() & 0o077 != 0 => out.push(warning(format!(
            "{shown} ({whence}) is readable by group or others: ignored, as libpq does (chmod 0600 it)"
        ))),
        Ok(()) => out.push(ok(format!(
            "{shown} ({whence}) is readable by {}",
            user.name
        ))),
    }
    out
}
