//! Planted secrets never come out of any channel the real daemon and its verbs have.
//!
//! PostgreSQL: a role whose real password is planted, reached through a
//! `scram-sha-256` pg_hba line, so the password really is used; it comes from the
//! config file's conninfo, from a .pgpass file (`PGPASSFILE`) and from `PGPASSWORD`,
//! each once right (auth succeeds, the VIP is held) and once wrong (auth fails, the
//! error paths run). Each daemon runs at `log_level = "trace"` with `RUST_LOG=trace`
//! for several passes, takes a SIGHUP, and is asked for `/health`, `/metrics`,
//! `status`, `status --json`, `check`, `kick`, `check-config` and `plan`; broken
//! configurations holding the password go through `check-config` and `run`. Every
//! stdout, stderr, log and HTTP body is searched for every planted password.
//!
//! AWS: the daemon in EC2 mode against the emulator with a planted access key id,
//! secret key and session token, at trace: the start-up self-test, a takeover, an
//! UnauthorizedOperation while repairing drift, `check-config --online` and `plan`.
//! None of the three appears anywhere (the access key id is not secret, but the log
//! caps keep it out too, and this test holds them to it).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use support::Ran;
use support::bed::Bed;
use support::pg_cluster::{PG_BINDIR, PgCluster, PgNode, write_postgres_file};
use support::testbed::{Arbiter, Hub, arbiter_bin, hand_assign, kernel_has, wait_until};

const VIP: &str = "10.77.0.100";
const ROLE: &str = "va_pw";

/// A value found nowhere else: `<prefix>-<random hex>-<tag>`.
fn planted(prefix: &str, tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mix = (u64::try_from(nanos % u128::from(u64::MAX)).unwrap_or(7)
        ^ u64::from(std::process::id()).rotate_left(32))
    .wrapping_add(
        N.fetch_add(1, Ordering::SeqCst)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    format!("{prefix}-{mix:016x}-{tag}")
}

/// Every output collected, searched at the end for every secret (whole, and the
/// random core alone, which would also catch a cut or re-encoded copy).
struct Seen {
    secrets: Vec<String>,
    outputs: Vec<(String, String)>,
}

impl Seen {
    fn new(secrets: &[&str]) -> Seen {
        Seen {
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            outputs: Vec::new(),
        }
    }

    fn add(&mut self, channel: impl Into<String>, text: impl Into<String>) {
        self.outputs.push((channel.into(), text.into()));
    }

    fn add_run(&mut self, channel: &str, r: &Ran) {
        self.add(format!("{channel} stdout"), r.stdout.clone());
        self.add(format!("{channel} stderr"), r.stderr.clone());
    }

    fn assert_clean(&self) {
        let mut needles: Vec<&str> = Vec::new();
        for s in &self.secrets {
            needles.push(s);
            if let Some(core) = s.split('-').find(|p| p.len() == 16) {
                needles.push(core);
            }
        }
        let mut bytes = 0;
        for (channel, text) in &self.outputs {
            bytes += text.len();
            for n in &needles {
                assert!(
                    !text.contains(n),
                    "{channel} shows the planted secret {n:?}:\n{text}"
                );
            }
        }
        assert!(
            bytes > 10_000,
            "searched only {bytes} bytes in {} outputs: nothing ran?",
            self.outputs.len()
        );
        eprintln!(
            "searched {} outputs, {bytes} bytes, for {} planted secrets: none found",
            self.outputs.len(),
            self.secrets.len()
        );
    }
}

/// `vip-arbiter --config <config> <args>`, inside `ns` if given, with `env` (and
/// nothing from a journald environment: output must reach our pipes).
fn verb(config: &Path, ns: Option<&str>, env: &[(String, String)], args: &[&str]) -> Ran {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, &arbiter_bin()]);
            c
        }
        None => Command::new(arbiter_bin()),
    };
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap_or_else(|e| panic!("run vip-arbiter {args:?}: {e}"))
        .into()
}

/// The raw body of GET `path` on a daemon's socket.
fn http_get(socket: &Path, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "3", "--unix-socket"])
        .arg(socket)
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn passes(a: &Arbiter) -> u64 {
    a.health()
        .and_then(|h| h["pass_count"].as_u64())
        .unwrap_or(0)
}

