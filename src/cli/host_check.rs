//! `check-config` on this host, offline: what the validated config needs from the
//! machine it runs on. The interface exists (its MAC and addresses), the prefix can be
//! taken from it, the VIP is not already another interface's primary address, and the
//! repmgr.conf and .pgpass the daemon would read are readable by the service user
//! (the unit's `User=`), judged by each path's modes and owners against that user's
//! uid and groups (ACLs are not read). One finding a line; a `Fail` means the daemon
//! would not start (or could never hold the VIP), and check-config exits 78.

use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use crate::adapters::netlink::{AddrInfo, LinkInfo, Netlink};
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

fn ok(text: String) -> Finding {
    Finding {
        level: Level::Ok,
        text,
    }
}
fn warning(text: String) -> Finding {
    Finding {
        level: Level::Warning,
        text,
    }
}
fn fail(text: String) -> Finding {
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

/// Is `path` under what `ProtectHome=yes` hides from the daemon?
fn hidden_by_protect_home(path: &Path) -> bool {
    ["/home", "/root", "/run/user"]
        .iter()
        .any(|p| path.starts_with(p))
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
    out.extend(interface_checks(s).await);
    out.extend(crate::cli::http_check::listen_check(s.http.listen));
    if let Some(user) = &user {
        out.extend(file_checks(s, raw, unit, user, env));
    }
    out
}

async fn interface_checks(s: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    let found = async {
        let nl = Netlink::connect(&s.interface, s.vip)?;
        Ok::<_, crate::adapters::netlink::KernelError>((
            nl.links().await?,
            nl.all_addresses().await?,
        ))
    }
    .await;
    let (links, addrs) = match found {
        Ok(v) => v,
        Err(e) => {
            out.push(fail(format!("cannot list the interfaces: {e}")));
            return out;
        }
    };
    let name_of = |index: u32| {
        links
            .iter()
            .find(|l| l.index == index)
            .map_or_else(|| format!("interface #{index}"), |l| l.name.clone())
    };
    let Some(link) = links.iter().find(|l| l.name == s.interface) else {
        out.push(fail(format!(
            "interface {:?} does not exist on this host (there are: {})",
            s.interface,
            links
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
        out.extend(vip_elsewhere(s, None, &addrs, name_of));
        return out;
    };
    let own: Vec<&AddrInfo> = addrs.iter().filter(|a| a.index == link.index).collect();
    out.push(describe_link(link, &own));
    if !link.up {
        out.push(warning(format!(
            "interface {} is down: the VIP would not answer on it",
            link.name
        )));
    }
    match s.prefix_len {
        Some(p) => out.push(ok(format!("prefix_len /{p} (configured)"))),
        None => match own.iter().find(|a| a.addr != s.vip) {
            Some(a) => out.push(ok(format!(
                "prefix_len /{} from {}'s own address {}/{}",
                a.prefix_len, link.name, a.addr, a.prefix_len
            ))),
            None => out.push(fail(format!(
                "interface {} has no IPv4 address other than the VIP to take the prefix length from: \
                 set prefix_len or fix the interface",
                link.name
            ))),
        },
    }
    if let Some(a) = own.iter().find(|a| a.addr == s.vip) {
        out.push(ok(format!(
            "the VIP is on {} now ({}/{})",
            link.name, a.addr, a.prefix_len
        )));
    }
    out.extend(vip_elsewhere(s, Some(link.index), &addrs, name_of));
    out
}

fn describe_link(link: &LinkInfo, own: &[&AddrInfo]) -> Finding {
    let addrs = if own.is_empty() {
        "no IPv4 address".to_owned()
    } else {
        own.iter()
            .map(|a| format!("{}/{}", a.addr, a.prefix_len))
            .collect::<Vec<_>>()
            .join(", ")
    };
    ok(format!(
        "interface {} exists: mac {}, {}, {addrs}",
        link.name,
        link.mac.as_deref().unwrap_or("none"),
        if link.up { "up" } else { "down" }
    ))
}

/// The VIP on any interface but ours: a primary address there means the VIP is some
/// host's own address (a fail); a secondary one, someone else's alias (a warning).
fn vip_elsewhere(
    s: &Settings,
    ours: Option<u32>,
    addrs: &[AddrInfo],
    name_of: impl Fn(u32) -> String,
) -> Vec<Finding> {
    addrs
        .iter()
        .filter(|a| a.addr == s.vip && Some(a.index) != ours)
        .map(|a| {
            if a.secondary {
                warning(format!(
                    "the VIP {} is also a secondary address of {} ({}/{}): the daemon manages it on {} only",
                    s.vip,
                    name_of(a.index),
                    a.addr,
                    a.prefix_len,
                    s.interface
                ))
            } else {
                fail(format!(
                    "the VIP {} is already a primary address of {} ({}/{}): a VIP must be an address \
                     no interface owns",
                    s.vip,
                    name_of(a.index),
                    a.addr,
                    a.prefix_len
                ))
            }
        })
        .collect()
}

fn file_checks(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_unit_runs_as_postgres_with_protect_home() {
        let mut f = UnitFacts::default();
        parse_unit(SHIPPED_UNIT, &mut f);
        assert_eq!(f.user.as_deref(), Some("postgres"));
        assert_eq!(f.group.as_deref(), Some("postgres"));
        assert!(f.protect_home);
        // A drop-in overrides, the last assignment wins; other sections do not count.
        parse_unit(
            "[Unit]\nUser=nobody\n[Service]\nUser=repmgr\nProtectHome=read-only\nEnvironment=PGPASSFILE=/etc/pw \"A=b\"\n",
            &mut f,
        );
        assert_eq!(f.user.as_deref(), Some("repmgr"));
        assert!(!f.protect_home);
        assert_eq!(
            f.environment,
            [
                ("PGPASSFILE".to_owned(), "/etc/pw".to_owned()),
                ("A".to_owned(), "b".to_owned())
            ]
        );
    }

    #[test]
    fn readability_follows_modes_owners_and_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = Uid::effective().as_raw();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("write");
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
        };
        let gid = std::fs::metadata(&file).expect("stat").gid();
        let stranger = ServiceUser {
            name: "stranger".into(),
            uid: me.wrapping_add(12345),
            gid: 4_000_000,
            gids: vec![4_000_000],
            home: None,
        };
        let member = ServiceUser {
            gids: vec![gid],
            ..stranger.clone()
        };
        set(dir.path(), 0o755);
        set(&file, 0o644);
        assert_eq!(readable_by(&file, &stranger), Ok(()));
        set(&file, 0o640);
        assert!(readable_by(&file, &stranger).is_err_and(|e| e.contains("no read permission")));
        assert_eq!(readable_by(&file, &member), Ok(()));
        set(&file, 0o644);
        set(dir.path(), 0o700);
        let e = readable_by(&file, &stranger).unwrap_err();
        assert!(e.contains("no search permission"), "{e}");
        assert!(readable_by(&dir.path().join("none"), &stranger).is_err());
    }
}
