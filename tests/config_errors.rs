//! The real binary against a config that is wrong in each documented way
//! (docs/configuration.md): `run` and `check-config` exit 78 (EX_CONFIG) with exactly
//! one line on stderr, naming the key and the problem, and nothing on stdout (the
//! host checks come only after the config validates: tests/check_config_host.rs). The
//! SIGHUP case (a running daemon keeps its old config) is in daemon_kernel_only.rs.

mod support;

use std::path::Path;
use std::process::Command;

use support::testbed::arbiter_bin;

/// (what to put in the file, the key, a fragment of the problem). Lines under `[aws]`
/// start with "aws:"; `env:` cases set one environment variable instead.
const CASES: &[(&str, &str, &str)] = &[
    ("vip = \"10.0.0.300\"", "vip", "is not an IPv4 address"),
    ("vip = 5", "vip", "expected a string, found the number 5"),
    ("vip = \"0.0.0.0\"", "vip", "means \"any address\""),
    ("vip = \"255.255.255.255\"", "vip", "limited broadcast"),
    ("vip = \"224.0.0.1\"", "vip", "is a multicast address"),
    ("vip = \"127.0.0.5\"", "vip", "is a loopback address"),
    (
        "vip = \"10.77.0.0\"\nprefix_len = 24",
        "vip",
        "is the network address of 10.77.0.0/24",
    ),
    (
        "socket = \"/run/vip-arbiter/a-socket-path-of-one-hundred-and-twenty-characters-which-is-over-what-sun-path-holds-0123456789ab.sock\"",
        "socket",
        "a unix socket's path holds at most 107",
    ),
    (
        "interface = \"way-too-long-name0\"",
        "interface",
        "is not a valid interface name",
    ),
    ("prefix_len = 33", "prefix_len", "is outside 1..=32"),
    ("node_id = -4", "node_id", "is not a positive integer"),
    ("conninfo = \"dbname=x\"", "conninfo", "no user"),
    ("conninfo = \"nonsense\"", "conninfo", "cannot parse"),
    (
        "conninfo = \"user=a sslmode=require\"",
        "conninfo",
        "sslmode=require is not supported",
    ),
    (
        "repmgr_config = \"/nonexistent/repmgr.conf\"",
        "repmgr_config",
        "cannot read",
    ),
    ("interval = \"10ms\"", "interval", "is outside 100ms..=60s"),
    ("interval = \"1\"", "interval", "has no unit"),
    ("pg_timeout = \"2 parsecs\"", "pg_timeout", "unknown unit"),
    ("pg_unknown_hold = \"2h\"", "pg_unknown_hold", "is outside"),
    (
        "on_stop = \"drop\"",
        "on_stop",
        "must be \"keep\" or \"release\"",
    ),
    (
        "socket = \"relative.sock\"",
        "socket",
        "must be an absolute path",
    ),
    (
        "socket_mode = \"rw\"",
        "socket_mode",
        "is not an octal mode",
    ),
    (
        "socket_mode = \"01777\"",
        "socket_mode",
        "is not an octal mode",
    ),
    (
        "socket_group = \"no-such-group-va\"",
        "socket_group",
        "no group named",
    ),
    (
        "kick_allow = [\"no-such-user-va\"]",
        "kick_allow",
        "no user named",
    ),
    ("log_level = \"loud\"", "log_level", "must be error, warn"),
    ("colour = \"blue\"", "colour", "unknown key"),
    (
        "aws:eni_id = \"eni-xyz\"",
        "aws.eni_id",
        "does not look like eni-<hex>",
    ),
    (
        "aws:subnet_id = \"sub-1\"",
        "aws.subnet_id",
        "does not look like subnet-<hex>",
    ),
    (
        "aws:verify_interval = \"1s\"",
        "aws.verify_interval",
        "is outside 5s..=3600s",
    ),
    (
        "aws:cloud_unknown_hold = \"2h\"",
        "aws.cloud_unknown_hold",
        "is outside",
    ),
    ("aws:fence_command = \" \"", "aws.fence_command", "is empty"),
    (
        "aws:enabled = \"maybe\"",
        "aws.enabled",
        "expected true or false, found a string",
    ),
    ("aws:colour = \"blue\"", "aws.colour", "unknown key"),
    (
        "[http]\nlisten = \"localhost:8008\"",
        "http.listen",
        "is not an address and port",
    ),
    (
        "[http]\nallow = [\"10.1.2.3/8\"]",
        "http.allow",
        "has host bits set",
    ),
    (
        "[http]\nallow = \"10.0.0.0/8\"",
        "http.allow",
        "expected a list, found a string",
    ),
    (
        "env:VIP_ARBITER_HTTP__LISTEN=8008",
        "http.listen",
        "\"8008\"",
    ),
    ("env:VIP_ARBITER_INTERVAL=fast", "interval", "\"fast\""),
    (
        "env:VIP_ARBITER_AWS__REGOIN=eu-west-1",
        "VIP_ARBITER_AWS__REGOIN (environment)",
        "unknown key; did you mean aws.region?",
    ),
];

