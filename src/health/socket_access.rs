//! Who may use the health socket. The file is `socket_mode` (0660 by default), owned
//! by the service user and `socket_group`, so members of that group can read
//! `GET /health` and `GET /metrics`. Mutating endpoints (`POST /kick`) also check the
//! peer's uid, taken from the kernel with SO_PEERCRED, against an allow list: root,
//! the service user, and the users named in `kick_allow`.

use nix::unistd::{Gid, Group, Uid, User};

/// A user or group as configured: its name (or the number as written) and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub id: u32,
}

/// A group by name or number. A number need not exist in the group database.
pub fn resolve_group(text: &str) -> Result<Principal, String> {
    resolve(
        text,
        "group",
        |id| Group::from_gid(Gid::from_raw(id)).map(|g| g.map(|g| g.name)),
        |name| Group::from_name(name).map(|g| g.map(|g| (g.name, g.gid.as_raw()))),
    )
}

/// A user by name or number. A number need not exist in the user database.
pub fn resolve_user(text: &str) -> Result<Principal, String> {
    resolve(
        text,
        "user",
        |id| User::from_uid(Uid::from_raw(id)).map(|u| u.map(|u| u.name)),
        |name| User::from_name(name).map(|u| u.map(|u| (u.name, u.uid.as_raw()))),
    )
}

/// A number is kept (named from the database when it is there); a name must exist.
fn resolve(
    text: &str,
    kind: &str,
    name_of: impl Fn(u32) -> nix::Result<Option<String>>,
    by_name: impl Fn(&str) -> nix::Result<Option<(String, u32)>>,
) -> Result<Principal, String> {
    let text = text.trim();
    if let Ok(id) = text.parse::<u32>() {
        let name = name_of(id).ok().flatten().unwrap_or_else(|| id.to_string());
        return Ok(Principal { name, id });
    }
    match by_name(text) {
        Ok(Some((name, id))) => Ok(Principal { name, id }),
        Ok(None) => Err(format!("no {kind} named {text:?}")),
        Err(e) => Err(format!("cannot look up {kind} {text:?}: {e}")),
    }
}

/// The peer uids allowed to call mutating endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KickAllow {
    uids: Vec<u32>,
    service_uid: u32,
}

impl KickAllow {
    /// Root, the service user (this process's effective uid) and `extra`.
    pub fn new(extra: &[Principal]) -> Self {
        Self::with_service_uid(Uid::effective().as_raw(), extra)
    }

    pub fn with_service_uid(service_uid: u32, extra: &[Principal]) -> Self {
        let mut uids = vec![0, service_uid];
        uids.extend(extra.iter().map(|p| p.id));
        uids.sort_unstable();
        uids.dedup();
        KickAllow { uids, service_uid }
    }

    /// Operator endpoints (`POST /unfence`): root and the service user only, never
    /// `kick_allow`.
    pub fn allows_admin(&self, peer_uid: Option<u32>) -> bool {
        peer_uid.is_some_and(|uid| uid == 0 || uid == self.service_uid)
    }

    /// `None` (the kernel gave no credentials) is refused.
    pub fn allows(&self, peer_uid: Option<u32>) -> bool {
        peer_uid.is_some_and(|uid| self.uids.contains(&uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_service_user_always_allowed_and_nobody_else_by_default() {
        let a = KickAllow::with_service_uid(108, &[]);
        assert!(a.allows(Some(0)));
        assert!(a.allows(Some(108)));
        assert!(!a.allows(Some(1000)));
        assert!(!a.allows(None));
        let b = KickAllow::with_service_uid(
            108,
            &[Principal {
                name: "alice".into(),
                id: 1000,
            }],
        );
        assert!(b.allows(Some(1000)) && b.allows(Some(108)) && !b.allows(Some(1001)));
        assert!(b.allows_admin(Some(0)) && b.allows_admin(Some(108)));
        assert!(!b.allows_admin(Some(1000)) && !b.allows_admin(None));
    }

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(resolve_user("root").map(|p| p.id), Ok(0));
        assert_eq!(resolve_user("0").map(|p| p.name), Ok("root".into()));
        assert_eq!(resolve_group("root").map(|p| p.id), Ok(0));
        // A number with no database entry is kept as written.
        assert_eq!(
            resolve_user("4000000000"),
            Ok(Principal {
                name: "4000000000".into(),
                id: 4_000_000_000
            })
        );
        let e = resolve_user("no-such-user-va").unwrap_err();
        assert!(e.contains("no user named"), "{e}");
        let e = resolve_group("no-such-group-va").unwrap_err();
        assert!(e.contains("no group named"), "{e}");
    }
}
