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

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::health::http::{self, Parsed, Progress};
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

pub const MAX_HEAD: usize = 8 * 1024;
pub const MAX_BODY: usize = 1024;
pub const READ_LIMIT: Duration = Duration::from_secs(2);
pub const WRITE_LIMIT: Duration = Duration::from_secs(2);
pub const MAX_CONNECTIONS: usize = 64;
/// Connections past the cap answered 503 at once; beyond this many such answers in
/// flight, new connections are closed unanswered.
pub const MAX_REFUSALS: usize = 256;
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
const PROBE_LIMIT: Duration = Duration::from_secs(1);
const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 64 * 1024;

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

/// Serve until `shutdown`. Then stop accepting (new connects are refused), give
/// in-flight connections up to [`SHUTDOWN_GRACE`] to finish, abort the rest, return.
/// The socket file is left in place; the next [`bind`] replaces it.
pub async fn serve(
    listener: UnixListener,
    source: Arc<dyn HealthSource>,
    kick_allow: KickAllow,
    shutdown: CancellationToken,
) {
    let kick_allow = Arc::new(kick_allow);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "health socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            let source = source.clone();
            let kick_allow = kick_allow.clone();
            tasks.spawn(async move {
                handle(stream, source.as_ref(), &kick_allow).await;
                drop(permit);
            });
        } else if let Ok(permit) = refusals.clone().try_acquire_owned() {
            tasks.spawn(async move {
                let mut stream = stream;
                let busy = reply(503, "text/plain", "too many connections\n", &[]);
                write(&mut stream, &busy).await;
                drop(permit);
            });
        } else {
            // A flood even the refusals cannot keep up with: close unanswered.
            drop(stream);
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            left = tasks.len(),
            "health socket: aborting connections at shutdown"
        );
    }
    tasks.shutdown().await;
}

async fn handle(mut stream: UnixStream, source: &dyn HealthSource, kick_allow: &KickAllow) {
    let peer_uid = stream.peer_cred().ok().map(|c| c.uid());
    let response = match tokio::time::timeout(READ_LIMIT, read_request(&mut stream)).await {
        Err(_) => reply(408, "text/plain", "request not received in time\n", &[]),
        Ok(read) => answer(read, source, kick_allow, peer_uid),
    };
    write(&mut stream, &response).await;
}

/// Write the response (a client that does not read within [`WRITE_LIMIT`] is given
/// up on), then a lingering close: discard what the client still sends (bounded in
/// time and size), so closing with unread input does not turn our answer into a
/// connection reset on the client's side.
async fn write(stream: &mut UnixStream, bytes: &[u8]) {
    let _ = tokio::time::timeout(WRITE_LIMIT, async {
        stream.write_all(bytes).await?;
        stream.shutdown().await
    })
    .await;
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    let _ = tokio::time::timeout(LINGER, async {
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Read the head (and a small body); `Err(status)` for a request to refuse.
async fn read_request(stream: &mut UnixStream) -> Result<Parsed, u16> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        match http::assess(&buf, MAX_HEAD, MAX_BODY) {
            Progress::Complete(req) => return Ok(req),
            Progress::Refuse(status) => return Err(status),
            Progress::NeedMore => {}
        }
        let n = stream.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The whole answer to what was read: a refusal or the routed response.
pub fn answer(
    read: Result<Parsed, u16>,
    source: &dyn HealthSource,
    kick_allow: &KickAllow,
    peer_uid: Option<u32>,
) -> Vec<u8> {
    match read {
        Err(status) => reply(
            status,
            "text/plain",
            &format!("{}\n", http::reason(status)),
            &[],
        ),
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
            tracing::debug!(peer_uid, "health socket: kick refused");
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
        "/unfence" if req.method == "POST" => (
            403,
            "text/plain",
            format!(
                "unfence refused: uid {} is not root or the service user\n",
                peer_uid.map_or("(unknown)".into(), |u| u.to_string())
            ),
            &[],
        ),
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
    let mut r = reply(status, ctype, &body, extra);
    if head_only && let Some(pos) = http::head_end(&r) {
        r.truncate(pos);
    }
    r
}

fn reply(status: u16, ctype: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        http::reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}
