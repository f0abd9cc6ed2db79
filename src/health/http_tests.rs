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
    assert_eq!(p.query, "x=1");
    let p = parse_head(b"OPTIONS /replica?lag=16MB#frag HTTP/1.1\r\n\r\n").expect("query");
    assert_eq!(
        (p.path.as_str(), p.query.as_str()),
        ("/replica", "lag=16MB")
    );
    let p = parse_head(b"GET /primary#x?y HTTP/1.1\r\n\r\n").expect("fragment");
    assert_eq!((p.path.as_str(), p.query.as_str()), ("/primary", ""));
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

/// An answer a client read to the close, under the health client's limit.
fn closed(raw: &[u8]) -> Answer {
    assess_response(raw, true, 4 << 20)
}

fn complete(status: u16, body: &str) -> Answer {
    Answer::Complete(Response {
        status,
        body: body.into(),
    })
}

#[test]
fn parses_responses() {
    assert_eq!(
        closed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
        complete(200, "{}")
    );
    assert_eq!(
        closed(b"HTTP/1.0 503 Service Unavailable\r\ncontent-length:3\r\n\r\nabcdef"),
        complete(503, "abc"),
        "cut to Content-Length"
    );
    assert_eq!(
        closed(b"HTTP/1.1 202 Accepted\r\n\r\nno length"),
        complete(202, "no length"),
        "read to close"
    );
    assert_eq!(
        closed(b"HTTP/1.1 200\nContent-Length: 1\n\nxy"),
        complete(200, "x"),
        "no reason, bare LF"
    );
    assert_eq!(
        closed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n\xff!"),
        complete(200, "\u{fffd}!"),
        "a body not UTF-8 is replaced, not refused"
    );
}

#[test]
fn refuses_malformed_responses() {
    for bad in [
        &b""[..],
        b"HTTP/1.1 200 OK\r\n",
        b"garbage\r\n\r\n",
        b"SSH-2.0 200 x\r\n\r\n",
        b"HTTP/1.1 20 short\r\n\r\n",
        b"HTTP/1.1 999 high\r\n\r\n",
        b"HTTP/1.1 099 low\r\n\r\n",
        b"HTTP/1.1 +20 sign\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ntruncated",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n",
        b"\xff\xfe 200 OK\r\n\r\n",
    ] {
        assert!(
            matches!(closed(bad), Answer::Malformed(_)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn response_heads_give_status_and_length() {
    let h = b"HTTP/1.1 404 Not Found\r\ncontent-length: 7\r\n\r\n";
    assert_eq!(head_end(h), Some(h.len()));
    assert_eq!(parse_response_head(h), Ok((404, Some(7))));
    let h = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
    assert_eq!(parse_response_head(h), Ok((200, None)));
    assert!(parse_response_head(b"garbage\r\n\r\n").is_err());
    assert_eq!(
        parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Err(Bad::Chunked)
    );
}

#[test]
fn responses_end_at_their_length_or_at_the_close() {
    // With a Content-Length: complete as soon as the body is in, the peer may keep
    // the connection open; not before.
    let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    for cut in 0..full.len() {
        assert_eq!(assess_response(&full[..cut], false, 1024), Answer::NeedMore);
    }
    assert_eq!(assess_response(full, false, 1024), complete(200, "hello"));
    // Without one: the body is what came before the close.
    let open = b"HTTP/1.1 200 OK\r\n\r\nhel";
    assert_eq!(assess_response(open, false, 1024), Answer::NeedMore);
    assert_eq!(assess_response(open, true, 1024), complete(200, "hel"));
    // A bad status line is judged before the head ends.
    assert!(matches!(
        assess_response(b"SSH-2.0-OpenSSH_9.6\r\n", false, 1024),
        Answer::Malformed(_)
    ));
    assert_eq!(
        assess_response(b"HTTP/1.1 200 OK\r\nServer: x", false, 1024),
        Answer::NeedMore
    );
    assert!(matches!(
        assess_response(b"HTTP/1.1 200 OK\r\nServer: x", true, 1024),
        Answer::Malformed(_)
    ));
}

#[test]
fn responses_past_the_limit_are_too_large() {
    let too_large = Answer::Malformed("response too large");
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    // A Content-Length past the limit is refused at once, before its body comes.
    assert_eq!(assess_response(head, false, head.len() + 99), too_large);
    let mut exact = head.to_vec();
    exact.extend_from_slice(&[b'x'; 100]);
    assert!(matches!(
        assess_response(&exact, false, head.len() + 100),
        Answer::Complete(_)
    ));
    let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    assert_eq!(assess_response(huge, false, 1 << 20), too_large);
    // Without a Content-Length, or without an end of head, the bytes so far count.
    let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    endless.resize(65, b'x');
    assert_eq!(assess_response(&endless[..64], false, 64), Answer::NeedMore);
    assert_eq!(assess_response(&endless, false, 64), too_large);
    assert_eq!(assess_response(&endless, true, 64), too_large);
    let mut long_head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    long_head.resize(65, b'x');
    assert_eq!(assess_response(&long_head, false, 64), too_large);
    // A head past the limit is too large even when it says there is no body.
    long_head.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(assess_response(&long_head, false, 64), too_large);
}

#[test]
fn read_response_stops_at_the_length_and_fails_clearly() {
    use tokio::io::AsyncWriteExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // A peer that sends byte by byte and keeps the connection open.
        let (mut ours, mut theirs) = tokio::io::duplex(64);
        let peer = tokio::spawn(async move {
            for b in b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone" {
                theirs.write_all(&[*b]).await.expect("write");
            }
            theirs
        });
        let r = read_response(&mut ours, 1024).await.expect("complete");
        assert_eq!((r.status, r.body.as_str()), (404, "gone"));
        drop(peer.await.expect("peer"));

        // A peer that closes mid-head.
        let (mut ours, mut theirs) = tokio::io::duplex(64);
        theirs
            .write_all(b"HTTP/1.1 200 OK\r\n")
            .await
            .expect("write");
        drop(theirs);
        let e = read_response(&mut ours, 1024).await.unwrap_err();
        assert!(matches!(e, ReadError::Malformed(_)), "{e:?}");

        // A peer that sends more than the limit, never ending its head.
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        theirs.write_all(&[b'H'; 5000]).await.expect("write");
        let e = read_response(&mut ours, 4096).await.unwrap_err();
        assert!(
            matches!(e, ReadError::Malformed("response too large")),
            "{e:?}"
        );
    });
}