fn write_config(dir: &Path, case: &str) -> std::path::PathBuf {
    let repmgr = dir.join("repmgr.conf");
    std::fs::write(
        &repmgr,
        "node_id=1\nconninfo='host=/tmp user=repmgr dbname=repmgr'\n",
    )
    .expect("write repmgr.conf");
    let (top, aws) = match case.strip_prefix("aws:") {
        Some(a) => (String::new(), a.to_owned()),
        None if case.starts_with("env:") => (String::new(), String::new()),
        None => (case.to_owned(), String::new()),
    };
    let key_of = |line: &str| line.split(' ').next().unwrap_or("").to_owned();
    let mut text = String::new();
    for (key, line) in [
        ("vip", "vip = \"10.77.0.100\"".to_owned()),
        ("interface", "interface = \"ens5\"".to_owned()),
        (
            "repmgr_config",
            format!("repmgr_config = {:?}", repmgr.display().to_string()),
        ),
    ] {
        if !top.lines().any(|l| key_of(l) == key) {
            text.push_str(&format!("{line}\n"));
        }
    }
    text.push_str(&format!("{top}\n[aws]\n{aws}\n"));
    let path = dir.join("vip-arbiter.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn each_documented_mistake_exits_78_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut seen = 0;
    for (case, key, problem) in CASES {
        let path = write_config(dir.path(), case);
        for verb in ["check-config", "run"] {
            let mut cmd = Command::new(arbiter_bin());
            cmd.arg("--config").arg(&path).arg(verb);
            // Only this test's variables: a stray VIP_ARBITER_* would be an error too.
            cmd.env_clear().env("PATH", "/usr/bin:/bin");
            if let Some((k, v)) = case.strip_prefix("env:").and_then(|e| e.split_once('=')) {
                cmd.env(k, v);
            }
            let out = cmd.output().expect("run vip-arbiter");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(out.status.code(), Some(78), "{case} ({verb}): {stderr}");
            assert!(
                out.stdout.is_empty(),
                "{case} ({verb}): stdout {:?}",
                out.stdout
            );
            assert_eq!(lines.len(), 1, "{case} ({verb}): one line, got {lines:?}");
            let want = format!("config error: {key}: ");
            assert!(
                lines[0].starts_with(&want) && lines[0].contains(problem),
                "{case} ({verb}): wanted {want:?}…{problem:?}, got {:?}",
                lines[0]
            );
            seen += 1;
        }
    }
    assert_eq!(seen, CASES.len() * 2);
}

#[test]
fn every_problem_is_reported_at_once_one_line_each() {
    // Issue 19: four bad [aws] values gave one line (the first).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "aws:verify_interval = \"1s\"\ncloud_unknown_hold = \"2h\"\nconsistency_bound = \"x\"\nstate_file = \"rel/fence.json\"",
    );
    for verb in ["check-config", "run"] {
        let out = Command::new(arbiter_bin())
            .arg("--config")
            .arg(&path)
            .arg(verb)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("run vip-arbiter");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{verb}: {stderr}");
        let keys: Vec<&str> = stderr
            .lines()
            .map(|l| {
                l.strip_prefix("config error: ")
                    .and_then(|l| l.split(':').next())
                    .unwrap_or(l)
            })
            .collect();
        assert_eq!(
            keys,
            [
                "aws.verify_interval",
                "aws.cloud_unknown_hold",
                "aws.consistency_bound",
                "aws.state_file"
            ],
            "{verb}: {stderr}"
        );
    }
}

#[test]
fn type_errors_and_unknown_keys_do_not_hide_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "vip = 5\ncolour = \"blue\"\ninterval = \"10ms\"",
    );
    let out = Command::new(arbiter_bin())
        .arg("--config")
        .arg(&path)
        .arg("run")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run vip-arbiter");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 3
            && lines[0].starts_with("config error: colour: unknown key")
            && lines[1].starts_with("config error: vip: expected a string")
            && lines[2] == "config error: interval: 10ms is outside 100ms..=60s",
        "{stderr}"
    );
}

#[test]
fn a_valid_file_passes_the_same_harness() {
    // The harness itself: without a mistake, check-config succeeds (so the cases above
    // fail for their own line, not for something the harness left out). check-config
    // also checks this host: `lo` exists everywhere (with 127.0.0.1/8, whose network
    // holds the VIP), and the files are judged as the user running the test.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), "interface = \"lo\"\nvip = \"127.0.0.5\"");
    let me = nix::unistd::Uid::effective().to_string();
    let out = Command::new(arbiter_bin())
        .arg("--config")
        .arg(&path)
        .args(["check-config", "--service-user", &me])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run vip-arbiter");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("interface = \"lo\""), "{stdout}");
    assert!(
        stdout.contains("# this host\nok: service user ") && !stdout.contains("FAIL"),
        "{stdout}"
    );
}
