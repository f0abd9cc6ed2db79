//! IMDSv2 discovery against a small fake IMDS on loopback (moto's metadata endpoint
//! is static): tokens are required and live for a time the fake chooses, two
//! interfaces exist so picking the wrong MAC would be caught, and missing paths,
//! unknown MACs, a closed port and a server that never answers all give their own
//! errors within the bound. The fake never closes a connection itself, so the client
//! must end each answer at its Content-Length.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vip_arbiter::adapters::ec2::imds::{ImdsError, discover, discover_at, instance_id_at};

const MAC_A: &str = "0a:00:00:00:00:0a";
const MAC_B: &str = "0a:00:00:00:00:0b";
const BASE: &str = "/latest/meta-data/";
const LIMIT: Duration = Duration::from_secs(10);

struct Fake {
    /// How long a token lives, whatever TTL was asked for.
    token_life: Duration,
    tokens: Mutex<HashMap<String, Instant>>,
    puts: AtomicU32,
    /// 401s served (no token, unknown token, expired token).
    rejected: AtomicU32,
    /// 503s still to serve before answering normally.
    unavailable: AtomicU32,
    /// A path answered only after this delay (its token is checked on arrival).
    slow: Option<(String, Duration)>,
    paths: HashMap<String, String>,
    /// GET paths in the order they were asked for.
    asked: Mutex<Vec<String>>,
}

impl Fake {
    fn new(missing: &[&str]) -> Self {
        let mut paths = HashMap::new();
        paths.insert(format!("{BASE}instance-id"), "i-0123456789abcdef0".into());
        paths.insert(format!("{BASE}placement/region"), "eu-west-1".into());
        paths.insert(
            format!("{BASE}network/interfaces/macs/"),
            format!("{MAC_A}/\n{MAC_B}/"),
        );
        for (mac, x, cidr) in [(MAC_A, 'a', "10.0.0.0/20"), (MAC_B, 'b', "10.0.16.0/20")] {
            let p = format!("{BASE}network/interfaces/macs/{mac}/");
            let id = x.to_string().repeat(17);
            paths.insert(format!("{p}interface-id"), format!("eni-0{id}"));
            paths.insert(format!("{p}subnet-id"), format!("subnet-0{id}"));
            paths.insert(format!("{p}subnet-ipv4-cidr-block"), cidr.into());
        }
        paths.retain(|k, _| !missing.iter().any(|m| k.ends_with(m)));
        Fake {
            token_life: Duration::from_secs(600),
            tokens: Mutex::new(HashMap::new()),
            puts: AtomicU32::new(0),
            rejected: AtomicU32::new(0),
            unavailable: AtomicU32::new(0),
            slow: None,
            paths,
            asked: Mutex::new(Vec::new()),
        }
    }

    /// (status, body, delay before answering).
    fn answer(&self, head: &str) -> (u16, String, Duration) {
        let mut parts = head.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let now = Duration::ZERO;
        if self.unavailable.load(Ordering::SeqCst) > 0 {
            self.unavailable.fetch_sub(1, Ordering::SeqCst);
            return (503, String::new(), now);
        }
        if method == "PUT" && path == "/latest/api/token" {
            let ttl = header(head, "x-aws-ec2-metadata-token-ttl-seconds")
                .and_then(|t| t.parse::<u32>().ok());
            if !ttl.is_some_and(|t| (1..=21600).contains(&t)) {
                return (400, String::new(), now);
            }
            let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("token-{n}");
            let until = Instant::now() + self.token_life;
            self.tokens
                .lock()
                .expect("lock")
                .insert(token.clone(), until);
            return (200, token, now);
        }
        let valid = header(head, "x-aws-ec2-metadata-token")
            .and_then(|t| self.tokens.lock().expect("lock").get(t).copied())
            .is_some_and(|until| Instant::now() < until);
        if method != "GET" || !valid {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            return (401, String::new(), now);
        }
        self.asked.lock().expect("lock").push(path.to_owned());
        let delay = match &self.slow {
            Some((slow, d)) if path.ends_with(slow.as_str()) => *d,
            _ => now,
        };
        match self.paths.get(path) {
            Some(v) => (200, v.clone(), delay),
            None => (404, String::new(), delay),
        }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("lock").clone()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    })
}

