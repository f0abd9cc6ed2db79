//! The TCP endpoint (`[http] listen`) of the real daemon, kernel-only, in two node
//! namespaces against a real primary and standby, asked with curl from the hub (and
//! from a node outside the allow list): the role routes follow a promotion, HEAD and
//! OPTIONS answer the status only, anything but GET, HEAD and OPTIONS is 405, `?lag=`
//! is honoured and a malformed one refused, /health and /metrics are the socket's.

mod support;

use std::process::Command;
use std::time::Duration;

use support::bed::{Bed, NODES, VIP};
use support::testbed::{Arbiter, HUB_IP, kernel_has, wait_until};

const PORT: u16 = 8008;

/// curl from namespace `ns`: (status, body); status 0 when nothing answered.
pub fn curl(ns: &str, args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "3"])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn url(node: usize, path: &str) -> String {
    format!("http://{}:{PORT}{path}", NODES[node - 1].1)
}

#[test]
fn role_routes_follow_the_primary_and_only_read() {
    let bed = Bed::builder().postgres().build();
    let (cluster, n1, n2, dir, hub) = (
        bed.cluster(),
        bed.ns(1),
        bed.ns(2),
        bed.dir(),
        bed.hub().ns.clone(),
    );
    let conf_on = |node: &support::pg_cluster::PgNode, listen: &str| {
        format!(
            "vip = \"{VIP}\"\ninterface = \"ens5\"\nrepmgr_config = {:?}\ninterval = \"500ms\"\n\
             pg_unknown_hold = \"2s\"\nlog_level = \"debug\"\n\
             [http]\nlisten = \"{listen}\"\nallow = [\"{HUB_IP}/32\", \"127.0.0.0/8\"]\n",
            node.repmgr_conf().display().to_string()
        )
    };
    let conf = |node| conf_on(node, &format!("0.0.0.0:{PORT}"));
    let a1 = Arbiter::start(n1, dir, "a1", &conf(cluster.node1()), &[]);
    let a2 = Arbiter::start(n2, dir, "a2", &conf(cluster.node2()), &[]);
    wait_until(Duration::from_secs(10), "a1 holding, a2 standby", || {
        a1.verdict() == "holding" && a2.verdict() == "standby"
    });
    let get = |node: usize, path: &str| curl(&hub, &[], &url(node, path));
    wait_until(Duration::from_secs(5), "n2 a streaming replica", || {
        get(2, "/replica").0 == 200
    });

    for path in ["/primary", "/master", "/read-write", "/read-only"] {
        assert_eq!(
            get(1, path).0,
            200,
            "{path} on the primary: {:?}",
            get(1, path)
        );
    }
    for path in ["/primary", "/master", "/read-write"] {
        assert_eq!(get(2, path).0, 503, "{path} on the standby");
    }
    let (status, body) = get(2, "/replica");
    assert!(
        body.starts_with("replica: streaming from node 1"),
        "{status} {body}"
    );
    assert_eq!(get(1, "/replica").0, 503, "the primary is no replica");
    assert_eq!(get(2, "/read-only").0, 200);
    assert_eq!(get(2, "/replica?lag=1GB").0, 200);
    assert_eq!(get(2, "/replica?lag=30s").0, 200);
    assert_eq!(get(2, "/replica?lag=plenty").0, 400);

    let (status, health) = get(1, "/health");
    let json: serde_json::Value = serde_json::from_str(&health).expect("health JSON");
    assert_eq!(
        (status, json["verdict_kind"].as_str()),
        (200, Some("holding"))
    );
    let (_, standby) = get(2, "/health");
    let json: serde_json::Value = serde_json::from_str(&standby).expect("health JSON");
    assert_eq!(
        json["replication"]["receiver"].as_str(),
        Some("streaming"),
        "{json}"
    );
    let (status, metrics) = get(1, "/metrics");
    assert!(
        status == 200 && metrics.contains("vip_arbiter_passes_total"),
        "{metrics}"
    );

    // Read-only: kick and unfence stay on the unix socket.
    for (method, path) in [
        ("POST", "/kick"),
        ("POST", "/unfence"),
        ("PUT", "/primary"),
        ("DELETE", "/health"),
    ] {
        let (status, _) = curl(&hub, &["-X", method], &url(1, path));
        assert_eq!(status, 405, "{method} {path}");
    }
    // HEAD and OPTIONS: the status, no body.
    let (status, body) = curl(&hub, &["-I"], &url(1, "/primary"));
    assert!(
        status == 200 && body.starts_with("HTTP/1.1 200"),
        "{status} {body}"
    );
    let (status, body) = curl(&hub, &["-X", "OPTIONS"], &url(2, "/primary"));
    assert_eq!((status, body.as_str()), (503, ""));
    let (status, body) = curl(&hub, &["-X", "OPTIONS"], &url(2, "/replica"));
    assert_eq!((status, body.as_str()), (200, ""));
    // Outside the allow list: n1's address asking n2 is refused; loopback is allowed.
    let (status, body) = curl(n1, &[], &url(2, "/replica"));
    assert_eq!(status, 403, "{body}");
    let (status, _) = curl(n1, &[], &format!("http://127.0.0.1:{PORT}/primary"));
    assert_eq!(status, 200);

    // A listen address this host does not have is the config's (78); a port in use
    // (a2's) is not (1). Both name the key.
    for (listen, code) in [
        ("192.0.2.1:8008".to_owned(), 78),
        (format!("0.0.0.0:{PORT}"), 1),
    ] {
        let path = dir.join("bad-listen.toml");
        let sock = dir.join("bad-listen.sock");
        std::fs::write(
            &path,
            format!(
                "socket = {:?}\n{}",
                sock.display().to_string(),
                conf_on(cluster.node2(), &listen)
            ),
        )
        .expect("write config");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                n2,
                &support::testbed::arbiter_bin(),
                "run",
                "--config",
            ])
            .arg(&path)
            .output()
            .expect("run vip-arbiter");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "listen {listen}: {stderr}");
        assert!(
            stderr.contains(&format!("http.listen {listen}")),
            "{stderr}"
        );
    }
    assert_eq!(get(2, "/replica").0, 200, "a2 still serves");

    // The primary goes away and n2 is promoted: the routes follow.
    cluster.stop_primary_and_promote_standby();
    wait_until(Duration::from_secs(10), "n2 answers /primary 200", || {
        get(2, "/primary").0 == 200
    });
    assert!(kernel_has(n2, VIP), "/primary 200 only with the VIP here");
    assert_eq!(get(2, "/replica").0, 503, "a promoted node is no replica");
    wait_until(
        Duration::from_secs(5),
        "n1 (PostgreSQL down) answers 503 everywhere",
        || {
            ["/primary", "/replica", "/read-only"]
                .iter()
                .all(|p| get(1, p).0 == 503)
        },
    );
}

