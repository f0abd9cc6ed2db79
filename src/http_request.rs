//! The little HTTP/1.x the health socket needs: find the end of the head, parse the
//! request line and the one header that matters (Content-Length). Pure functions;
//! anything unexpected is a 400, never a panic.

/// The parts of a request the router uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub method: String,
    pub path: String,
    pub content_length: usize,
}

/// Index just past the blank line that ends the head, if it has arrived.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parse a complete head; `Err(status)` for a malformed one.
pub fn parse_head(head: &[u8]) -> Result<Parsed, u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(400);
    }
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(if version.starts_with("HTTP/") {
            505
        } else {
            400
        });
    }
    if !target.starts_with('/') {
        return Err(400);
    }
    let path = target.split('?').next().unwrap_or(target).to_owned();
    let mut content_length = 0usize;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        if name.is_empty() || name.contains(' ') {
            return Err(400);
        }
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse().map_err(|_| 400u16)?;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(411);
        }
    }
    Ok(Parsed {
        method: method.to_owned(),
        path,
        content_length,
    })
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
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
mod tests {
    use super::*;

    #[test]
    fn parses_good_heads() {
        let p = parse_head(b"GET /health?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("ok");
        assert_eq!(
            (p.method.as_str(), p.path.as_str(), p.content_length),
            ("GET", "/health", 0)
        );
        let p = parse_head(b"POST /kick HTTP/1.0\r\nContent-Length: 3\r\n\r\n").expect("ok");
        assert_eq!(p.content_length, 3);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn refuses_bad_heads() {
        for (bad, status) in [
            (&b"\xff\xfe\r\n\r\n"[..], 400),
            (b"GET\r\n\r\n", 400),
            (b"get /health HTTP/1.1\r\n\r\n", 400),
            (b"GET health HTTP/1.1\r\n\r\n", 400),
            (b"GET /health HTTP/2\r\n\r\n", 505),
            (b"GET /health FTP/1.0\r\n\r\n", 400),
            (b"GET /health HTTP/1.1 extra\r\n\r\n", 400),
            (b"GET /health HTTP/1.1\r\nno-colon\r\n\r\n", 400),
            (b"POST /kick HTTP/1.1\r\nContent-Length: lots\r\n\r\n", 400),
            (
                b"POST /kick HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                411,
            ),
        ] {
            assert_eq!(
                parse_head(bad),
                Err(status),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