async fn serve(fake: Arc<Fake>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let fake = fake.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One head per request; requests carry no body. Keep-alive: the
                    // connection stays open until the client closes it.
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let (status, body, delay) = fake.answer(&head);
                    tokio::time::sleep(delay).await;
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn finds_the_eni_of_the_interfaces_own_mac() {
    rt().block_on(async {
        let f = Arc::new(Fake::new(&[]));
        let url = serve(f.clone()).await;
        let id = discover_at(&url, MAC_B, LIMIT).await.expect("discovered");
        assert_eq!(id.instance_id, "i-0123456789abcdef0");
        assert_eq!(id.region, "eu-west-1");
        assert_eq!(id.mac, MAC_B);
        assert_eq!(id.eni_id, "eni-0bbbbbbbbbbbbbbbbb", "the second MAC's ENI");
        assert_eq!(id.subnet_id, "subnet-0bbbbbbbbbbbbbbbbb");
        assert_eq!(id.subnet_cidr.as_deref(), Some("10.0.16.0/20"));
        assert_eq!(f.puts.load(Ordering::SeqCst), 1, "one token for it all");
        assert_eq!(f.rejected.load(Ordering::SeqCst), 0);
        let asked = f.asked();
        assert_eq!(asked.len(), 6, "{asked:?}");
        assert!(
            !asked.iter().any(|p| p.contains(MAC_A)),
            "never looked at the other MAC: {asked:?}"
        );
        let upper = discover_at(&url, &MAC_B.to_uppercase(), LIMIT)
            .await
            .expect("upper-case MAC");
        assert_eq!(upper.eni_id, "eni-0bbbbbbbbbbbbbbbbb");
    });
}

#[test]
fn the_instance_id_alone_is_one_token_and_one_get() {
    rt().block_on(async {
        let f = Arc::new(Fake::new(&[]));
        let url = serve(f.clone()).await;
        let id = instance_id_at(&url, LIMIT).await.expect("instance id");
        assert_eq!(id, "i-0123456789abcdef0");
        assert_eq!(f.puts.load(Ordering::SeqCst), 1);
        assert_eq!(f.asked(), [format!("{BASE}instance-id")]);
        let url = serve(Arc::new(Fake::new(&["instance-id"]))).await;
        assert!(matches!(
            instance_id_at(&url, LIMIT).await,
            Err(ImdsError::Missing { .. })
        ));
    });
}

#[test]
fn a_token_that_expires_mid_way_is_refreshed_once() {
    rt().block_on(async {
        // Tokens live 1 s; the region answer takes 1.3 s, so the next GET carries an
        // expired token, gets 401, and the client must fetch a second token.
        let mut fake = Fake::new(&[]);
        fake.token_life = Duration::from_secs(1);
        fake.slow = Some(("placement/region".into(), Duration::from_millis(1300)));
        let f = Arc::new(fake);
        let url = serve(f.clone()).await;
        let id = discover_at(&url, MAC_A, LIMIT)
            .await
            .expect("discovered across token expiry");
        assert_eq!(id.eni_id, "eni-0aaaaaaaaaaaaaaaaa");
        assert_eq!(id.subnet_cidr.as_deref(), Some("10.0.0.0/20"));
        assert_eq!(f.puts.load(Ordering::SeqCst), 2, "exactly one refresh");
        assert_eq!(f.rejected.load(Ordering::SeqCst), 1, "one 401, then fine");
    });
}

#[test]
fn transient_503s_are_retried() {
    rt().block_on(async {
        let f = Arc::new(Fake::new(&[]));
        f.unavailable.store(2, Ordering::SeqCst);
        let url = serve(f.clone()).await;
        let id = discover_at(&url, MAC_A, LIMIT).await.expect("discovered");
        assert_eq!(id.eni_id, "eni-0aaaaaaaaaaaaaaaaa");
        assert_eq!(f.unavailable.load(Ordering::SeqCst), 0, "both 503s served");
    });
}

#[test]
fn a_missing_path_is_named() {
    rt().block_on(async {
        let url = serve(Arc::new(Fake::new(&["subnet-id"]))).await;
        let err = discover_at(&url, MAC_A, LIMIT).await.expect_err("404");
        let want = format!("{BASE}network/interfaces/macs/{MAC_A}/subnet-id");
        match &err {
            ImdsError::Missing { path } => assert_eq!(path, &want),
            other => panic!("expected Missing, got {other:?}"),
        }
        assert!(err.to_string().contains(&want), "{err}");
        // The CIDR is optional: without it discovery still works.
        let url = serve(Arc::new(Fake::new(&["subnet-ipv4-cidr-block"]))).await;
        let id = discover_at(&url, MAC_A, LIMIT).await.expect("discovered");
        assert_eq!(id.subnet_cidr, None);
    });
}

#[test]
fn an_unknown_mac_lists_the_known_ones() {
    rt().block_on(async {
        let f = Arc::new(Fake::new(&[]));
        let url = serve(f.clone()).await;
        let err = discover_at(&url, "0a:00:00:00:00:ff", LIMIT)
            .await
            .expect_err("unknown MAC");
        match &err {
            ImdsError::NoSuchMac { mac, known } => {
                assert_eq!(mac, "0a:00:00:00:00:ff");
                assert_eq!(known, &[MAC_A.to_owned(), MAC_B.to_owned()]);
            }
            other => panic!("expected NoSuchMac, got {other:?}"),
        }
        assert!(err.to_string().contains(MAC_B), "{err}");
        assert!(!f.asked().iter().any(|p| p.contains("/macs/0a")));
    });
}

#[test]
fn a_closed_port_is_unreachable_within_the_bound() {
    rt().block_on(async {
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let started = Instant::now();
        let err = discover_at(&url, MAC_A, Duration::from_secs(5))
            .await
            .expect_err("closed port");
        match &err {
            ImdsError::Unreachable { endpoint, .. } => assert_eq!(endpoint, &url),
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "retries are brief"
        );
    });
}

#[test]
fn a_silent_server_times_out_at_the_bound() {
    rt().block_on(async {
        let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", silent.local_addr().expect("addr"));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let limit = Duration::from_secs(1);
        let started = Instant::now();
        let err = discover_at(&url, MAC_A, limit)
            .await
            .expect_err("silent server");
        let took = started.elapsed();
        match &err {
            ImdsError::Timeout { endpoint, limit: l } => {
                assert_eq!(endpoint, &url);
                assert_eq!(*l, limit);
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert!(
            took >= limit && took < limit + Duration::from_secs(1),
            "{took:?}"
        );
    });
}

/// `discover` takes its endpoint from `AWS_EC2_METADATA_SERVICE_ENDPOINT`. The
/// environment is process-wide, so a child process (this binary, running only the
/// ignored test below) gets the variable; the fake keeps serving from here.
#[test]
fn discover_reads_the_endpoint_from_the_environment() {
    rt().block_on(async {
        let f = Arc::new(Fake::new(&[]));
        let url = serve(f.clone()).await;
        let exe = std::env::current_exe().expect("test binary");
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(exe)
                .args(["--exact", "discover_child", "--ignored", "--nocapture"])
                .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("{url}/"))
                .output()
                .expect("run child")
        })
        .await
        .expect("join");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the child ran: {text}");
        assert_eq!(f.puts.load(Ordering::SeqCst), 1, "it asked our fake");
    });
}

#[test]
#[ignore = "run by discover_reads_the_endpoint_from_the_environment"]
fn discover_child() {
    if std::env::var_os("AWS_EC2_METADATA_SERVICE_ENDPOINT").is_none() {
        return;
    }
    rt().block_on(async {
        let id = discover(MAC_B, LIMIT).await.expect("discovered via env");
        assert_eq!(id.eni_id, "eni-0bbbbbbbbbbbbbbbbb");
    });
}
