//! HTTP/1.1 on a unix socket, so `curl --unix-socket SOCK http://localhost/health`
//! works: `GET /health`, `GET /metrics`, `POST /kick`. One request per connection,
//! each in its own task, every read and write bounded in time and size, and a cap on
//! connections served at once: a slow or hostile client never stalls the loop.
//! Anyone who may connect (the socket file's mode and group) may read; `POST /kick`
//! also needs the peer's uid (SO_PEERCRED) on the allow list (`socket_access`).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::health::http::{self, Parsed, Progress};

mod bind;
use crate::health::socket_access::KickAllow;
pub use bind::{SocketError, bind, path_problem};

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
const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 64 * 1024;

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
