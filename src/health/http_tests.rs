//! Unit tests of the HTTP head parser: request lines, Content-Length, line endings,
//! limits; never a panic.
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
    let p = parse_head(b"POST /kick HTTP/1.1\r\nContent-Length: 3\r\ncontent-length:3\r\n\r\n")
        .expect("repeated equal Content-Length is fine");
    assert_eq!(p.content_length, 3);
    let p = parse_head(b"GET http://localhost/metrics HTTP/1.1\r\n\r\n").expect("absolute");
    assert_eq!(p.path, "/metrics");
    let p = parse_head(b"GET http://localhost HTTP/1.1\r\n\r\n").expect("absolute, no path");
    assert_eq!(p.path, "/");
    let p = parse_head(b"GET /health HTTP/1.0\nHost: x\n\n").expect("bare LF");
    assert_eq!(p.path, "/health");
    let p = parse_head(b"POST /kick HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")
        .expect("huge length saturates");
    assert_eq!(p.content_length, usize::MAX);
}

#[test]
fn finds_the_end_of_the_head() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
    assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\n\r\n"), Some(26));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r"), None);
    assert_eq!(head_end(b""), None);
}

#[test]
fn checks_the_request_line_early() {
    assert_eq!(check_request_line(b"GET /hea"), None);
    assert_eq!(
        check_request_line(b"GET /health HTTP/1.1\r\nHo"),
        Some(Ok(()))
    );
    assert_eq!(check_request_line(b"GARBAGE\r\n"), Some(Err(400)));
    assert_eq!(check_request_line(b"\x16\x03\x01\x02\n"), Some(Err(400)));
    assert_eq!(check_request_line(b"GET / HTTP/2.0\n"), Some(Err(505)));
}

#[test]
fn refuses_bad_heads() {
    for (bad, status) in [
        (&b"\xff\xfe\r\n\r\n"[..], 400),
        (b"\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"get /health HTTP/1.1\r\n\r\n", 400),
        (b"GET health HTTP/1.1\r\n\r\n", 400),
        (b"GET  /health HTTP/1.1\r\n\r\n", 400),
        (b"GET /he\x01lth HTTP/1.1\r\n\r\n", 400),
        (b"GET ftp://x/health HTTP/1.1\r\n\r\n", 400),
        (b"GET /health HTTP/2\r\n\r\n", 400),
        (b"GET /health HTTP/2.0\r\n\r\n", 505),
        (b"GET /health FTP/1.0\r\n\r\n", 400),
        (b"GET /health HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nno-colon\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nBad\tName: x\r\n\r\n", 400),
        (b"POST /kick HTTP/1.1\r\nContent-Length: lots\r\n\r\n", 400),
        (b"POST /kick HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /kick HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400),
        (b"POST /kick HTTP/1.1\r\nContent-Length:\r\n\r\n", 400),
        (
            b"POST /kick HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
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
