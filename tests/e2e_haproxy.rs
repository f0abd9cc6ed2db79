//! End-to-end, HAProxy routing by the TCP endpoint through a repmgrd failover: three
//! PostgreSQL data nodes in their own namespaces (tests/support/repmgrd_bed.rs), an
//! arbiter in EC2 mode on each with `[http] listen`, and HAProxy (the Debian package)
//! in the hub namespace with a writer listener (`option httpchk OPTIONS /primary`)
//! and a reader listener (`OPTIONS /replica?lag=16MB`), as docs/operations.md shows.
//! Clients connect through HAProxy with psql. n1 crashes, repmgrd promotes n2 and n3
//! follows it: the writer backend follows the primary (never two servers up), the
//! reader backend holds only streaming standbys (n2 and n3, then n3 alone).

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::repmgrd_bed::{ArbiterConf, BedOptions, RepmgrdBed};
use support::testbed::{HUB_IP, wait_until, wait_until_explained};

const HTTP_PORT: u16 = 8008;
/// Not 5000: the EC2 emulator listens there in the hub.
const WRITER_PORT: u16 = 6432;
const READER_PORT: u16 = 6433;
/// repmgrd: 3 × 2 s of reconnects, then the election.
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);

/// HAProxy in the hub namespace, killed on drop.
struct Haproxy {
    child: Child,
    stats: PathBuf,
    log: PathBuf,
}

impl Haproxy {
    fn start(hub_ns: &str, dir: &Path, bed: &RepmgrdBed) -> Haproxy {
        let stats = dir.join("haproxy.sock");
        let servers = |check: &str| {
            bed.data_ids()
                .map(|id| {
                    format!(
                        "  server {} {}:5432 check port {HTTP_PORT}{check}\n",
                        bed.short(id),
                        bed.addr(id)
                    )
                })
                .collect::<String>()
        };
        // As docs/operations.md, with faster checks (inter 300ms) for the test's time.
        let cfg = format!(
            "global\n  maxconn 200\n  stats socket {} mode 600 level admin\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  timeout check 2s\n\
             \x20 default-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions\n\
             listen writer\n  bind {HUB_IP}:{WRITER_PORT}\n  option httpchk OPTIONS /primary\n  http-check expect status 200\n{}\
             listen reader\n  bind {HUB_IP}:{READER_PORT}\n  balance roundrobin\n  option httpchk OPTIONS /replica?lag=16MB\n  http-check expect status 200\n{}",
            stats.display(),
            servers(""),
            servers("")
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write haproxy.cfg");
        let check = Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(&path)
            .output()
            .expect("haproxy -c (Debian package haproxy; scripts/install-deps)");
        assert!(
            check.status.success(),
            "haproxy.cfg: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = dir.join("haproxy.log");
        let child = Command::new("ip")
            .args(["netns", "exec", hub_ns, "haproxy", "-db", "-f"])
            .arg(&path)
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("log"),
            ))
            .spawn()
            .expect("start haproxy");
        let h = Haproxy { child, stats, log };
        wait_until_explained(
            Duration::from_secs(5),
            "haproxy's stats socket",
            || h.try_show_stat().is_some(),
            || format!("{}: {}", h.stats.display(), h.log_text()),
        );
        h
    }

