//! The one HTTP/1.x head parser, for both sides: the health socket's requests
//! (`assess`, for the server) and the answers its client and the IMDS client read
//! (`assess_response`, `read_response`). It finds the end of the head, parses the
//! request or status line and the header lines, and the one header that matters
//! (Content-Length); each caller passes its own size limits and keeps its own
//! timeouts. Pure functions but for `read_response`, the one read loop of both
//! clients; anything unexpected is an error, never a panic. Lines may end in CRLF
//! or, tolerantly (RFC 9112 §2.2), a bare LF, so `printf 'GET /health HTTP/1.0\n\n'`
//! piped into socat works too.
//!
//! It lives in `health` (the socket is most of its use) and depends on nothing else
//! in the crate, so `adapters::ec2::imds` using it adds no arrow to the layering:
//! the adapters already report to `health::metrics`.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// What is wrong with a head. A server answers it with [`Bad::status`]; a client
/// reports [`Bad::what`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// The head is not UTF-8.
    NotText,
    /// A malformed request line or status line.
    StartLine,
    /// `HTTP/` with a version other than 1.0 or 1.1.
    Version,
    /// A header line that is not `token: value`.
    Field,
    /// A Content-Length that is not digits, or two that differ.
    Length,
    /// Transfer-Encoding: no chunked bodies here.
    Chunked,
}

impl Bad {
    /// The status a server refuses such a request with.
    pub fn status(self) -> u16 {
        match self {
            Bad::Version => 505,
            Bad::Chunked => 411,
            Bad::NotText | Bad::StartLine | Bad::Field | Bad::Length => 400,
        }
    }

    /// What is wrong with such a response, for the client's error.
    pub fn what(self) -> &'static str {
        match self {
            Bad::NotText => "head not text",
            Bad::StartLine => "bad status line",
            Bad::Version => "not HTTP/1.x",
            Bad::Field => "malformed header line",
            Bad::Length => "bad Content-Length",
            Bad::Chunked => "Transfer-Encoding is not supported",
        }
    }
}

/// The parts of a request the router uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub method: String,
    pub path: String,
    /// The query after `?` (without it; empty when none), fragment dropped.
    pub query: String,
    pub content_length: usize,
}

/// Where reading a request stands, given everything received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Nothing wrong yet; read more.
    NeedMore,
    /// Answer with this status and close.
    Refuse(u16),
    /// The head and a body of its Content-Length have arrived.
    Complete(Parsed),
}

/// Judge the bytes received so far: a head larger than `max_head` (431) or a body
/// larger than `max_body` (413) is refused, a bad request line is refused as soon as
/// it is complete (without waiting for a blank line that may never come).
pub fn assess(buf: &[u8], max_head: usize, max_body: usize) -> Progress {
    if let Some(end) = head_end(buf) {
        if end > max_head {
            return Progress::Refuse(431);
        }
        let req = match parse_head(&buf[..end]) {
            Ok(req) => req,
            Err(status) => return Progress::Refuse(status),
        };
        if req.content_length > max_body {
            return Progress::Refuse(413);
        }
        return if buf.len() - end >= req.content_length {
            Progress::Complete(req)
        } else {
            Progress::NeedMore
        };
    }
    if let Some(Err(status)) = check_request_line(buf) {
        return Progress::Refuse(status);
    }
    if buf.len() > max_head {
        return Progress::Refuse(431);
    }
    Progress::NeedMore
}

/// Index just past the empty line that ends the head, if it has arrived.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().find_map(|(i, b)| {
        if *b != b'\n' {
            return None;
        }
        match &buf[i + 1..] {
            [b'\n', ..] => Some(i + 2),
            [b'\r', b'\n', ..] => Some(i + 3),
            _ => None,
        }
    })
}

/// The request line alone, as soon as it is complete: lets garbage be refused
/// without waiting for a blank line that may never come. `None` while incomplete.
pub fn check_request_line(buf: &[u8]) -> Option<Result<(), u16>> {
    let checked = first_line(buf)?.and_then(|l| request_line(l).map(|_| ()));
    Some(checked.map_err(Bad::status))
}

/// Parse a complete request head; `Err(status)` for a malformed one.
pub fn parse_head(head: &[u8]) -> Result<Parsed, u16> {
    let ((method, (path, query)), content_length) =
        parse(head, request_line).map_err(Bad::status)?;
    Ok(Parsed {
        method: method.to_owned(),
        path,
        query,
        content_length: content_length.unwrap_or(0),
    })
}

/// A whole response: its status and its body (cut to Content-Length; read to the
/// close without one), the body as text with anything not UTF-8 replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Where reading a response stands, given everything received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Nothing wrong yet; read more.
    NeedMore,
    /// Not an answer to use; what is wrong.
    Malformed(&'static str),
    /// The head and its body have arrived.
    Complete(Response),
}

