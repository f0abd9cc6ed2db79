//! `check-config` on this host, offline: what the validated config needs from the
//! machine it runs on. The interface and the VIP beside its own address, and the
//! socket path (host_interface.rs: what `run` refuses at start); the repmgr.conf and
//! .pgpass the daemon would read are readable by the service user (host_files.rs; the
//! unit's `User=`, here), judged by each path's modes and owners against that user's
//! uid and groups (ACLs are not read). One finding a line; a `Fail` means the daemon
//! would not start (or could never hold the VIP), and check-config exits 78.

use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::Settings;
use crate::config::raw::RawConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// The daemon starts, but something will not work as meant.
    Warning,
    /// The daemon would not start, or could never hold the VIP.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.level {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Fail => "FAIL",
        };
        write!(
            f,
            "{label}: {}",
            crate::cli::client_socket::one_line(&self.text)
        )
    }
}

pub(super) fn ok(text: String) -> Finding {
    Finding {
        level: Level::Ok,
        text,
    }
}
pub(super) fn warning(text: String) -> Finding {
    Finding {
        level: Level::Warning,
        text,
    }
}
pub(super) fn fail(text: String) -> Finding {
    Finding {
        level: Level::Fail,
        text,
    }
}

/// The unit files systemd would use, most important first (only the main file of the
/// first one found, then its drop-ins in /etc).
const UNIT_PATHS: [&str; 4] = [
    "/etc/systemd/system/vip-arbiter.service",
    "/run/systemd/system/vip-arbiter.service",
    "/usr/lib/systemd/system/vip-arbiter.service",
    "/lib/systemd/system/vip-arbiter.service",
];
const DROP_IN_DIR: &str = "/etc/systemd/system/vip-arbiter.service.d";
/// When no unit is installed: what the package would install.
const SHIPPED_UNIT: &str = include_str!("../../systemd/vip-arbiter.service");

/// What check-config needs from the unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFacts {
    /// Where it was read ("the shipped unit" when none is installed).
    pub from: String,
    pub user: Option<String>,
    pub group: Option<String>,
    /// `ProtectHome=` hides /home, /root and /run/user (yes, true, tmpfs).
    pub protect_home: bool,
    /// `Environment=` assignments.
    pub environment: Vec<(String, String)>,
}