    fn try_show_stat(&self) -> Option<String> {
        let mut s = UnixStream::connect(&self.stats).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"show stat\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// The servers of listener `proxy` HAProxy has UP, sorted.
    fn up(&self, proxy: &str) -> Vec<String> {
        let stat = self.try_show_stat().unwrap_or_default();
        let mut up: Vec<String> = stat
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > 17 && f[0] == proxy)
            .filter(|f| f[1] != "FRONTEND" && f[1] != "BACKEND" && f[17].starts_with("UP"))
            .map(|f| f[1].to_owned())
            .collect();
        up.sort();
        up
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client through HAProxy: psql from the hub to `port`; the server's address and
/// whether it is in recovery ("10.77.0.12|f"), or the error.
fn through(hub_ns: &str, port: u16, sql: &str) -> Result<String, String> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            hub_ns,
            "psql",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args([
            "-h",
            HUB_IP,
            "-p",
            &port.to_string(),
            "-U",
            "repmgr",
            "-d",
            "repmgr",
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

const WHO: &str = "SELECT host(inet_server_addr()) || '|' || pg_is_in_recovery()";

#[test]
fn haproxy_routes_writers_to_the_primary_and_readers_to_streaming_standbys() {
    let started = Instant::now();
    let bed = RepmgrdBed::start(BedOptions {
        data_nodes: 3,
        ..BedOptions::kicking()
    });
    let ec2 = bed.start_ec2();
    let http = format!("[http]\nlisten = \"0.0.0.0:{HTTP_PORT}\"\nallow = [\"{HUB_IP}/32\"]");
    let conf = ArbiterConf {
        ec2: Some(&ec2),
        pg_unknown_hold: "2s",
        extra: &http,
        ..ArbiterConf::default()
    };
    let arbiters = bed.start_arbiters(&conf);
    let hub = bed.hub().ns.clone();
    wait_until(Duration::from_secs(20), "the VIP on n1 alone", || {
        bed.vip_only_on(&ec2, 1)
    });
    let proxy = Haproxy::start(&hub, bed.dir(), &bed);
    let explain = || {
        format!(
            "haproxy:\n{}\nstat:\n{}\narbiters: {:?}",
            proxy.log_text(),
            proxy.try_show_stat().unwrap_or_default(),
            arbiters.iter().map(|a| a.verdict()).collect::<Vec<_>>()
        )
    };
    wait_until_explained(
        Duration::from_secs(10),
        "writer [n1], reader [n2, n3]",
        || proxy.up("writer") == ["n1"] && proxy.up("reader") == ["n2", "n3"],
        explain,
    );
    assert_eq!(
        through(&hub, WRITER_PORT, WHO).as_deref(),
        Ok("10.77.0.11|false")
    );
    for _ in 0..4 {
        let r = through(&hub, READER_PORT, WHO).expect("a reader");
        assert!(r == "10.77.0.12|true" || r == "10.77.0.13|true", "{r}");
    }
    through(&hub, WRITER_PORT, "CREATE TABLE through_haproxy (x int)").expect("a write");

    // n1 crashes; repmgrd promotes n2 (priority 90 over n3's 80) and n3 follows it.
    let crash = Instant::now();
    bed.crash(1);
    let mut samples = Vec::new();
    wait_until_explained(
        FAILOVER_LIMIT,
        "writer [n2] after repmgrd's failover",
        || {
            let (w, r) = (proxy.up("writer"), proxy.up("reader"));
            let done = w == ["n2"];
            samples.push((w, r));
            done
        },
        explain,
    );
    let writer_moved = crash.elapsed();
    assert!(
        samples.iter().all(|(w, _)| w.len() <= 1),
        "two writers up at once: {samples:?}"
    );
    assert!(
        samples.iter().all(|(_, r)| !r.iter().any(|s| s == "n1")),
        "the crashed primary among the readers: {samples:?}"
    );
    assert_eq!(bed.primary_id(), Some(2), "the writer is the primary");
    assert_eq!(
        through(&hub, WRITER_PORT, WHO).as_deref(),
        Ok("10.77.0.12|false")
    );
    through(&hub, WRITER_PORT, "INSERT INTO through_haproxy VALUES (1)").expect("a write");

    bed.wait_streaming_from(3, 2, Duration::from_secs(30));
    wait_until_explained(
        Duration::from_secs(10),
        "reader [n3] (streaming from n2)",
        || proxy.up("reader") == ["n3"],
        explain,
    );
    for _ in 0..3 {
        assert_eq!(
            through(&hub, READER_PORT, WHO).as_deref(),
            Ok("10.77.0.13|true")
        );
    }
    wait_until(Duration::from_secs(5), "n3 has replayed the write", || {
        through(&hub, READER_PORT, "SELECT count(*) FROM through_haproxy").as_deref() == Ok("1")
    });
    eprintln!(
        "bed up in {:?}; writer on n2 {writer_moved:?} after n1's crash; whole test {:?}",
        bed.times.total,
        started.elapsed()
    );
}
