//! The optional TCP endpoint (`[http] listen`), for load balancers and Prometheus:
//! read-only (GET, HEAD, OPTIONS; anything else 405), from the source networks in
//! `[http] allow` only (anyone else 403, unread). Routes: `/primary` (`/master`,
//! `/read-write`), `/replica`, `/read-only` (`?lag=` on the last two), `/health`,
//! `/metrics`; the answers are `roles`'. The same connection handling as the unix
//! socket (`conn`: one parser, limits, timeouts, the caps). `kick` and `unfence`
//! stay on the unix socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::health::conn::{self, reply};
use crate::health::http::Parsed;
use crate::health::roles;
use crate::health::state::{HealthState, Snapshot};
use crate::health::tcp_access::Allow;

/// What the endpoint answers from; implemented by the daemon's health state.
pub trait TcpSource: Send + Sync + 'static {
    /// The last snapshot and its age.
    fn snapshot(&self) -> Option<(Snapshot, Duration)>;
    /// As the unix socket's `GET /health`: converged, and the JSON.
    fn health(&self) -> (bool, String);
    /// As the unix socket's `GET /metrics`.
    fn metrics(&self) -> String;
}

impl TcpSource for HealthState {
    fn snapshot(&self) -> Option<(Snapshot, Duration)> {
        self.current_with_age()
    }
    fn health(&self) -> (bool, String) {
        self.health_json()
    }
    fn metrics(&self) -> String {
        self.metrics.prometheus()
    }
}

/// The endpoint's settings.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub allow: Allow,
    /// A snapshot older than this is unknown: the role routes answer 503.
    pub stale_after: Duration,
}

const ALLOW: &str = "GET, HEAD, OPTIONS";
const ROUTES: &str =
    "not found: try /primary, /replica, /read-only, /health or /metrics (GET, HEAD, OPTIONS)\n";

/// Bind `addr` (a failure is a start-up error).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn TcpSource>,
    endpoint: Endpoint,
    shutdown: CancellationToken,
) {
    let endpoint = Arc::new(endpoint);
    let allow = endpoint.allow.clone();
    let refuse = move |peer: &SocketAddr| {
        if allow.allows(peer.ip()) {
            return None;
        }
        tracing::debug!(peer = %peer, "http: refused a client outside [http] allow");
        let body = format!("forbidden: {} is not in [http] allow\n", peer.ip());
        Some(reply(403, "text/plain", &body, &[]))
    };
    let handle = move |stream: TcpStream, _: SocketAddr| {
        let (source, endpoint) = (source.clone(), endpoint.clone());
        async move {
            conn::exchange(stream, |read| match read {
                Err(status) => conn::refusal(status),
                Ok(req) => route(&req, source.as_ref(), &endpoint),
            })
            .await;
        }
    };
    conn::serve(listener, (refuse, handle), shutdown, "http endpoint").await;
}

/// The response to a parsed request.
pub fn route(req: &Parsed, source: &dyn TcpSource, endpoint: &Endpoint) -> Vec<u8> {
    let method = req.method.as_str();
    if !matches!(method, "GET" | "HEAD" | "OPTIONS") {
        let body =
            "method not allowed: this endpoint is read-only (kick and unfence: the unix socket)\n";
        return reply(405, "text/plain", body, &[("Allow", ALLOW)]);
    }
    let (status, ctype, body) = match req.path.as_str() {
        "/health" => {
            let (converged, json) = source.health();
            (if converged { 200 } else { 503 }, "application/json", json)
        }
        "/metrics" => (200, "text/plain; version=0.0.4", source.metrics()),
        path @ ("/primary" | "/master" | "/read-write" | "/replica" | "/read-only") => {
            let snap = source.snapshot();
            let (snap, stale) = (snap.as_ref(), endpoint.stale_after);
            match roles::lag_of(&req.query) {
                Err(e) => (400, "text/plain", format!("{e}\n")),
                Ok(lag) => match path {
                    "/replica" => roles::replica(snap, stale, lag),
                    "/read-only" => roles::read_only(snap, stale, lag),
                    _ => roles::primary(snap, stale),
                }
                .map_or_else(
                    |why| (503, "text/plain", format!("{why}\n")),
                    |what| (200, "text/plain", format!("{what}\n")),
                ),
            }
        }
        _ => (404, "text/plain", ROUTES.to_owned()),
    };
    match method {
        "OPTIONS" => reply(status, ctype, "", &[("Allow", ALLOW)]),
        "HEAD" => conn::head_only(reply(status, ctype, &body, &[])),
        _ => reply(status, ctype, &body, &[]),
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
