//! What every listener of the daemon shares (the unix socket, `server`, and the TCP
//! endpoint, `tcp`): one request per connection, each in its own task, every read
//! and write bounded in time and size through the one parser (`http`), a cap on
//! connections served at once (past it, 503 at once; past a second cap, closed
//! unanswered), and a bounded drain at shutdown.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::health::http::{self, Parsed, Progress};

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

/// A listener: the unix socket's or the TCP one.
pub trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Peer: Send + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Self::Peer)>> + Send;
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    type Peer = ();
    async fn accept(&self) -> io::Result<(Self::Stream, ())> {
        tokio::net::UnixListener::accept(self)
            .await
            .map(|(s, _)| (s, ()))
    }
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    type Peer = std::net::SocketAddr;
    async fn accept(&self) -> io::Result<(Self::Stream, Self::Peer)> {
        tokio::net::TcpListener::accept(self).await
    }
}

/// Serve until `shutdown`: each connection to `handle` in its own task, under the
/// caps. A peer `refuse` answers for (`Some(response)`) gets that answer from the
/// refusals' pool, never one of the [`MAX_CONNECTIONS`] slots, so refused clients
/// cannot crowd out the others. At shutdown stop accepting, give in-flight
/// connections up to [`SHUTDOWN_GRACE`], abort the rest, return. `what` names the
/// listener in the log.
pub async fn serve<L, R, H, F>(
    listener: L,
    (refuse, handle): (R, H),
    shutdown: CancellationToken,
    what: &str,
) where
    L: Accept,
    R: Fn(&L::Peer) -> Option<Vec<u8>>,
    H: Fn(L::Stream, L::Peer) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "{what}: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let refused = refuse(&peer);
        if let Some(answer) = refused {
            if let Ok(permit) = refusals.clone().try_acquire_owned() {
                tasks.spawn(async move {
                    let mut stream = stream;
                    write(&mut stream, &answer).await;
                    drop(permit);
                });
            }
        } else if let Ok(permit) = slots.clone().try_acquire_owned() {
            let served = handle(stream, peer);
            tasks.spawn(async move {
                served.await;
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
            "{what}: aborting connections at shutdown"
        );
    }
    tasks.shutdown().await;
}

/// Read the request within [`READ_LIMIT`] (408 when it does not come), answer it
/// with `answer`, write the answer.
pub async fn exchange<S>(mut stream: S, answer: impl FnOnce(Result<Parsed, u16>) -> Vec<u8>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let response = match tokio::time::timeout(READ_LIMIT, read_request(&mut stream)).await {
        Err(_) => reply(408, "text/plain", "request not received in time\n", &[]),
        Ok(read) => answer(read),
    };
    write(&mut stream, &response).await;
}

/// Write the response (a client that does not read within [`WRITE_LIMIT`] is given
/// up on), then a lingering close: discard what the client still sends (bounded in
/// time and size), so closing with unread input does not turn our answer into a
/// connection reset on the client's side.
pub async fn write<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
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
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Parsed, u16> {
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

/// The refusal of a request that could not be read (its status, its reason).
pub fn refusal(status: u16) -> Vec<u8> {
    reply(
        status,
        "text/plain",
        &format!("{}\n", http::reason(status)),
        &[],
    )
}

/// A whole response, `Connection: close`.
pub fn reply(status: u16, ctype: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
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

/// `r` cut to its head (HEAD's answer: the head GET would have, Content-Length too).
pub fn head_only(mut r: Vec<u8>) -> Vec<u8> {
    if let Some(pos) = http::head_end(&r) {
        r.truncate(pos);
    }
    r
}
