//! A minimal IMDSv2 inside a node namespace, for daemons started there: the token PUT
//! answers any TTL, every GET with a token answers from a fixed map of
//! `/latest/meta-data/` paths (404 otherwise). One thread, plain blocking sockets;
//! the listener is made inside the namespace (a socket keeps the namespace it was
//! made in), so `http://127.0.0.1:<port>` there reaches it. Stops on drop.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct FakeImds {
    /// For `AWS_EC2_METADATA_SERVICE_ENDPOINT` inside the namespace.
    pub url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeImds {
    /// Serve `paths` (relative to `/latest/meta-data/`, e.g. `instance-id`) on
    /// 127.0.0.1 inside namespace `ns`.
    pub fn start_in(ns: &str, paths: &[(&str, &str)]) -> FakeImds {
        let path = format!("/var/run/netns/{ns}");
        let listener = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns (needs root)");
            TcpListener::bind("127.0.0.1:0").expect("bind fake IMDS")
        })
        .join()
        .expect("namespace thread");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let paths: HashMap<String, String> = paths
            .iter()
            .map(|(k, v)| (format!("/latest/meta-data/{k}"), (*v).to_owned()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => answer(s, &paths),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeImds {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

fn answer(mut s: std::net::TcpStream, paths: &HashMap<String, String>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut first = head.split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let has_token = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("x-aws-ec2-metadata-token:")
    });
    let (status, body) = match (method, path) {
        ("PUT", "/latest/api/token") => (200, "fake-token".to_owned()),
        ("GET", _) if !has_token => (401, String::new()),
        ("GET", p) => paths
            .get(p)
            .map_or((404, String::new()), |v| (200, v.clone())),
        _ => (405, String::new()),
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
