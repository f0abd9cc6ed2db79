//! HTTP/1.1 on a unix socket, so `curl --unix-socket SOCK http://localhost/health`
//! works: `GET /health`, `GET /metrics`, `POST /kick`. One request per connection,
//! each in its own task, every read and write bounded in time and size, and a cap on
//! connections served at once: a slow or hostile client never stalls the loop.
//! Anyone who may connect (the socket file's mode and group) may read; `POST /kick`
//! also needs the peer's uid (SO_PEERCRED) on the allow list (`socket_access`).

use std::sync::Arc;

use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::health::conn::{self, reply};
use crate::health::http::Parsed;

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

pub use crate::health::conn::{
    MAX_BODY, MAX_CONNECTIONS, MAX_HEAD, MAX_REFUSALS, READ_LIMIT, SHUTDOWN_GRACE, WRITE_LIMIT,
};

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
