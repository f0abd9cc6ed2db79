//! HTTP/1.1 on a unix socket, so `curl --unix-socket SOCK http://localhost/health`
//! works: `GET /health`, `GET /metrics`, `POST /kick`. One request per connection,
//! each in its own task, every read and write bounded in time and size, and a cap on
//! connections served at once: a slow or hostile client never stalls the loop.
//! Anyone who may connect (the socket file's mode and group) may read; `POST /kick`
//! also needs the peer's uid (SO_PEERCRED) on the allow list (`socket_access`).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::health::conn::{self, reply};
use crate::health::http::Parsed;
use crate::health::socket_access::KickAllow;

/// What the socket serves; implemented by the daemon's health state.
pub trait HealthSource: Send + Sync + 'static {
    /// Whether converged (200) or not (503), and the JSON body of `GET /health`.
    fn health(&self) -> (bool, String);
    /// Prometheus text for `GET /metrics`.
    fn metrics(&self) -> String;
    /// Ask for a pass now; cheap, never blocks.
    fn kick(&self);
    /// The operator clears a stale-primary fence (`vip-arbiter unfence`); the loop
    /// acts on it at its next pass.
    fn unfence(&self);
}

pub use crate::health::conn::{
    MAX_BODY, MAX_CONNECTIONS, MAX_HEAD, MAX_REFUSALS, READ_LIMIT, SHUTDOWN_GRACE, WRITE_LIMIT,
};
const PROBE_LIMIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("create directory {dir}: {source}")]
    Dir { dir: String, source: io::Error },
    #[error("{path} is in use: something listens on it (another vip-arbiter?); stop it first")]
    InUse { path: String },
    #[error("{path} exists and is not a socket; refusing to remove it")]
    NotASocket { path: String },
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

/// Bind the socket: create the parent directory, replace a stale socket file (one
/// whose connect is refused: nobody listens), refuse when something listens on it,
/// then chmod and, when `group` is given, chgrp.
pub async fn bind(path: &Path, mode: u32, group: Option<u32>) -> Result<UnixListener, SocketError> {
    let shown = path.display().to_string();
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

/// Serve until `shutdown` (`conn::serve`: caps, limits, the drain at shutdown).
/// The socket file is left in place; the next [`bind`] replaces it.
pub async fn serve(
    listener: UnixListener,
    source: Arc<dyn HealthSource>,
    kick_allow: KickAllow,
    shutdown: CancellationToken,
) {
    let kick_allow = Arc::new(kick_allow);
    let handle = move |stream: UnixStream, (): ()| {
        let (source, kick_allow) = (source.clone(), kick_allow.clone());
        async move {
            let peer_uid = stream.peer_cred().ok().map(|c| c.uid());
            conn::exchange(stream, |read| {
                answer(read, source.as_ref(), &kick_allow, peer_uid)
            })
            .await;
        }
    };
    let refuse = |(): &()| None;
    conn::serve(listener, (refuse, handle), shutdown, "health socket").await;
}

/// The whole answer to what was read: a refusal or the routed response.
pub fn answer(
    read: Result<Parsed, u16>,
    source: &dyn HealthSource,
    kick_allow: &KickAllow,
    peer_uid: Option<u32>,
) -> Vec<u8> {
    match read {
        Err(status) => conn::refusal(status),
        Ok(req) => route(&req, source, kick_allow, peer_uid),
    }
}

/// The response to a parsed request from a peer with uid `peer_uid` (`None`: unknown).
fn route(
    req: &Parsed,
    source: &dyn HealthSource,
    kick_allow: &KickAllow,
    peer_uid: Option<u32>,
) -> Vec<u8> {
    let head_only = req.method == "HEAD";
    let get = req.method == "GET" || head_only;
    let (status, ctype, body, extra): (u16, &str, String, &[(&str, &str)]) = match req.path.as_str()
    {
        "/health" if get => {
            let (converged, json) = source.health();
            (
                if converged { 200 } else { 503 },
                "application/json",
                json,
                &[],
            )
        }
        "/metrics" if get => (200, "text/plain; version=0.0.4", source.metrics(), &[]),
        "/kick" if req.method == "POST" && kick_allow.allows(peer_uid) => {
            source.kick();
            (202, "application/json", "{\"kicked\":true}".into(), &[])
        }
        "/kick" if req.method == "POST" => {
            tracing::warn!(
                peer_uid,
                "health socket: kick refused: uid {} is not root, the service user or in kick_allow",
                peer_uid.map_or("(unknown)".into(), |u| u.to_string())
            );
            (
                403,
                "text/plain",
                format!(
                    "kick refused: uid {} is not root, the service user or in kick_allow\n",
                    peer_uid.map_or("(unknown)".into(), |u| u.to_string())
                ),
                &[],
            )
        }
        "/unfence" if req.method == "POST" && kick_allow.allows_admin(peer_uid) => {
            tracing::warn!(peer_uid, "health socket: unfence asked for");
            source.unfence();
            (202, "application/json", "{\"unfence\":true}".into(), &[])
        }
        "/unfence" if req.method == "POST" => {
            let uid = peer_uid.map_or("(unknown)".into(), |u| u.to_string());
            tracing::warn!(
                peer_uid,
                "health socket: unfence refused: uid {uid} is not root or the service user"
            );
            (
                403,
                "text/plain",
                format!("unfence refused: uid {uid} is not root or the service user\n"),
                &[],
            )
        }
        "/health" | "/metrics" => (
            405,
            "text/plain",
            "method not allowed\n".into(),
            &[("Allow", "GET, HEAD")],
        ),
        "/kick" | "/unfence" => (
            405,
            "text/plain",
            "method not allowed\n".into(),
            &[("Allow", "POST")],
        ),
        _ => (
            404,
            "text/plain",
            "not found: try /health, /metrics, POST /kick or POST /unfence\n".into(),
            &[],
        ),
    };
    let r = reply(status, ctype, &body, extra);
    if head_only { conn::head_only(r) } else { r }
}
