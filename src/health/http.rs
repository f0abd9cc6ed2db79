//! The little HTTP/1.x the health socket needs: find the end of the head, parse the
//! request line and the one header that matters (Content-Length). Pure functions;
//! anything unexpected is an error status, never a panic. Lines may end in CRLF or,
//! tolerantly (RFC 9112 §2.2), a bare LF, so `printf 'GET /health HTTP/1.0\n\n'`
//! piped into socat works too.

/// The parts of a request the router uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub method: String,
    pub path: String,
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
    let end = buf.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| 400u16);
    Some(line.and_then(|l| request_line(l.strip_suffix('\r').unwrap_or(l)).map(|_| ())))
}

/// Parse a complete head; `Err(status)` for a malformed one.
pub fn parse_head(head: &[u8]) -> Result<Parsed, u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let (method, path) = request_line(lines.next().ok_or(400u16)?)?;
    let mut content_length: Option<usize> = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(400);
        }
        if name.eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(400);
            }
            // Huge values saturate: still "too large" (413), never a parse error.
            let n = value.parse().unwrap_or(usize::MAX);
            if content_length.is_some_and(|seen| seen != n) {
                return Err(400);
            }
            content_length = Some(n);
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(411);
        }
    }
    Ok(Parsed {
        method: method.to_owned(),
        path,
        content_length: content_length.unwrap_or(0),
    })
}

/// `METHOD SP target SP HTTP/1.x`: the method and the path (query dropped). The
/// target may be origin-form (`/health`) or absolute-form (`http://localhost/health`).
fn request_line(line: &str) -> Result<(&str, String), u16> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(400);
    }
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        let other_http = version.len() == 8
            && version.starts_with("HTTP/")
            && version[5..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.');
        return Err(if other_http { 505 } else { 400 });
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(400);
    }
    let origin = match target.find("://") {
        Some(i) if target[..i].eq_ignore_ascii_case("http") => {
            let after_host = &target[i + 3..];
            after_host.find('/').map_or("/", |j| &after_host[j..])
        }
        _ => target,
    };
    if !origin.starts_with('/') {
        return Err(400);
    }
    let path = origin.split(['?', '#']).next().unwrap_or(origin);
    Ok((method, path.to_owned()))
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