/// The endpoint in-process on loopback: the unix socket's limits hold on TCP too (a
/// silent client 408 after the read limit, an oversized head 431, past the cap 503),
/// and a loopback client outside `allow` is refused 403.
#[test]
fn the_tcp_listener_has_the_sockets_limits() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use vip_arbiter::health::conn::{MAX_CONNECTIONS, READ_LIMIT};
    use vip_arbiter::health::state::Snapshot;
    use vip_arbiter::health::tcp::{self, Endpoint, TcpSource};
    use vip_arbiter::health::tcp_access::{Allow, Net};

    struct Nothing;
    impl TcpSource for Nothing {
        fn snapshot(&self) -> Option<(Snapshot, Duration)> {
            None
        }
        fn health(&self) -> (bool, String) {
            (false, "{}".into())
        }
        fn metrics(&self) -> String {
            String::new()
        }
    }
    // The server on a thread of its own (the tests' runtimes are current-thread).
    let serve = |allow: &str| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let endpoint = Endpoint {
            allow: Allow(vec![Net::parse(allow).expect("net")]),
            stale_after: Duration::from_secs(15),
        };
        let token = tokio_util::sync::CancellationToken::new();
        let stop = token.clone();
        std::thread::spawn(move || {
            support::testbed::rt().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio");
                tcp::serve(listener, Arc::new(Nothing), endpoint, stop).await;
            });
        });
        (addr, token)
    };
    let ask = |addr, bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = s.write_all(bytes);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let (addr, token) = serve("127.0.0.0/8");
    assert!(ask(addr, b"GET /primary HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503"));
    let started = std::time::Instant::now();
    assert!(ask(addr, b"GET /primary HTTP/1.1\r\n").starts_with("HTTP/1.1 408"));
    assert!(started.elapsed() >= READ_LIMIT);
    let huge = format!("GET /primary HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert!(ask(addr, huge.as_bytes()).starts_with("HTTP/1.1 431"));
    // MAX_CONNECTIONS silent clients hold every slot: the next one is told 503 at once.
    // (After the 431's lingering close, up to 200 ms, has given its slot back.)
    std::thread::sleep(Duration::from_millis(400));
    let held: Vec<_> = (0..MAX_CONNECTIONS)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let busy = ask(addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert!(
        busy.starts_with("HTTP/1.1 503") && busy.ends_with("too many connections\n"),
        "{busy}"
    );
    drop(held);
    token.cancel();

    let (addr, token) = serve("10.0.0.0/8");
    let refused = ask(addr, b"GET /primary HTTP/1.1\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(
        refused.contains("127.0.0.1 is not in [http] allow"),
        "{refused}"
    );
    token.cancel();
}