/// The `[Service]` keys we need, the last assignment winning (as in systemd).
pub fn parse_unit(text: &str, facts: &mut UnitFacts) {
    let mut in_service = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "User" => facts.user = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "Group" => facts.group = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "ProtectHome" => {
                facts.protect_home = matches!(value, "yes" | "true" | "on" | "1" | "tmpfs");
            }
            "Environment" if value.is_empty() => facts.environment.clear(),
            "Environment" => {
                for word in value.split_whitespace() {
                    let word = word.trim_matches('"');
                    if let Some((k, v)) = word.split_once('=') {
                        facts.environment.retain(|(old, _)| old != k);
                        facts.environment.push((k.to_owned(), v.to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The installed unit (and its /etc drop-ins), else the shipped one.
pub fn unit_facts() -> UnitFacts {
    let mut facts = UnitFacts::default();
    let main = UNIT_PATHS.iter().find_map(|p| {
        crate::config::small_file::read(Path::new(p))
            .ok()
            .map(|t| (*p, t))
    });
    match main {
        Some((path, text)) => {
            facts.from = path.to_owned();
            parse_unit(&text, &mut facts);
            let mut drop_ins: Vec<PathBuf> = std::fs::read_dir(DROP_IN_DIR)
                .map(|d| {
                    d.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                        .collect()
                })
                .unwrap_or_default();
            drop_ins.sort();
            for p in drop_ins {
                if let Ok(text) = crate::config::small_file::read(&p) {
                    facts.from.push_str(&format!(" + {}", p.display()));
                    parse_unit(&text, &mut facts);
                }
            }
        }
        None => {
            facts.from = "the shipped unit (none installed)".into();
            parse_unit(SHIPPED_UNIT, &mut facts);
        }
    }
    facts
}

/// The user the daemon runs as, with what the kernel checks file access against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Primary and supplementary groups.
    pub gids: Vec<u32>,
    pub home: Option<PathBuf>,
}

/// `--service-user` (with its own groups), else the unit's `User=` (with the unit's
/// `Group=`, when set, as its primary group).
pub fn service_user(flag: Option<&str>, unit: &UnitFacts) -> Result<(ServiceUser, String), String> {
    let (text, whence) = match (flag, &unit.user) {
        (Some(f), _) => (f.to_owned(), "--service-user".to_owned()),
        (None, Some(u)) => (u.clone(), format!("User= in {}", unit.from)),
        (None, None) => ("root".to_owned(), format!("no User= in {}", unit.from)),
    };
    let p = crate::health::socket_access::resolve_user(&text)
        .map_err(|e| format!("service user: {e} ({whence})"))?;
    let entry = User::from_uid(Uid::from_raw(p.id)).ok().flatten();
    let mut gid = entry.as_ref().map_or(p.id, |u| u.gid.as_raw());
    // The unit's Group= goes with its User=; --service-user is judged with its own groups.
    if let (None, Some(g)) = (flag, &unit.group) {
        gid = crate::health::socket_access::resolve_group(g)
            .map_err(|e| format!("service group: {e} (Group= in {})", unit.from))?
            .id;
    }
    let mut gids = vec![gid];
    if let Some(u) = &entry
        && let Ok(name) = std::ffi::CString::new(u.name.clone())
        && let Ok(list) = nix::unistd::getgrouplist(&name, Gid::from_raw(gid))
    {
        gids.extend(list.into_iter().map(Gid::as_raw));
    }
    gids.sort_unstable();
    gids.dedup();
    Ok((
        ServiceUser {
            name: p.name,
            uid: p.id,
            gid,
            gids,
            home: entry.map(|u| u.dir),
        },
        whence,
    ))
}

/// Can `user` open `path` for reading? Every directory on the way needs search (x),
/// the file itself read (r), for the class the user falls in (owner, group, other).
/// Root is judged by the modes too: the unit keeps only CAP_NET_ADMIN.
pub fn readable_by(path: &Path, user: &ServiceUser) -> Result<(), String> {
    if Uid::effective().as_raw() == user.uid {
        // We are that user: just try.
        return std::fs::File::open(path)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let real = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let class_bits = |meta: &std::fs::Metadata| {
        let mode = meta.permissions().mode();
        if meta.uid() == user.uid {
            (mode >> 6) & 7
        } else if user.gids.contains(&meta.gid()) {
            (mode >> 3) & 7
        } else {
            mode & 7
        }
    };
    let mut dir = PathBuf::from("/");
    let parent = real.parent().unwrap_or(Path::new("/"));
    for part in std::iter::once(Path::new("/")).chain(
        parent
            .components()
            .skip(1)
            .map(|c| Path::new(c.as_os_str())),
    ) {
        if part != Path::new("/") {
            dir.push(part);
        }
        let meta = std::fs::metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if class_bits(&meta) & 1 == 0 {
            return Err(format!("no search permission on {}", describe(&dir, &meta)));
        }
    }
    let meta = std::fs::metadata(&real).map_err(|e| e.to_string())?;
    if class_bits(&meta) & 4 == 0 {
        return Err(format!("no read permission on {}", describe(&real, &meta)));
    }
    Ok(())
}

/// "path (mode 0600, owner 0:0)" with names where they exist.
fn describe(path: &Path, meta: &std::fs::Metadata) -> String {
    let owner = User::from_uid(Uid::from_raw(meta.uid()))
        .ok()
        .flatten()
        .map_or(meta.uid().to_string(), |u| u.name);
    let group = Group::from_gid(Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .map_or(meta.gid().to_string(), |g| g.name);
    format!(
        "{} (mode {:04o}, {owner}:{group})",
        path.display(),
        meta.permissions().mode() & 0o7777
    )
}

/// `check` for the config at `path` (None: the default), in this process's environment.
pub async fn for_config(
    s: &Settings,
    path: Option<&Path>,
    user_flag: Option<&str>,
) -> Vec<Finding> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let raw = match crate::config::raw::load_raw(path, env.clone()) {
        Ok((raw, _)) => raw,
        Err(e) => return vec![fail(format!("the config changed while being read: {e}"))],
    };
    check(s, &raw, &unit_facts(), user_flag, &env).await
}

/// Everything checked, in order. `raw` is the merged config (for `repmgr_config` and
/// which keys were set); `env` the environment check-config runs in.
pub async fn check(
    s: &Settings,
    raw: &RawConfig,
    unit: &UnitFacts,
    user_flag: Option<&str>,
    env: &[(String, String)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let user = match service_user(user_flag, unit) {
        Ok((u, whence)) => {
            out.push(ok(format!(
                "service user {} (uid {}, groups {}; {whence})",
                u.name,
                u.uid,
                u.gids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )));
            Some(u)
        }
        Err(e) => {
            out.push(fail(format!("{e}: systemd would not start the unit")));
            None
        }
    };
    out.extend(crate::cli::host_interface::interface_checks(s).await);
    out.push(crate::cli::host_interface::socket_check(&s.socket));
    out.extend(crate::cli::http_check::listen_check(s.http.listen));
    if let Some(user) = &user {
        out.extend(crate::cli::host_interface::socket_group_check(s, user));
        out.extend(crate::cli::host_files::file_checks(s, raw, unit, user, env));
    }
    out
}

#[cfg(test)]
#[path = "host_check_tests.rs"]
mod tests;