fn last_error(a: &Arbiter) -> String {
    a.health()
        .and_then(|h| h["last_error"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn sighup(a: &Arbiter) {
    let pid = a.pid().expect("running").to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
}

/// Checks common to every daemon log at trace: it logged, our DEBUG lines are there,
/// and no TRACE line came from a dependency (our crate has none; RUST_LOG=trace
/// must not unlock theirs).
fn assert_trace_log(name: &str, log: &str) {
    assert!(log.contains("starting"), "{name}: no start line:\n{log}");
    assert!(
        log.contains("DEBUG") && log.contains("pass done"),
        "{name}: no DEBUG pass lines at log_level trace:\n{log}"
    );
    assert!(
        !log.contains(" TRACE "),
        "{name}: a dependency logged at TRACE:\n{log}"
    );
}

/// Give `ROLE` the password `pw` on node1 and make unix-socket logins as it use
/// scram-sha-256 (everyone else keeps `trust`). Checks with psql that the password
/// is really required: right works, wrong and none fail.
fn require_password(node: &PgNode, pw: &str) {
    node.psql_db(
        "postgres",
        &format!("CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{pw}'"),
    );
    let hba = node.data_dir().join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    write_postgres_file(&hba, &format!("local all {ROLE} scram-sha-256\n{old}"));
    node.psql_db("postgres", "SELECT pg_reload_conf()");
    let login = |password: Option<&str>| {
        let mut cmd = node.command(&format!("{PG_BINDIR}/psql"));
        cmd.args(["-XAtqw", "-h"])
            .arg(node.socket_dir())
            .args(["-p", &node.port().to_string(), "-U", ROLE, "-d", "repmgr"])
            .args(["-c", "SELECT 1"]);
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        cmd.output().expect("psql")
    };
    wait_until(Duration::from_secs(10), "pg_hba reload", || {
        !login(None).status.success()
    });
    let ok = login(Some(pw));
    assert!(
        ok.status.success(),
        "the planted password does not log in: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = login(Some("not-the-password"));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("password authentication failed"),
        "a wrong password must fail authentication: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Where one daemon gets its password.
struct Case {
    name: &'static str,
    in_conninfo: Option<String>,
    in_pgpass: Option<String>,
    in_env: Option<String>,
    auth_ok: bool,
}

#[test]
fn postgres_passwords_never_leak() {
    let cluster = PgCluster::start();
    let node = cluster.node1().clone();
    let pw_ok = planted("pw", "right-planted");
    let bad_conninfo = planted("pw", "wrong-conninfo-planted");
    let bad_pgpass = planted("pw", "wrong-pgpass-planted");
    let bad_env = planted("pw", "wrong-env-planted");
    require_password(&node, &pw_ok);
    let mut seen = Seen::new(&[&pw_ok, &bad_conninfo, &bad_pgpass, &bad_env]);
    let cases = password_cases(&pw_ok, &bad_conninfo, &bad_pgpass, &bad_env);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub = Hub::new();
    let daemons = start_a_daemon_per_case(&mut hub, dir.path(), &node, &cases);
    each_reaches_its_verdict(&daemons);
    every_output_is_clean(&daemons, &mut seen);
    reloads_good_then_broken(&daemons[0], &pw_ok, &mut seen);
    let host_ns = stop_and_read_the_logs(daemons, &mut seen);

    broken_configs(
        &mut seen,
        dir.path(),
        &node,
        &pw_ok,
        &pg_config(&node, None),
        &host_ns,
    );
    seen.assert_clean();
}

/// A daemon of `postgres_passwords_never_leak`: its case, its namespace, its
/// environment, the daemon.
type CaseDaemon<'a> = (&'a Case, String, Vec<(String, String)>, Arbiter);

/// The six ways a password reaches the daemon: right and wrong, in the conninfo, a
/// .pgpass and PGPASSWORD.
fn password_cases(pw_ok: &str, bad_conninfo: &str, bad_pgpass: &str, bad_env: &str) -> [Case; 6] {
    let (pw_ok, bad_conninfo, bad_pgpass, bad_env) = (
        pw_ok.to_owned(),
        bad_conninfo.to_owned(),
        bad_pgpass.to_owned(),
        bad_env.to_owned(),
    );
    [
        Case {
            name: "conninfo",
            in_conninfo: Some(pw_ok.clone()),
            in_pgpass: None,
            in_env: None,
            auth_ok: true,
        },
        Case {
            name: "pgpass",
            in_conninfo: None,
            in_pgpass: Some(pw_ok.clone()),
            in_env: None,
            auth_ok: true,
        },
        Case {
            name: "pgpassword",
            in_conninfo: None,
            in_pgpass: None,
            in_env: Some(pw_ok.clone()),
            auth_ok: true,
        },
        Case {
            name: "conninfo-wrong",
            in_conninfo: Some(bad_conninfo.clone()),
            in_pgpass: None,
            in_env: None,
            auth_ok: false,
        },
        Case {
            name: "pgpass-wrong",
            in_conninfo: None,
            in_pgpass: Some(bad_pgpass.clone()),
            in_env: None,
            auth_ok: false,
        },
        Case {
            name: "pgpassword-wrong",
            in_conninfo: None,
            in_pgpass: None,
            in_env: Some(bad_env.clone()),
            auth_ok: false,
        },
    ]
}

/// The conninfo to `node` as the planted role, with `pw` in it if given.
fn pg_conninfo(node: &PgNode, pw: Option<&String>) -> String {
    let mut c = format!(
        "host={} port={} user={ROLE} dbname=repmgr",
        node.socket_dir().display(),
        node.port()
    );
    if let Some(pw) = pw {
        c.push_str(&format!(" password={pw}"));
    }
    c
}

/// The daemon's config for `node` (trace logging, 300 ms passes), `pw` in the conninfo.
fn pg_config(node: &PgNode, pw: Option<&String>) -> String {
    format!(
        "vip = \"{VIP}\"\ninterface = \"ens5\"\nprefix_len = 32\nnode_id = 1\nconninfo = \"{}\"\n\
         interval = \"300ms\"\npg_timeout = \"2s\"\npg_unknown_hold = \"1s\"\nlog_level = \"trace\"\n",
        pg_conninfo(node, pw)
    )
}

/// A daemon per case, each in its own node namespace, at trace.
fn start_a_daemon_per_case<'a>(
    hub: &mut Hub,
    dir: &Path,
    node: &PgNode,
    cases: &'a [Case],
) -> Vec<CaseDaemon<'a>> {
    let mut daemons = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let ns = hub.node(&format!("s{i}"), &format!("10.77.0.{}", 21 + i));
        let pgpass = dir.join(format!("{}.pgpass", case.name));
        if let Some(pw) = &case.in_pgpass {
            std::fs::write(
                &pgpass,
                format!("# planted\nlocalhost:{}:repmgr:{ROLE}:{pw}\n", node.port()),
            )
            .expect("write pgpass");
            std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod pgpass");
        }
        let env: Vec<(String, String)> = vec![
            ("PGPASSFILE".into(), pgpass.display().to_string()),
            ("PGPASSWORD".into(), case.in_env.clone().unwrap_or_default()),
            ("RUST_LOG".into(), "trace".into()),
        ];
        let env_ref: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let a = Arbiter::start(
            &ns,
            dir,
            case.name,
            &pg_config(node, case.in_conninfo.as_ref()),
            &env_ref,
        );
        daemons.push((case, ns, env, a));
    }

    daemons
}

/// Each makes passes; the right passwords hold, the wrong ones fail authentication
/// (28P01) and are pg-unknown.
fn each_reaches_its_verdict(daemons: &[CaseDaemon]) {
    for (case, _, _, a) in daemons {
        wait_until(Duration::from_secs(20), "several passes", || passes(a) >= 4);
        if case.auth_ok {
            wait_until(Duration::from_secs(10), "holding", || {
                a.verdict() == "holding"
            });
        } else {
            wait_until(Duration::from_secs(10), "pg-unknown", || {
                a.verdict() == "pg-unknown"
            });
            let e = a
                .health()
                .and_then(|h| h["verdict"].as_str().map(str::to_owned))
                .unwrap_or_default();
            assert!(
                e.contains("password authentication failed") && e.contains("28P01"),
                "{}: the wrong password must fail authentication, got {e:?}",
                case.name
            );
        }
    }
}

/// /health, /metrics, status, check, kick, check-config and plan of each daemon:
/// their expected content, recorded in `seen`.
fn every_output_is_clean(daemons: &[CaseDaemon], seen: &mut Seen) {
    for (case, ns, env, a) in daemons {
        let name = case.name;
        let health = http_get(&a.socket, "/health");
        assert!(health.contains("\"verdict\""), "{name}: {health}");
        seen.add(format!("{name} GET /health"), health);
        let metrics = http_get(&a.socket, "/metrics");
        assert!(
            metrics.contains("vip_arbiter_passes_total"),
            "{name}: {metrics}"
        );
        assert!(
            metrics.contains("vip_arbiter_observer_failures_total"),
            "{name}: {metrics}"
        );
        seen.add(format!("{name} GET /metrics"), metrics);

        let status = verb(&a.config, None, env, &["status"]);
        assert!(
            status.stdout.contains("verdict"),
            "{name}: {}",
            status.all()
        );
        seen.add_run(&format!("{name} status"), &status);
        let json = verb(&a.config, None, env, &["status", "--json"]);
        assert!(json.stdout.contains("last_error"), "{name}: {}", json.all());
        seen.add_run(&format!("{name} status --json"), &json);
        let check = verb(&a.config, None, env, &["check"]);
        let want = if case.auth_ok { 0 } else { 2 };
        assert_eq!(check.code, want, "{name}: {}", check.all());
        assert!(check.stdout.starts_with("VIP-ARBITER "), "{name}");
        seen.add_run(&format!("{name} check"), &check);
        let kick = verb(&a.config, None, env, &["kick", "1", "standby_promote", "1"]);
        assert_eq!(kick.code, 0, "{name}: {}", kick.all());
        seen.add_run(&format!("{name} kick"), &kick);

        // In the daemon's namespace: check-config also checks the host (ens5).
        let cc = verb(&a.config, Some(ns), env, &["check-config"]);
        assert_eq!(cc.code, 0, "{name}: {}", cc.all());
        assert!(
            cc.stdout.contains("conninfo = \"host="),
            "{name}: {}",
            cc.all()
        );
        if case.in_conninfo.is_some() {
            assert!(
                cc.stdout.contains("password=********"),
                "{name}: {}",
                cc.all()
            );
        }
        seen.add_run(&format!("{name} check-config"), &cc);

        let plan = verb(&a.config, Some(ns), env, &["plan"]);
        assert_eq!(plan.code, 0, "{name}: {}", plan.all());
        assert!(plan.stdout.contains("verdict:"), "{name}: {}", plan.all());
        if !case.auth_ok {
            assert!(
                plan.stdout.contains("password authentication failed"),
                "{name}: {}",
                plan.all()
            );
        }
        seen.add_run(&format!("{name} plan"), &plan);
    }
}

/// Reloads: a good one, then one whose TOML breaks on the conninfo line itself.
fn reloads_good_then_broken(daemon: &CaseDaemon, pw_ok: &str, seen: &mut Seen) {
    let (_, _, env, a) = daemon;
    let good = std::fs::read_to_string(&a.config).expect("config");
    sighup(a);
    wait_until(Duration::from_secs(10), "a reload", || {
        a.log_text().contains("configuration reloaded")
    });
    let broken = good.replace(&format!("password={pw_ok}\""), &format!("password={pw_ok}"));
    assert_ne!(broken, good);
    std::fs::write(&a.config, &broken).expect("break config");
    sighup(a);
    wait_until(Duration::from_secs(10), "the refused reload", || {
        a.log_text().contains("configuration reload refused")
    });
    // The client verbs read the config too: on a broken one they report it (one
    // line on stderr) and still ask the daemon, on the socket the broken file names.
    let status = verb(&a.config, None, env, &["status"]);
    assert!(
        status.code == 0 || status.code == 1,
        "status is never fatal: {}",
        status.all()
    );
    assert!(
        status.stderr.contains("TOML syntax error") && status.stdout.contains("verdict"),
        "{}",
        status.all()
    );
    seen.add_run("status on a broken config", &status);
    std::fs::write(&a.config, &good).expect("restore config");
}

/// SIGTERM exits 0; each log is a trace log, the wrong passwords' say so. Returns the
/// first daemon's namespace (for the broken configs' host checks).
fn stop_and_read_the_logs(daemons: Vec<CaseDaemon>, seen: &mut Seen) -> String {
    let host_ns = daemons[0].1.clone();
    for (case, _, _, mut a) in daemons {
        assert_eq!(a.stop(), Some(0), "{}: SIGTERM exits 0", case.name);
        let log = a.log_text();
        assert_trace_log(case.name, &log);
        if !case.auth_ok {
            assert!(
                log.contains("password authentication failed"),
                "{}: {log}",
                case.name
            );
        }
        seen.add(format!("{} daemon log", case.name), log);
    }
    host_ns
}

/// Configurations that fail, each holding the password somewhere: `check-config` and
/// `run` must exit 78 naming the problem and nothing of the password.
fn broken_configs(seen: &mut Seen, dir: &Path, node: &PgNode, pw: &str, base: &str, ns: &str) {
    let repmgr_conf = dir.join("broken-repmgr.conf");
    std::fs::write(
        &repmgr_conf,
        format!(
            "node_id=1\nconninfo='host={} user={ROLE} password='{pw}''\n",
            node.socket_dir().display()
        ),
    )
    .expect("write repmgr.conf");
    let insecure = dir.join("insecure.pgpass");
    std::fs::write(&insecure, format!("*:*:*:*:{pw}\n")).expect("write");
    std::fs::set_permissions(
        &insecure,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let without_conninfo: String = base
        .lines()
        .filter(|l| !l.starts_with("conninfo") && !l.starts_with("node_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unterminated TOML string",
            format!("{without_conninfo}conninfo = \"user={ROLE} password={pw}\n"),
            "TOML syntax error",
        ),
        (
            "nested TOML quotes",
            format!("{without_conninfo}conninfo = \"user={ROLE} password=\"{pw}\"\"\n"),
            "TOML syntax error",
        ),
        (
            "unquoted space in the password",
            format!("{without_conninfo}conninfo = \"user={ROLE} password=x {pw}=1\"\n"),
            "conninfo: cannot parse",
        ),
        (
            "password without =",
            format!("{without_conninfo}conninfo = \"user={ROLE} password {pw}\"\n"),
            "conninfo: cannot parse",
        ),
        (
            "sslmode=require",
            format!("{without_conninfo}conninfo = \"user={ROLE} password={pw} sslmode=require\"\n"),
            "sslmode=require is not supported",
        ),
        (
            "nested quotes in repmgr.conf",
            format!(
                "{without_conninfo}repmgr_config = {:?}\n",
                repmgr_conf.display().to_string()
            ),
            "repmgr_config: ",
        ),
        (
            "a password under a number key",
            format!("{without_conninfo}conninfo = \"user={ROLE}\"\nnode_id = \"{pw}\"\n"),
            "node_id: expected a whole number, found a string",
        ),
    ];
    for (what, text, want) in cases {
        let path = dir.join("broken.toml");
        std::fs::write(&path, &text).expect("write");
        for args in [&["check-config"][..], &["run"][..]] {
            let r = verb(&path, None, &[], args);
            assert_eq!(r.code, 78, "{what} {args:?}: {}", r.all());
            assert!(
                r.stderr.contains("config error") && r.stderr.contains(want),
                "{what} {args:?}: wanted {want:?}: {}",
                r.all()
            );
            seen.add_run(&format!("{what}: {args:?}"), &r);
        }
    }
    // A group-readable .pgpass holding the password: a warning naming the file only.
    let path = dir.join("warns.toml");
    std::fs::write(
        &path,
        format!("{without_conninfo}node_id = 1\nconninfo = \"host=/tmp user={ROLE}\"\n"),
    )
    .expect("write");
    let env = vec![
        ("PGPASSFILE".to_owned(), insecure.display().to_string()),
        ("PGPASSWORD".to_owned(), String::new()),
    ];
    let r = verb(&path, Some(ns), &env, &["check-config"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("readable by group or others"),
        "{}",
        r.all()
    );
    seen.add_run("check-config with an insecure .pgpass", &r);
    // The conninfo from the environment.
    let env = vec![(
        "VIP_ARBITER_CONNINFO".to_owned(),
        format!("host=/tmp user={ROLE} password={pw}"),
    )];
    let r = verb(&path, Some(ns), &env, &["check-config"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("password=********"), "{}", r.all());
    seen.add_run("check-config with VIP_ARBITER_CONNINFO", &r);
}

#[test]
fn aws_credentials_never_leak() {
    let bed = Bed::builder().postgres().ec2().build();
    let (cluster, hub, n1, dir, emu) = (bed.cluster(), bed.hub(), bed.ns(1), bed.dir(), bed.emu());
    let (eni1, eni2) = (bed.eni(1).to_owned(), bed.eni(2).to_owned());
    let subnet = bed.subnet().to_owned();

    let key_id = format!(
        "AKIA{}",
        planted("K", "X")
            .split('-')
            .nth(1)
            .expect("core")
            .to_ascii_uppercase()
    );
    let secret_key = planted("sk", "planted-secret-access-key");
    let token = planted("st", "planted-session-token");
    let mut seen = Seen::new(&[&key_id, &secret_key, &token]);
    let env: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".into(), emu.url.clone()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret_key.clone()),
        ("AWS_SESSION_TOKEN".into(), token.clone()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("RUST_LOG".into(), "trace".into()),
    ];
    let cfg = format!(
        "vip = \"{VIP}\"\ninterface = \"ens5\"\nprefix_len = 32\nrepmgr_config = {:?}\ninterval = \"500ms\"\n\
         log_level = \"trace\"\n[aws]\nenabled = true\nregion = \"us-east-1\"\neni_id = \"{eni1}\"\n\
         subnet_id = \"{subnet}\"\nverify_interval = \"5s\"\nconsistency_bound = \"2s\"\n",
        cluster.node1().repmgr_conf().display().to_string()
    );
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut a = Arbiter::start(n1, dir, "aws", &cfg, &env_ref);
    wait_until(
        Duration::from_secs(20),
        "the takeover at EC2 and in the kernel",
        || {
            emu.holders(VIP) == vec![eni1.clone()]
                && kernel_has(n1, VIP)
                && a.verdict() == "holding"
        },
    );
    let calls = emu.calls();
    let from_n1 = |action: &str| {
        calls
            .iter()
            .filter(|c| c["source"] == "10.77.0.11" && c["action"] == action)
            .count()
    };
    assert!(
        from_n1("AssignPrivateIpAddresses") >= 1
            && from_n1("CreateTags") >= 2
            && from_n1("DescribeNetworkInterfaces") >= 2,
        "signed EC2 calls were made (self-test and takeover): {calls:?}"
    );

    // An error path: the VIP moved away by hand, and the move back refused.
    emu.control(
        "POST",
        "/_va/fault",
        Some(&json!({"kind": "unauthorized", "seconds": 60,
            "actions": ["AssignPrivateIpAddresses"], "sources": ["10.77.0.11"]})),
    );
    hand_assign(&hub.ns, &emu.url, &eni2, VIP);
    wait_until(Duration::from_secs(20), "the refused repair", || {
        last_error(&a).contains("not authorized")
    });
    let online = verb(&a.config, Some(n1), &env, &["check-config", "--online"]);
    assert!(
        online
            .stdout
            .contains("ok: ec2:DescribeNetworkInterfaces allowed"),
        "{}",
        online.all()
    );
    seen.add_run("check-config --online", &online);
    let plan = verb(&a.config, Some(n1), &env, &["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.stdout.contains("verdict:"), "{}", plan.all());
    seen.add_run("plan", &plan);
    for (path, want) in [
        ("/health", "not authorized"),
        ("/metrics", "UnauthorizedOperation"),
    ] {
        let body = http_get(&a.socket, path);
        assert!(body.contains(want), "{path}: {body}");
        seen.add(format!("GET {path} (refused)"), body);
    }
    emu.control("DELETE", "/_va/fault", None);
    wait_until(Duration::from_secs(20), "the VIP back on n1", || {
        emu.holders(VIP) == vec![eni1.clone()] && a.verdict() == "holding"
    });

    for path in ["/health", "/metrics"] {
        seen.add(format!("GET {path}"), http_get(&a.socket, path));
    }
    for args in [&["status"][..], &["status", "--json"], &["check"]] {
        let r = verb(&a.config, None, &env, args);
        assert!(r.stdout.contains("holding"), "{args:?}: {}", r.all());
        seen.add_run(&format!("{args:?}"), &r);
    }
    let r = verb(&a.config, None, &env, &["kick"]);
    assert_eq!(r.code, 0, "{}", r.all());
    seen.add_run("kick", &r);
    let cc = verb(&a.config, Some(n1), &env, &["check-config"]);
    assert_eq!(cc.code, 0, "{}", cc.all());
    seen.add_run("check-config", &cc);

    assert_eq!(a.stop(), Some(0));
    let log = a.log_text();
    assert_trace_log("aws", &log);
    for want in [
        "EC2 mode",
        "start-up self-test",
        "step done: assign_cloud",
        "UnauthorizedOperation",
    ] {
        assert!(log.contains(want), "the log lacks {want:?}:\n{log}");
    }
    seen.add("daemon log", log);
    seen.assert_clean();
}
