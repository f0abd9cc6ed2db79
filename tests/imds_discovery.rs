//! IMDSv2 discovery against a small fake IMDS on loopback (moto's metadata endpoint
//! is static): tokens are required and expire, two interfaces exist so picking the
//! wrong MAC would be caught, and missing paths, unknown MACs, a closed port and a
//! server that never answers all give their own clear errors within the bound.

mod support;

use support::testbed::rt;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vip_arbiter::imds::{ImdsError, discover_at};

const MAC_A: &str = "0a:00:00:00:00:0a";
const MAC_B: &str = "0a:00:00:00:00:0b";

struct Fake {
    tokens_issued: AtomicU32,
    /// Token → still valid for this many more requests.
    tokens: Mutex<HashMap<String, u32>>,
    /// How many GETs a new token is good for (simulates the TTL running out).
    token_uses: u32,
    paths: HashMap<String, String>,
}

fn metadata(missing: &[&str]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let base = "/latest/meta-data/";
    m.insert(
        format!("{base}instance-id"),
        "i-0123456789abcdef0".to_owned(),
    );
    m.insert(format!("{base}placement/region"), "eu-west-1".to_owned());
    m.insert(
        format!("{base}network/interfaces/macs/"),
        format!("{MAC_A}/\n{MAC_B}/"),
    );
    for (mac, eni, subnet, cidr) in [
        (
            MAC_A,
            "eni-0aaaaaaaaaaaaaaaa",
            "subnet-0aaaaaaaaaaaaaaaa",
            "10.0.0.0/20",
        ),
        (
            MAC_B,
            "eni-0bbbbbbbbbbbbbbbb",
            "subnet-0bbbbbbbbbbbbbbbb",
            "10.0.16.0/20",
        ),
    ] {
        let p = format!("{base}network/interfaces/macs/{mac}/");
        m.insert(format!("{p}interface-id"), eni.to_owned());
        m.insert(format!("{p}subnet-id"), subnet.to_owned());
        m.insert(format!("{p}subnet-ipv4-cidr-block"), cidr.to_owned());
    }
    for gone in missing {
        m.retain(|k, _| !k.ends_with(gone));
    }
    m
}

async fn serve(fake: Arc<Fake>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let fake = fake.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (status, body) = answer(&fake, &head);
                // Like EC2, the token answer carries its TTL.
                let ttl = header(&head, "x-aws-ec2-metadata-token-ttl-seconds")
                    .map(|t| format!("X-aws-ec2-metadata-token-ttl-seconds: {t}\r\n"))
                    .unwrap_or_default();
                let resp = format!(
                    "HTTP/1.1 {status} X\r\n{ttl}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    url
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    })
}

fn answer(fake: &Fake, head: &str) -> (u16, String) {
    let mut parts = head.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "PUT" && path == "/latest/api/token" {
        if header(head, "x-aws-ec2-metadata-token-ttl-seconds").is_none() {
            return (400, String::new());
        }
        let n = fake.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("token-{n}");
        fake.tokens
            .lock()
            .expect("lock")
            .insert(token.clone(), fake.token_uses);
        return (200, token);
    }
    let Some(token) = header(head, "x-aws-ec2-metadata-token") else {
        return (401, String::new());
    };
    let mut tokens = fake.tokens.lock().expect("lock");
    match tokens.get_mut(token) {
        Some(left) if *left > 0 => *left -= 1,
        _ => return (401, String::new()),
    }
    match fake.paths.get(path) {
        Some(v) => (200, v.clone()),
        None => (404, String::new()),
    }
}

fn fake(missing: &[&str], token_uses: u32) -> Arc<Fake> {
    Arc::new(Fake {
        tokens_issued: AtomicU32::new(0),
        tokens: Mutex::new(HashMap::new()),
        token_uses,
        paths: metadata(missing),
    })
}

#[test]
fn finds_the_eni_of_the_interfaces_own_mac() {
    rt().block_on(async {
        let f = fake(&[], 100);
        let url = serve(f.clone()).await;
        let id = discover_at(&url, MAC_B, Duration::from_secs(10))
            .await
            .expect("discovered");
        assert_eq!(id.instance_id, "i-0123456789abcdef0");
        assert_eq!(id.region, "eu-west-1");
        assert_eq!(
            id.eni_id, "eni-0bbbbbbbbbbbbbbbb",
            "the second MAC's ENI, not the first listed"
        );
        assert_eq!(id.subnet_id, "subnet-0bbbbbbbbbbbbbbbb");
        assert_eq!(id.subnet_cidr.as_deref(), Some("10.0.16.0/20"));
        assert_eq!(
            f.tokens_issued.load(Ordering::SeqCst),
            1,
            "one token for the whole discovery"
        );
        let upper = discover_at(&url, &MAC_B.to_uppercase(), Duration::from_secs(10))
            .await
            .expect("case-insensitive MAC");
        assert_eq!(upper.eni_id, "eni-0bbbbbbbbbbbbbbbb");
    });
}

#[test]
fn an_expired_token_is_refreshed() {
    rt().block_on(async {
        // Each token is good for two requests: discovery needs six, so tokens expire mid-way.
        let f = fake(&[], 2);
        let url = serve(f.clone()).await;
        let id = discover_at(&url, MAC_A, Duration::from_secs(10))
            .await
            .expect("discovered across token expiry");
        assert_eq!(id.eni_id, "eni-0aaaaaaaaaaaaaaaa");
        assert!(
            f.tokens_issued.load(Ordering::SeqCst) >= 2,
            "token was refreshed"
        );
    });
}

#[test]
fn a_missing_path_is_named() {
    rt().block_on(async {
        let url = serve(fake(&["subnet-id"], 100)).await;
        match discover_at(&url, MAC_A, Duration::from_secs(10)).await {
            Err(ImdsError::Missing { path }) => {
                assert!(path.ends_with(&format!("{MAC_A}/subnet-id")), "{path}")
            }
            other => panic!("expected Missing, got {other:?}"),
        }
        // The CIDR is optional: without it discovery still works.
        let url = serve(fake(&["subnet-ipv4-cidr-block"], 100)).await;
        let id = discover_at(&url, MAC_A, Duration::from_secs(10))
            .await
            .expect("discovered");
        assert_eq!(id.subnet_cidr, None);
    });
}

#[test]
fn an_unknown_mac_lists_the_known_ones() {
    rt().block_on(async {
        let url = serve(fake(&[], 100)).await;
        let err = discover_at(&url, "0a:00:00:00:00:ff", Duration::from_secs(10))
            .await
            .expect_err("unknown MAC");
        match &err {
            ImdsError::NoSuchMac { mac, known } => {
                assert_eq!(mac, "0a:00:00:00:00:ff");
                assert!(known.contains(MAC_A) && known.contains(MAC_B), "{known}");
            }
            other => panic!("expected NoSuchMac, got {other:?}"),
        }
    });
}

#[test]
fn unreachable_and_silent_endpoints_fail_within_the_bound() {
    rt().block_on(async {
        // A closed port.
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let started = Instant::now();
        let err = discover_at(&url, MAC_A, Duration::from_secs(8))
            .await
            .expect_err("closed port");
        assert!(
            matches!(err, ImdsError::Unreachable { .. } | ImdsError::Timeout(_)),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(9));
        // A server that accepts and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", silent.local_addr().expect("addr"));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let started = Instant::now();
        let err = discover_at(&url, MAC_A, Duration::from_secs(2))
            .await
            .expect_err("silent server");
        assert!(
            matches!(err, ImdsError::Timeout(_) | ImdsError::Unreachable { .. }),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "bounded by the limit"
        );
    });
}
