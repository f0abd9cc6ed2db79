//! The socket file: what `run` (and `check-config`) refuses about its path, and
//! binding it (the parent directory made, a stale socket replaced, mode and group).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};

const PROBE_LIMIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("create directory {dir}: {source}")]
    Dir { dir: String, source: io::Error },
    #[error("{path} is in use: something listens on it (another vip-arbiter?); stop it first")]
    InUse { path: String },
    #[error("{path} exists and is not a socket; refusing to remove it")]
    NotASocket { path: String },
    /// `path_problem`'s finding, before anything is created.
    #[error("{0}")]
    Path(String),
    #[error("{path} is a socket but probing it failed ({source}); refusing to remove it")]
    Probe { path: String, source: io::Error },
    #[error("remove stale socket {path}: {source}")]
    Stale { path: String, source: io::Error },
    #[error("bind {path}: {source}")]
    Bind { path: String, source: io::Error },
    #[error("chmod {path}: {source}")]
    Chmod { path: String, source: io::Error },
    #[error("chgrp {path} to group {gid}: {source} (the service user must be a member of it)")]
    Chgrp {
        path: String,
        gid: u32,
        source: io::Error,
    },
}

impl SocketError {
    /// A problem with the configured path or group that no restart fixes: `run` exits
    /// 78 (EX_CONFIG) on it, so systemd does not restart into it.
    pub fn is_config(&self) -> bool {
        use nix::errno::Errno;
        let fixed = |e: &io::Error| {
            e.raw_os_error().is_some_and(|n| {
                [
                    Errno::ENOTDIR,
                    Errno::EEXIST,
                    Errno::EISDIR,
                    Errno::ENAMETOOLONG,
                    Errno::EACCES,
                    Errno::EROFS,
                ]
                .contains(&Errno::from_raw(n))
            })
        };
        match self {
            SocketError::NotASocket { .. } | SocketError::Path(_) | SocketError::Chgrp { .. } => {
                true
            }
            SocketError::Dir { source, .. } | SocketError::Bind { source, .. } => fixed(source),
            _ => false,
        }
    }
}

/// What [`bind`] would refuse about `path` itself, checked before anything is
/// created (and by `check-config`): something other than a socket there (a
/// directory, a regular file), or a parent that is not a directory. The length is the
/// config's rule (`socket`, at most 107 bytes).
pub fn path_problem(path: &Path) -> Option<String> {
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let ft = meta.file_type();
        if ft.is_socket() {
            return None;
        }
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_file() {
            "a regular file"
        } else if ft.is_symlink() {
            "a symbolic link"
        } else {
            "not a socket"
        };
        return Some(format!(
            "socket {shown} exists and is {what}: vip-arbiter never removes it; name a path \
             that is free or holds a socket"
        ));
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        if let Ok(meta) = std::fs::metadata(d) {
            if meta.is_dir() {
                return None;
            }
            return Some(format!(
                "socket {shown}: {} is not a directory, so the socket cannot be made there",
                d.display()
            ));
        }
        dir = d.parent();
    }
    None
}

/// Bind the socket: create the parent directory, replace a stale socket file (one
/// whose connect is refused: nobody listens), refuse when something listens on it,
/// then chmod and, when `group` is given, chgrp.
pub async fn bind(path: &Path, mode: u32, group: Option<u32>) -> Result<UnixListener, SocketError> {
    let shown = path.display().to_string();
    if let Some(problem) = path_problem(path) {
        return Err(SocketError::Path(problem));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SocketError::Dir {
            dir: dir.display().to_string(),
            source,
        })?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(SocketError::NotASocket { path: shown });
        }
        // Only a refused connect proves the file is stale. A connect that hangs (a
        // full backlog) means someone listens; any other error (EACCES on another
        // user's socket...) proves nothing, so the file is left alone.
        match tokio::time::timeout(PROBE_LIMIT, UnixStream::connect(path)).await {
            Ok(Ok(_)) | Err(_) => return Err(SocketError::InUse { path: shown }),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                match std::fs::remove_file(path) {
                    Ok(()) => tracing::info!(path = %shown, "replaced a stale health socket"),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(SocketError::Stale {
                            path: shown,
                            source,
                        });
                    }
                }
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Ok(Err(source)) => {
                return Err(SocketError::Probe {
                    path: shown,
                    source,
                });
            }
        }
    }
    let listener = UnixListener::bind(path).map_err(|source| SocketError::Bind {
        path: shown.clone(),
        source,
    })?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| SocketError::Chgrp {
            path: shown.clone(),
            gid,
            source,
        })?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        SocketError::Chmod {
            path: shown,
            source,
        }
    })?;
    Ok(listener)
}
