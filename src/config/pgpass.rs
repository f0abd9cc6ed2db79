//! libpq's password file, since tokio-postgres does not read it: `PGPASSFILE` or
//! `~/.pgpass`, lines `host:port:database:user:password`, `*` wildcards, `\:` and
//! `\\` escapes, first match wins. Like libpq, a file readable by group or others is
//! ignored, and a unix-socket host matches the entry `localhost`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::secret::Secret;

/// What to look up.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// A hostname, or a unix-socket directory (starts with '/').
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The file libpq would read, from the environment.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass"))
}

/// Result of a lookup: the password, or why there is none worth a warning.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Debug shows a mask, never the password.
    Found(Secret),
    NotFound,
    /// The file exists but is group/world accessible; libpq ignores it too.
    Insecure(PathBuf),
}

pub fn lookup(path: &Path, t: &Target<'_>) -> Lookup {
    let Ok(meta) = std::fs::metadata(path) else {
        return Lookup::NotFound;
    };
    if meta.permissions().mode() & 0o077 != 0 {
        return Lookup::Insecure(path.to_owned());
    }
    match crate::config::small_file::read(path) {
        Ok(text) => find(&text, t).map_or(Lookup::NotFound, Lookup::Found),
        Err(_) => Lookup::NotFound,
    }
}

/// The first matching line's password. Lines that do not parse are skipped without
/// a word (libpq does the same): a message about them could only quote them.
pub fn find(text: &str, t: &Target<'_>) -> Option<Secret> {
    let host = if t.host.starts_with('/') {
        "localhost"
    } else {
        t.host
    };
    let port = t.port.to_string();
    let wanted = [host, port.as_str(), t.dbname, t.user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(fields)
        .find(|f| {
            f.iter()
                .zip(wanted)
                .all(|(have, want)| have == "*" || have == want)
        })
        .map(|mut f| Secret::new(f.swap_remove(4)))
}

/// Split one line into its five fields; `None` if it has fewer.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut()?.push(c),
        }
    }
    (out.len() == 5).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(text: &str, t: &Target<'_>) -> Option<String> {
        find(text, t).map(|s| s.expose().to_owned())
    }

    fn t<'a>(host: &'a str, user: &'a str) -> Target<'a> {
        Target {
            host,
            port: 5432,
            dbname: "repmgr",
            user,
        }
    }

    #[test]
    fn matches_with_wildcards_escapes_and_order() {
        let text = "# comment\nother:5432:*:repmgr:nope\nlocalhost:5432:repmgr:repmgr:s3cr\\:et\n*:*:*:*:fallback\n";
        assert_eq!(
            pw(text, &t("/var/run/postgresql", "repmgr")).as_deref(),
            Some("s3cr:et")
        );
        assert_eq!(
            pw(text, &t("localhost", "repmgr")).as_deref(),
            Some("s3cr:et")
        );
        assert_eq!(pw(text, &t("db1", "postgres")).as_deref(), Some("fallback"));
        assert_eq!(find("h:1:d:u\n", &t("h", "u")), None);
        assert_eq!(
            pw("a\\\\b:*:*:*:pw\n", &t("a\\b", "u")).as_deref(),
            Some("pw")
        );
    }

    #[test]
    fn insecure_file_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pgpass");
        std::fs::write(&p, "*:*:*:*:pw\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(lookup(&p, &t("x", "u")), Lookup::Insecure(p.clone()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(lookup(&p, &t("x", "u")), Lookup::Found(Secret::new("pw")));
        assert_eq!(
            lookup(&dir.path().join("missing"), &t("x", "u")),
            Lookup::NotFound
        );
    }
}
