//! The TCP endpoint's routing: read-only methods, the routes and aliases, HEAD and
//! OPTIONS answering the status only, `?lag=` refused when malformed.
use std::sync::Mutex;

use super::*;
use crate::health::http::parse_head;
use crate::health::state::ReplicationState;

struct Fake(Mutex<Option<(Snapshot, Duration)>>);

impl TcpSource for Fake {
    fn snapshot(&self) -> Option<(Snapshot, Duration)> {
        self.0.lock().expect("lock").clone()
    }
    fn health(&self) -> (bool, String) {
        (true, "{\"converged\":true}".into())
    }
    fn metrics(&self) -> String {
        "vip_arbiter_passes_total 3\n".into()
    }
}

fn endpoint() -> Endpoint {
    Endpoint {
        allow: Allow::default(),
        stale_after: Duration::from_secs(15),
    }
}

fn snapshot(role: &str, verdict_kind: &str) -> Fake {
    let s = Snapshot {
        role: role.into(),
        eligible: role == "primary",
        verdict: verdict_kind.into(),
        verdict_kind: verdict_kind.into(),
        repmgr_primary: Some(1),
        replication: (role == "standby").then(|| ReplicationState {
            receiver: Some("streaming".into()),
            upstream: Some(1),
            lag_bytes: Some(100),
            lag_ms: Some(0),
        }),
        ..Snapshot::default()
    };
    Fake(Mutex::new(Some((s, Duration::from_millis(10)))))
}

/// (status, the whole response as text)
fn ask(source: &Fake, request: &str) -> (u16, String) {
    let req = parse_head(request.as_bytes()).expect("a request");
    let out = String::from_utf8(route(&req, source, &endpoint())).expect("text");
    let status = out[9..12].parse().expect("a status");
    (status, out)
}

#[test]
fn primary_and_its_aliases() {
    let p = snapshot("primary", "holding");
    let s = snapshot("standby", "standby");
    for path in ["/primary", "/master", "/read-write"] {
        assert_eq!(
            ask(&p, &format!("GET {path} HTTP/1.1\r\n\r\n")).0,
            200,
            "{path}"
        );
        assert_eq!(
            ask(&s, &format!("GET {path} HTTP/1.1\r\n\r\n")).0,
            503,
            "{path}"
        );
    }
    assert_eq!(
        ask(&Fake(Mutex::new(None)), "GET /primary HTTP/1.0\r\n\r\n").0,
        503
    );
}

#[test]
fn replica_read_only_and_lag() {
    let p = snapshot("primary", "holding");
    let s = snapshot("standby", "standby");
    assert_eq!(ask(&s, "GET /replica HTTP/1.1\r\n\r\n").0, 200);
    assert_eq!(ask(&p, "GET /replica HTTP/1.1\r\n\r\n").0, 503);
    assert_eq!(ask(&s, "GET /replica?lag=1kB HTTP/1.1\r\n\r\n").0, 200);
    assert_eq!(ask(&s, "GET /replica?lag=99 HTTP/1.1\r\n\r\n").0, 503);
    assert_eq!(ask(&s, "GET /replica?lag=5s HTTP/1.1\r\n\r\n").0, 200);
    let (status, body) = ask(&s, "GET /replica?lag=lots HTTP/1.1\r\n\r\n");
    assert_eq!(status, 400, "{body}");
    assert_eq!(ask(&p, "GET /read-only HTTP/1.1\r\n\r\n").0, 200);
    assert_eq!(ask(&s, "GET /read-only?lag=1MB HTTP/1.1\r\n\r\n").0, 200);
    let pg_unknown = snapshot("unknown", "pg-unknown");
    assert_eq!(ask(&pg_unknown, "GET /read-only HTTP/1.1\r\n\r\n").0, 503);
}

#[test]
fn health_and_metrics_as_on_the_socket() {
    let p = snapshot("primary", "holding");
    let (status, out) = ask(&p, "GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(out.ends_with("{\"converged\":true}") && out.contains("application/json"));
    let (status, out) = ask(&p, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(out.ends_with("vip_arbiter_passes_total 3\n"));
    assert_eq!(ask(&p, "GET /kick HTTP/1.1\r\n\r\n").0, 404);
}

#[test]
fn read_only_methods_and_status_only_answers() {
    let p = snapshot("primary", "holding");
    for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"] {
        for path in ["/kick", "/unfence", "/primary", "/nowhere"] {
            let (status, out) = ask(&p, &format!("{method} {path} HTTP/1.1\r\n\r\n"));
            assert_eq!(status, 405, "{method} {path}");
            assert!(out.contains("Allow: GET, HEAD, OPTIONS"), "{out}");
        }
    }
    let (status, out) = ask(&p, "OPTIONS /primary HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(
        out.ends_with(
            "Content-Length: 0\r\nConnection: close\r\nAllow: GET, HEAD, OPTIONS\r\n\r\n"
        ),
        "{out}"
    );
    assert_eq!(
        ask(
            &snapshot("standby", "standby"),
            "OPTIONS /primary HTTP/1.1\r\n\r\n"
        )
        .0,
        503
    );
    for method in ["HEAD", "OPTIONS"] {
        let (status, out) = ask(&p, &format!("{method} /replica?lag=lots HTTP/1.1\r\n\r\n"));
        assert!(
            status == 400 && out.ends_with("\r\n\r\n"),
            "{method}: {out}"
        );
    }
    let (status, out) = ask(&p, "HEAD /primary HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(
        out.ends_with("\r\n\r\n") && !out.contains("Content-Length: 0"),
        "{out}"
    );
}
