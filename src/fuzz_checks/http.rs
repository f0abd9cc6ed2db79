//! The health socket's request handling: the bytes arrive in chunks of a size the
//! input picks, from a peer uid the input picks; the answer is always one well-formed
//! HTTP/1.1 response, and the loop is kicked exactly when a 202 says so, which only an
//! allowed uid can get. Then the response side of the same parser: the server's
//! answer, read back as the clients read it, is that status and that body; and the
//! input's bytes, read as an answer, get a verdict once the peer closes, one that
//! reading more never changes.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::health::http::{self, Answer, Progress};
use crate::health::server::{self, HealthSource, MAX_BODY, MAX_HEAD};
use crate::health::socket_access::KickAllow;
use crate::health::state::Snapshot;
use crate::health::tcp::{self, Endpoint, TcpSource};

/// The TCP endpoint over a holding primary (or no snapshot yet).
struct Tcp(Option<(Snapshot, std::time::Duration)>);

impl TcpSource for Tcp {
    fn snapshot(&self) -> Option<(Snapshot, std::time::Duration)> {
        self.0.clone()
    }
    fn health(&self) -> (bool, String) {
        (true, "{}".into())
    }
    fn metrics(&self) -> String {
        "vip_arbiter_passes_total 1\n".into()
    }
}

/// The same request to the TCP endpoint: one well-formed response; only GET, HEAD
/// and OPTIONS get anything but 405; HEAD and OPTIONS get no body.
fn tcp_answer(req: &http::Parsed, holding: bool) {
    let snapshot = holding.then(|| {
        let s = Snapshot {
            role: "primary".into(),
            eligible: true,
            verdict_kind: "holding".into(),
            ..Snapshot::default()
        };
        (s, std::time::Duration::ZERO)
    });
    let endpoint = Endpoint {
        allow: crate::health::tcp_access::Allow::default(),
        stale_after: std::time::Duration::from_secs(15),
    };
    let out = tcp::route(req, &Tcp(snapshot), &endpoint);
    let end = http::head_end(&out).expect("a complete head");
    let head = std::str::from_utf8(&out[..end]).expect("ASCII head");
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|h| h.get(..3))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    assert_ne!(http::reason(status), "Unknown", "{head}");
    let read_only = matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS");
    assert_eq!(status == 405, !read_only, "{head}");
    if matches!(req.method.as_str(), "HEAD" | "OPTIONS") {
        assert_eq!(out.len(), end, "no body: {head}");
    }
}

#[derive(Default)]
struct Source {
    kicks: AtomicU32,
    unfences: AtomicU32,
}

impl HealthSource for Source {
    fn health(&self) -> (bool, String) {
        (true, "{\"converged\":true}".into())
    }
    fn metrics(&self) -> String {
        "vip_arbiter_passes_total 1\n".into()
    }
    fn kick(&self) {
        self.kicks.fetch_add(1, Ordering::SeqCst);
    }
    fn unfence(&self) {
        self.unfences.fetch_add(1, Ordering::SeqCst);
    }
}

const SERVICE_UID: u32 = 108;

pub fn http(data: &[u8]) {
    let [who, chunk, request @ ..] = data else {
        return;
    };
    let peer = match who % 4 {
        0 => None,
        1 => Some(0),
        2 => Some(SERVICE_UID),
        _ => Some(1000),
    };
    let chunk = usize::from(*chunk).max(1);
    let mut buf = Vec::new();
    let mut read = Err(400); // the peer closed before a complete request
    for piece in request.chunks(chunk) {
        buf.extend_from_slice(piece);
        match http::assess(&buf, MAX_HEAD, MAX_BODY) {
            Progress::NeedMore => continue,
            Progress::Refuse(status) => read = Err(status),
            Progress::Complete(req) => read = Ok(req),
        }
        break;
    }
    let source = Source::default();
    let allow = KickAllow::with_service_uid(SERVICE_UID, &[]);
    let head_request = read.as_ref().is_ok_and(|r| r.method == "HEAD");
    if let Ok(req) = &read {
        tcp_answer(req, who % 2 == 0);
    }
    let out = server::answer(read, &source, &allow, peer);
    let end = http::head_end(&out).expect("a complete head");
    let head = std::str::from_utf8(&out[..end]).expect("ASCII head");
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|h| h.get(..3))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    assert_ne!(http::reason(status), "Unknown", "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    let body = out.len() - end;
    assert_eq!(body, if head_request { 0 } else { length }, "{head}");
    let kicked = source.kicks.load(Ordering::SeqCst);
    assert_eq!(kicked == 1, status == 202, "{head}");
    if status == 202 {
        assert!(allow.allows(peer), "kick granted to {peer:?}");
    }
    if !head_request {
        let read_back = read_in_chunks(&out, chunk, out.len());
        let body = String::from_utf8_lossy(&out[end..]).into_owned();
        assert_eq!(
            read_back,
            Answer::Complete(http::Response { status, body }),
            "{head}"
        );
    }
    read_in_chunks(request, chunk, MAX_HEAD);
}

/// Read `bytes` as an answer, `chunk` bytes at a time, as the clients do (at most
/// `max` bytes); what they end with.
fn read_in_chunks(bytes: &[u8], chunk: usize, max: usize) -> Answer {
    let mut buf = Vec::new();
    let mut verdict = Answer::NeedMore;
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        verdict = http::assess_response(&buf, false, max);
        if verdict != Answer::NeedMore {
            break;
        }
    }
    let whole = http::assess_response(bytes, true, max);
    match (&verdict, &whole) {
        (_, Answer::NeedMore) => panic!("no verdict once closed"),
        (Answer::NeedMore, _) => return whole,
        (Answer::Complete(early), Answer::Complete(late)) => assert_eq!(early, late),
        (Answer::Malformed(_), Answer::Malformed(_)) => {}
        (early, late) => panic!("read further, {early:?} became {late:?}"),
    }
    if let Answer::Complete(r) = &verdict {
        assert!((100..600).contains(&r.status), "{}", r.status);
    }
    verdict
}
