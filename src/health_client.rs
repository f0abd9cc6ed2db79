//! The client side of the health socket, for `status`, `check` and `kick`.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

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
    #[error("malformed response from the daemon")]
    Malformed,
}

/// One request, one response, bounded by `limit` as a whole.
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    limit: Duration,
) -> Result<Response, ClientError> {
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
    let mut raw = Vec::new();
    stream
        .take(1 << 20)
        .read_to_end(&mut raw)
        .await
        .map_err(ClientError::Io)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Response, ClientError> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or(ClientError::Malformed)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(ClientError::Malformed)?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}
