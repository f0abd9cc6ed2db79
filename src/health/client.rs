//! The client side of the health socket, for `status`, `check` and `kick`.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

pub use crate::health::http::Response;
use crate::health::http::{self, ReadError};

/// Largest response read; a longer one is reported as malformed.
const MAX_RESPONSE: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("daemon not running (no socket at {0})")]
    NoSocket(String),
    #[error("daemon not running (connection refused on {0})")]
    Refused(String),
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("cannot talk to the daemon: {0}")]
    Io(io::Error),
    #[error("malformed response from the daemon: {0}")]
    Malformed(&'static str),
}

impl ClientError {
    /// The socket is missing or nobody listens on it: the daemon is not running.
    pub fn not_running(&self) -> bool {
        matches!(self, Self::NoSocket(_) | Self::Refused(_))
    }
}

/// One request, one response, bounded by `limit` as a whole.
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    limit: Duration,
) -> Result<Response, ClientError> {
    let bad = |s: &str| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic());
    if bad(method) || bad(path) || !path.starts_with('/') {
        return Err(ClientError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid request {method:?} {path:?}"),
        )));
    }
    tokio::time::timeout(limit, exchange(socket, method, path))
        .await
        .unwrap_or(Err(ClientError::Timeout(limit.as_millis())))
}

async fn exchange(socket: &Path, method: &str, path: &str) -> Result<Response, ClientError> {
    let shown = socket.display().to_string();
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ClientError::NoSocket(shown.clone()),
            io::ErrorKind::ConnectionRefused => ClientError::Refused(shown.clone()),
            _ => ClientError::Io(e),
        })?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(ClientError::Io)?;
    http::read_response(&mut stream, MAX_RESPONSE)
        .await
        .map_err(|e| match e {
            ReadError::Io(e) => ClientError::Io(e),
            ReadError::Malformed(what) => ClientError::Malformed(what),
        })
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
