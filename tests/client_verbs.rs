//! The client verbs keep their contracts whatever the config and the daemon are:
//! `status` (0 converged, 1 not, 3 no answer), `check` (a monitoring plugin: 0–3 and
//! exactly one line, also for a missing or broken config, a bad answer or a usage
//! error) and `kick` (always 0). The real binary against a missing, a broken (bad
//! values; bad TOML) and a good config, with and without a daemon: the daemon is the
//! real health socket (`server::serve`) over a canned snapshot.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use vip_arbiter::health::server::{self, HealthSource};
use vip_arbiter::health::socket_access::KickAllow;
use vip_arbiter::health::state::Snapshot;

use support::Ran;
use support::testbed::arbiter_bin;

#[derive(Default)]
struct Canned {
    answer: Mutex<(bool, String)>,
    kicks: AtomicU32,
}

impl HealthSource for Canned {
    fn health(&self) -> (bool, String) {
        self.answer.lock().expect("lock").clone()
    }
    fn metrics(&self) -> String {
        String::new()
    }
    fn kick(&self) {
        self.kicks.fetch_add(1, Ordering::SeqCst);
    }
    fn unfence(&self) {
        panic!("no client verb test asks for an unfence");
    }
}

/// A socket served on its own thread until dropped.
struct Daemon {
    path: PathBuf,
    source: Arc<Canned>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    fn start(path: &Path) -> Daemon {
        let source = Arc::new(Canned::default());
        let stop = CancellationToken::new();
        let (p, src, st) = (path.to_owned(), source.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            support::testbed::rt().block_on(async move {
                let listener = server::bind(&p, 0o660, None).await.expect("bind");
                ready_tx.send(()).expect("ready");
                server::serve(listener, src, KickAllow::new(&[]), st).await;
            });
        });
        ready_rx.recv().expect("socket bound");
        let d = Daemon {
            path: path.to_owned(),
            source,
            stop,
            thread: Some(thread),
        };
        d.answer("ok", true);
        d
    }

    /// Answer a snapshot with this severity ("ok", "warning", "critical", or anything).
    fn answer(&self, severity: &str, converged: bool) {
        let s = Snapshot {
            node_id: 1,
            vip: "10.77.0.100".into(),
            interface: "ens5".into(),
            role: "primary".into(),
            verdict: format!("{severity}-verdict: as canned"),
            verdict_kind: "holding".into(),
            severity: severity.into(),
            converged,
            ..Snapshot::default()
        };
        self.raw_answer(converged, &serde_json::to_string(&s).expect("json"));
    }

    fn raw_answer(&self, converged: bool, body: &str) {
        *self.source.answer.lock().expect("lock") = (converged, body.to_owned());
    }

    fn kicks(&self) -> u32 {
        self.source.kicks.load(Ordering::SeqCst)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Something else on a socket: every connection gets `response`, as is.
fn raw_server(path: &Path, response: &'static [u8]) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind raw");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(response);
        }
    })
}

/// The binary with only PATH in its environment (no VIP_ARBITER_*, no HOME).
fn run(config: Option<&Path>, args: &[&str]) -> Ran {
    let mut cmd = Command::new(arbiter_bin());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run vip-arbiter")
        .into()
}

/// The plugin's contract: exactly one line on stdout, starting as plugins do.
fn one_plugin_line(r: &Ran, label: &str) -> String {
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", r.all());
    assert!(
        lines[0].starts_with(&format!("VIP-ARBITER {label} - ")),
        "{label}: {}",
        r.all()
    );
    // Perfdata after one '|' when the daemon answered (issue 19, item 10); none else.
    let (text, perf) = match lines[0].split_once('|') {
        Some((t, p)) => (t.trim_end(), Some(p)),
        None => (lines[0], None),
    };
    if let Some(p) = perf {
        assert!(!p.contains('|'), "one perfdata separator: {}", r.all());
        for want in ["last_pass_age=", "pass_duration=", "passes=", "converged="] {
            assert!(p.contains(want), "perfdata {want}: {}", r.all());
        }
    } else {
        assert_ne!(label, "OK", "an answer carries perfdata: {}", r.all());
    }
    text.to_owned()
}