/// Judge a response received so far (`closed`: the peer has closed, nothing more
/// will come); more than `max` bytes in all is too large. The answer ends at its
/// Content-Length, so a server that keeps the connection open is fine; without one
/// it ends at the close. A bad status line is judged as soon as it is complete.
/// Never `NeedMore` once `closed`.
pub fn assess_response(buf: &[u8], closed: bool, max: usize) -> Answer {
    const TOO_LARGE: Answer = Answer::Malformed("response too large");
    let Some(end) = head_end(buf) else {
        if let Some(Err(bad)) = first_line(buf).map(|l| l.and_then(status_line)) {
            return Answer::Malformed(bad.what());
        }
        return match () {
            () if buf.len() > max => TOO_LARGE,
            () if closed => Answer::Malformed("closed before the end of the head"),
            () => Answer::NeedMore,
        };
    };
    if end > max {
        return TOO_LARGE;
    }
    let (status, content_length) = match parse_response_head(&buf[..end]) {
        Ok(parsed) => parsed,
        Err(bad) => return Answer::Malformed(bad.what()),
    };
    let body = &buf[end..];
    let complete = |body: &[u8]| {
        Answer::Complete(Response {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        })
    };
    match content_length {
        Some(n) if n > max.saturating_sub(end) => TOO_LARGE,
        Some(n) if body.len() >= n => complete(&body[..n]),
        Some(_) if closed => Answer::Malformed("body shorter than Content-Length"),
        _ if buf.len() > max => TOO_LARGE,
        None if closed => complete(body),
        _ => Answer::NeedMore,
    }
}

/// Parse a complete response head: the status and the Content-Length (`None`
/// when absent).
pub fn parse_response_head(head: &[u8]) -> Result<(u16, Option<usize>), Bad> {
    parse(head, status_line)
}

/// Why [`read_response`] has no response.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(io::Error),
    #[error("{0}")]
    Malformed(&'static str),
}

/// Read one response from `stream` (after the request was written), at most `max`
/// bytes of it. Not bounded in time: the caller bounds the whole exchange.
pub async fn read_response<R: AsyncRead + Unpin>(
    stream: &mut R,
    max: usize,
) -> Result<Response, ReadError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(ReadError::Io)?;
        buf.extend_from_slice(&chunk[..n]);
        match assess_response(&buf, n == 0, max) {
            Answer::NeedMore => {}
            Answer::Malformed(what) => return Err(ReadError::Malformed(what)),
            Answer::Complete(r) => return Ok(r),
        }
    }
}

/// The first line, once it has arrived (`None` before), without its line end.
fn first_line(buf: &[u8]) -> Option<Result<&str, Bad>> {
    let end = buf.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| Bad::NotText);
    Some(line.map(|l| l.strip_suffix('\r').unwrap_or(l)))
}

/// A complete head: the start line as `start` reads it and the Content-Length
/// (`None` when absent). Header lines must be
/// `token: value`; a repeated Content-Length must agree; Transfer-Encoding is
/// refused (no chunked bodies here).
fn parse<'a, T>(
    head: &'a [u8],
    start: impl FnOnce(&'a str) -> Result<T, Bad>,
) -> Result<(T, Option<usize>), Bad> {
    let text = std::str::from_utf8(head).map_err(|_| Bad::NotText)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = start(lines.next().ok_or(Bad::StartLine)?)?;
    let mut content_length: Option<usize> = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(Bad::Field)?;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(Bad::Field);
        }
        if name.eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Bad::Length);
            }
            // Huge values saturate: still "too large", never a parse error.
            let n = value.parse().unwrap_or(usize::MAX);
            if content_length.is_some_and(|seen| seen != n) {
                return Err(Bad::Length);
            }
            content_length = Some(n);
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Bad::Chunked);
        }
    }
    Ok((start, content_length))
}

/// `HTTP/1.x SP 3DIGIT [SP reason]`: the status, 100 to 599.
fn status_line(line: &str) -> Result<u16, Bad> {
    let mut parts = line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(Bad::StartLine);
    };
    version_of(version)?;
    let digits = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
    match code.parse::<u16>() {
        Ok(s) if digits && (100..600).contains(&s) => Ok(s),
        _ => Err(Bad::StartLine),
    }
}

/// `HTTP/1.1` or `HTTP/1.0`; another `HTTP/d.d` is [`Bad::Version`].
fn version_of(version: &str) -> Result<(), Bad> {
    if matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Ok(());
    }
    let other_http = version.len() == 8
        && version.starts_with("HTTP/")
        && version[5..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.');
    Err(if other_http {
        Bad::Version
    } else {
        Bad::StartLine
    })
}

/// `METHOD SP target SP HTTP/1.x`: the method, the path and the query (fragment
/// dropped). The target may be origin-form (`/health`) or absolute-form
/// (`http://localhost/health`).
fn request_line(line: &str) -> Result<(&str, (String, String)), Bad> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Bad::StartLine);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Bad::StartLine);
    }
    version_of(version)?;
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Bad::StartLine);
    }
    let origin = match target.find("://") {
        Some(i) if target[..i].eq_ignore_ascii_case("http") => {
            let after_host = &target[i + 3..];
            after_host.find('/').map_or("/", |j| &after_host[j..])
        }
        _ => target,
    };
    if !origin.starts_with('/') {
        return Err(Bad::StartLine);
    }
    let origin = origin.split('#').next().unwrap_or(origin);
    let (path, query) = origin.split_once('?').unwrap_or((origin, ""));
    Ok((method, (path.to_owned(), query.to_owned())))
}

/// RFC 9110 token characters (header field names).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
