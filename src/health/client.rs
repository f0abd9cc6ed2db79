//! The client side of the health socket, for `status`, `check` and `kick`.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Largest response read; a longer one is reported as malformed.
const MAX_RESPONSE: u64 = 4 << 20;

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
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(ClientError::Io)?;
    if raw.len() as u64 > MAX_RESPONSE {
        return Err(ClientError::Malformed("response too large"));
    }
    parse(&raw)
}

/// A whole `HTTP/1.x NNN reason` response; the body is cut to Content-Length and
/// must not be shorter.
pub(crate) fn parse(raw: &[u8]) -> Result<Response, ClientError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ClientError::Malformed("no end of head"))?;
    let head =
        std::str::from_utf8(&raw[..end]).map_err(|_| ClientError::Malformed("head not text"))?;
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next().unwrap_or_default().splitn(3, ' ');
    let (Some(version), Some(code)) = (status_line.next(), status_line.next()) else {
        return Err(ClientError::Malformed("no status line"));
    };
    let status = match code.parse::<u16>() {
        Ok(s) if version.starts_with("HTTP/1.") && code.len() == 3 && (100..600).contains(&s) => s,
        _ => return Err(ClientError::Malformed("bad status line")),
    };
    let mut body = &raw[end + 4..];
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>());
    match length {
        Some(Ok(n)) if n <= body.len() => body = &body[..n],
        Some(_) => return Err(ClientError::Malformed("body shorter than Content-Length")),
        None => {}
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