/// The three configs: (name, file, what the one-line mention contains).
fn configs(dir: &Path, socket: &Path) -> Vec<(&'static str, PathBuf, Option<&'static str>)> {
    let s = socket.display();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!(
            "socket = \"{s}\"\nvip = \"10.77.0.100\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"host=/tmp user=repmgr\"\n"
        ),
    )
    .expect("write");
    let bad_values = dir.join("bad-values.toml");
    std::fs::write(
        &bad_values,
        format!(
            "vip = \"10.0.0.300\"\nsocket = \"{s}\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"host=/tmp user=repmgr\"\n"
        ),
    )
    .expect("write");
    let bad_toml = dir.join("bad-toml.toml");
    std::fs::write(
        &bad_toml,
        format!("vip = \"10.77.0.100\nsocket = \"{s}\"\n[aws\nenabled = true\n"),
    )
    .expect("write");
    vec![
        ("good", good, None),
        ("bad values", bad_values, Some("does not validate: vip: ")),
        ("bad TOML", bad_toml, Some("TOML syntax error")),
    ]
}

#[test]
fn status_check_and_kick_with_good_broken_and_missing_configs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("run/live.sock");
    let dead = dir.path().join("run/dead.sock");
    let daemon = Daemon::start(&live);
    let missing = dir.path().join("missing.toml");

    for (up, socket) in [(true, &live), (false, &dead)] {
        for (name, cfg, mention) in configs(dir.path(), socket) {
            let what = format!("{name} config, daemon {}", if up { "up" } else { "down" });
            // status: the table (0) or "not answering" (3); a broken config is one line
            // on stderr, never fatal.
            let r = run(Some(&cfg), &["status"]);
            assert_eq!(
                r.code,
                if up { 0 } else { 3 },
                "status, {what}: {}",
                r.all()
            );
            if up {
                assert!(r.stdout.contains("verdict"), "{what}: {}", r.all());
                assert!(
                    r.stdout.contains(" s ago, took "),
                    "the last pass's age: {}",
                    r.all()
                );
            } else {
                assert!(r.stdout.is_empty(), "{what}: {}", r.all());
            }
            // status --json: JSON on stdout either way (issue 19, item 10).
            let r = run(Some(&cfg), &["status", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&r.stdout)
                .unwrap_or_else(|e| panic!("status --json, {what}: {e}: {}", r.all()));
            if up {
                assert_eq!(r.code, 0, "{}", r.all());
                assert!(v["verdict"].is_string(), "{v}");
            } else {
                assert_eq!(
                    (r.code, &v["answering"]),
                    (3, &serde_json::json!(false)),
                    "{v}"
                );
                assert!(
                    v["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("not answering")),
                    "{v}"
                );
            }
            let note: Vec<&str> = r.stderr.lines().filter(|l| l.contains("config")).collect();
            match mention {
                Some(m) => assert!(
                    note.len() == 1 && note[0].contains(m),
                    "status, {what}: one line naming the problem: {}",
                    r.all()
                ),
                None => assert!(note.is_empty(), "status, {what}: {}", r.all()),
            }
            // check: the daemon's severity, or UNKNOWN; the config problem in the line.
            let r = run(Some(&cfg), &["check"]);
            let line = if up {
                assert_eq!(r.code, 0, "check, {what}: {}", r.all());
                one_plugin_line(&r, "OK")
            } else {
                assert_eq!(r.code, 3, "check, {what}: {}", r.all());
                let l = one_plugin_line(&r, "UNKNOWN");
                assert!(l.contains("daemon not answering"), "{what}: {l}");
                assert!(l.contains(&socket.display().to_string()), "{what}: {l}");
                l
            };
            match mention {
                Some(m) => assert!(line.contains(m), "check, {what}: {line}"),
                None => assert!(!line.contains("config"), "check, {what}: {line}"),
            }
            // kick: always 0, and it reaches the daemon whenever there is one.
            let before = daemon.kicks();
            let r = run(
                Some(&cfg),
                &["kick", "1", "standby_promote", "1", "2026", "x"],
            );
            assert_eq!(r.code, 0, "kick, {what}: {}", r.all());
            assert_eq!(
                daemon.kicks(),
                before + u32::from(up),
                "kick, {what}: {}",
                r.all()
            );
        }
    }

    // A missing --config: mentioned, never fatal; --socket still finds the daemon.
    let sock = live.display().to_string();
    let r = run(Some(&missing), &["status", "--socket", &sock]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("does not exist"), "{}", r.all());
    let r = run(Some(&missing), &["check", "--socket", &sock]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        one_plugin_line(&r, "OK").contains("does not exist"),
        "{}",
        r.all()
    );
    let before = daemon.kicks();
    let r = run(
        Some(&missing),
        &["kick", "--socket", &sock, "1", "repmgrd_start"],
    );
    assert_eq!((r.code, daemon.kicks()), (0, before + 1), "{}", r.all());
    // ... and without --socket it asks the default path.
    let default = "/run/vip-arbiter/vip-arbiter.sock";
    for verb in ["status", "check", "kick"] {
        let r = run(Some(&missing), &[verb]);
        let want = match verb {
            "kick" => 0,
            _ if Path::new(default).exists() => r.code, // a real daemon on this host
            _ => 3,
        };
        assert_eq!(r.code, want, "{verb}, missing config: {}", r.all());
        assert!(r.all().contains(default), "{verb}: {}", r.all());
    }
    if !Path::new(default).exists() {
        let r = run(Some(&missing), &["check"]);
        let l = one_plugin_line(&r, "UNKNOWN");
        assert!(l.contains("does not exist"), "{l}");
    }

    // --socket wins over the config's socket.
    let (_, good_dead, _) = configs(dir.path(), &dead).remove(0);
    let r = run(Some(&good_dead), &["check", "--socket", &sock]);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn check_maps_every_answer_to_0_through_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live.sock");
    let daemon = Daemon::start(&live);
    let sock = live.display().to_string();
    let check = || run(None, &["check", "--socket", &sock]);
    for (severity, converged, code, label) in [
        ("ok", true, 0, "OK"),
        ("warning", false, 1, "WARNING"),
        ("critical", false, 2, "CRITICAL"),
        ("mauve", true, 3, "UNKNOWN"),
    ] {
        daemon.answer(severity, converged);
        let r = check();
        assert_eq!(r.code, code, "{severity}: {}", r.all());
        let l = one_plugin_line(&r, label);
        assert!(l.contains(&format!("{severity}-verdict")), "{l}");
        // status: 0 converged, 1 not.
        let s = run(None, &["status", "--socket", &sock]);
        assert_eq!(s.code, if converged { 0 } else { 1 }, "{}", s.all());
    }
    // A daemon that has not finished its first pass (its real answer).
    daemon.raw_answer(
        false,
        r#"{"verdict":"starting: no pass completed yet","severity":"unknown"}"#,
    );
    let r = check();
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(one_plugin_line(&r, "UNKNOWN").contains("not completed a pass"));
    // status: 1 (it answered, not converged), one line, never the raw JSON.
    let s = run(None, &["status", "--socket", &sock]);
    assert_eq!(s.code, 1, "{}", s.all());
    assert_eq!(
        s.stdout,
        "vip-arbiter is starting: no pass completed yet\n",
        "{}",
        s.all()
    );
    // A verdict with a newline and a '|' still makes one line.
    daemon.raw_answer(
        true,
        &serde_json::to_string(&Snapshot {
            verdict: "holding: a\nb | c".into(),
            severity: "ok".into(),
            ..Snapshot::default()
        })
        .expect("json"),
    );
    let r = check();
    assert_eq!(r.code, 0, "{}", r.all());
    one_plugin_line(&r, "OK");
    // Garbage JSON from the right daemon.
    daemon.raw_answer(true, "{\"verdict\": 5");
    let r = check();
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(one_plugin_line(&r, "UNKNOWN").contains("bad answer"));
    drop(daemon);

    // Something else on the socket: not HTTP, or HTTP but not vip-arbiter.
    for (i, (name, response, want)) in [
        ("not HTTP", &b"SSH-2.0-OpenSSH_9.2\r\n"[..], "bad answer"),
        (
            "HTTP 404",
            &b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"[..],
            "HTTP 404",
        ),
        (
            "HTTP 200, not JSON",
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..],
            "bad answer",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("raw-{i}.sock"));
        let _server = raw_server(&path, response);
        let r = run(None, &["check", "--socket", &path.display().to_string()]);
        assert_eq!(r.code, 3, "{name}: {}", r.all());
        assert!(
            one_plugin_line(&r, "UNKNOWN").contains(want),
            "{name}: {}",
            r.all()
        );
        let r = run(None, &["kick", "--socket", &path.display().to_string()]);
        assert_eq!(r.code, 0, "kick, {name}: {}", r.all());
        // status: 3 (no vip-arbiter answered), one line on stderr, never the raw body.
        let r = run(None, &["status", "--socket", &path.display().to_string()]);
        assert_eq!(r.code, 3, "status, {name}: {}", r.all());
        assert!(r.stdout.is_empty(), "status, {name}: {}", r.all());
        assert_eq!(r.stderr.lines().count(), 1, "status, {name}: {}", r.all());
        assert!(
            r.stderr.contains("is this vip-arbiter's socket?")
                || r.stderr.contains("not answering"),
            "status, {name}: {}",
            r.all()
        );
    }
    // A daemon that refuses the kick (403: the caller is not allowed) or answers an
    // error: still 0 for repmgr, and one line on stderr that says so (issue 19, item 8).
    for (i, (status, body)) in [
        (
            403,
            "kick refused: uid 1001 is not root, the service user or in kick_allow\n",
        ),
        (500, "internal error\n"),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("refusing-{i}.sock"));
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _server = raw_server(&path, Box::leak(response.into_bytes().into_boxed_slice()));
        let r = run(None, &["kick", "--socket", &path.display().to_string()]);
        assert_eq!(r.code, 0, "kick against {status}: {}", r.all());
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {}", r.all());
        assert!(
            lines[0].starts_with(&format!(
                "vip-arbiter kick: not kicked: HTTP {status} from "
            )) && lines[0].contains(body.trim()),
            "{}",
            r.all()
        );
    }
}

#[test]
fn usage_errors_keep_the_contracts() {
    // check: UNKNOWN, one line; kick: 0; --help is still help.
    let r = run(None, &["check", "--no-such-flag"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        one_plugin_line(&r, "UNKNOWN").contains("usage"),
        "{}",
        r.all()
    );
    let r = run(None, &["--no-such-flag", "check"]);
    assert_eq!(r.code, 3, "{}", r.all());
    one_plugin_line(&r, "UNKNOWN");
    let r = run(None, &["check", "--socket"]);
    assert_eq!(r.code, 3, "{}", r.all());
    let r = run(None, &["kick", "--no-such-flag", "1"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("ignored"), "{}", r.all());
    let r = run(None, &["--config", "/nonexistent.toml", "--bogus", "kick"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = run(None, &["check", "--help"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("--socket"), "{}", r.all());
    // Other verbs keep clap's usage exit status.
    let r = run(None, &["status", "--no-such-flag"]);
    assert_eq!(r.code, 2, "{}", r.all());
}
