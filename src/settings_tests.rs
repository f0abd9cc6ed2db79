use std::os::unix::fs::PermissionsExt;

use super::*;

const SECRET: &str = "Hunter2-planted-secret";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }
    /// A config file with the required keys plus `extra`.
    fn config(&self, extra: &str) -> PathBuf {
        let repmgr = self.write(
            "repmgr.conf",
            "node_id=2\nnode_name='node2'\nconninfo='host=/tmp/sock port=5433 user=repmgr dbname=repmgr'\n",
        );
        self.write(
            "vip-arbiter.toml",
            &format!(
                "vip = \"10.77.0.100\"\ninterface = \"ens5\"\nrepmgr_config = {:?}\n{extra}",
                repmgr.display().to_string()
            ),
        )
    }
    fn load(&self, path: &Path, env: &[(&str, &str)]) -> Result<Settings, ConfigErrors> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        load_from(Some(path), env, Some(self.dir.path().join("pgpass")))
    }
}

fn errors(r: Result<Settings, ConfigErrors>) -> Vec<String> {
    match r {
        Ok(s) => panic!("expected errors, got {s:?}"),
        Err(e) => e.0,
    }
}

#[test]
fn defaults_then_file_then_env() {
    let f = Fixture::new();
    let path =
        f.config("interval = \"2s\"\npg_unknown_hold = \"5s\"\n[aws]\nverify_interval = \"40s\"\n");
    let s = f.load(&path, &[]).expect("loads");
    assert_eq!(s.interval, Duration::from_secs(2), "file beats default");
    assert_eq!(s.pg_timeout, Duration::from_secs(2), "default");
    assert_eq!(s.pg_unknown_hold, Duration::from_secs(5));
    assert_eq!(s.aws.verify_interval, Duration::from_secs(40));
    assert_eq!(s.on_stop, OnStop::Keep);
    assert_eq!(s.socket, PathBuf::from("/run/vip-arbiter/vip-arbiter.sock"));
    assert_eq!(s.socket_mode, 0o660);
    let s = f
        .load(
            &path,
            &[
                ("VIP_ARBITER_INTERVAL", "500ms"),
                ("VIP_ARBITER_AWS__ENABLED", "true"),
                ("VIP_ARBITER_AWS__VERIFY_INTERVAL", "10s"),
                ("VIP_ARBITER_ON_STOP", "release"),
                ("VIP_ARBITER_NODE_ID", "7"),
                ("OTHER_VAR", "ignored"),
            ],
        )
        .expect("loads");
    assert_eq!(s.interval, Duration::from_millis(500), "env beats file");
    assert!(s.aws.enabled);
    assert_eq!(s.aws.verify_interval, Duration::from_secs(10));
    assert_eq!(s.on_stop, OnStop::Release);
    assert_eq!(s.node_id, 7, "explicit node_id beats repmgr.conf");
}

#[test]
fn repmgr_conf_supplies_node_id_and_conninfo() {
    let f = Fixture::new();
    let s = f.load(&f.config(""), &[]).expect("loads");
    assert_eq!(s.node_id, 2);
    assert_eq!(
        s.pg.conninfo_redacted,
        "host=/tmp/sock port=5433 user=repmgr dbname=repmgr"
    );
    assert_eq!(s.pg.config.get_user(), Some("repmgr"));
    assert_eq!(s.pg.config.get_ports(), &[5433]);
    assert_eq!(
        s.pg.config.get_connect_timeout(),
        Some(&Duration::from_secs(2))
    );
    let s = f
        .load(
            &f.config("conninfo = \"host=/run/pg user=postgres\"\n"),
            &[],
        )
        .expect("loads");
    assert_eq!(
        s.pg.config.get_user(),
        Some("postgres"),
        "explicit conninfo wins"
    );
    assert_eq!(s.pg.config.get_ports(), &[5432], "default port");
}

#[test]
fn each_rule_has_its_error_and_all_are_reported_at_once() {
    let f = Fixture::new();
    let cases: &[(&str, &str)] = &[
        (
            "vip = \"10.0.0.300\"\n",
            "vip: \"10.0.0.300\" is not an IPv4 address",
        ),
        (
            "interface = \"way-too-long-name0\"\n",
            "interface: \"way-too-long-name0\" is not a valid interface name",
        ),
        ("prefix_len = 33\n", "prefix_len: 33 is outside 1..=32"),
        (
            "interval = \"10ms\"\n",
            "interval: 10ms is outside 100ms..=60s",
        ),
        ("interval = \"5\"\n", "interval: \"5\" has no unit"),
        (
            "pg_timeout = \"2 parsecs\"\n",
            "pg_timeout: \"2 parsecs\" has an unknown unit",
        ),
        (
            "pg_unknown_hold = \"2h\"\n",
            "pg_unknown_hold: 2h is outside 0s..=3600s",
        ),
        (
            "on_stop = \"drop\"\n",
            "on_stop: \"drop\" must be \"keep\" or \"release\"",
        ),
        (
            "socket = \"relative.sock\"\n",
            "socket: \"relative.sock\" must be an absolute path",
        ),
        (
            "socket_mode = \"rw\"\n",
            "socket_mode: \"rw\" is not an octal mode",
        ),
        (
            "socket_group = \"no-such-group-va\"\n",
            "socket_group: no group named \"no-such-group-va\"",
        ),
        (
            "kick_allow = [\"root\", \"no-such-user-va\"]\n",
            "kick_allow: no user named \"no-such-user-va\"",
        ),
        (
            "log_level = \"loud\"\n",
            "log_level: \"loud\" must be error, warn, info, debug or trace",
        ),
        ("node_id = 0\n", "node_id: \"0\" is not a positive integer"),
        ("conninfo = \"host=/tmp dbname=x\"\n", "conninfo: no user"),
        (
            "conninfo = \"user=a sslmode=require\"\n",
            "conninfo: sslmode=require is not supported",
        ),
        ("conninfo = \"nonsense\"\n", "conninfo: cannot parse"),
        (
            "repmgr_config = \"/nonexistent/repmgr.conf\"\n",
            "repmgr_config: cannot read /nonexistent/repmgr.conf",
        ),
        (
            "[aws]\neni_id = \"eni-xyz\"\n",
            "aws.eni_id: \"eni-xyz\" does not look like eni-<hex>",
        ),
        (
            "[aws]\nsubnet_id = \"sub-1\"\n",
            "aws.subnet_id: \"sub-1\" does not look like subnet-<hex>",
        ),
        (
            "[aws]\nverify_interval = \"1s\"\n",
            "aws.verify_interval: 1s is outside 5s..=3600s",
        ),
        (
            "[aws]\nfence_command = \" \"\n",
            "aws.fence_command: is empty",
        ),
        ("colour = \"blue\"\n", "unknown field: found `colour`"),
    ];
    let repmgr = f.config("");
    let repmgr = repmgr.with_file_name("repmgr.conf");
    for (extra, want) in cases {
        let (top, aws) = match extra.strip_prefix("[aws]\n") {
            Some(a) => ("", a),
            None => (*extra, ""),
        };
        let overridden = |key: &str| top.starts_with(&format!("{key} "));
        let mut text = String::from(top);
        for (key, line) in [
            ("vip", "vip = \"10.77.0.100\"".to_owned()),
            ("interface", "interface = \"ens5\"".to_owned()),
            (
                "repmgr_config",
                format!("repmgr_config = {:?}", repmgr.display().to_string()),
            ),
        ] {
            if !overridden(key) {
                text.push_str(&format!("{line}\n"));
            }
        }
        text.push_str(&format!("[aws]\n{aws}"));
        let path = f.write("case.toml", &text);
        let errs = errors(f.load(&path, &[]));
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{extra:?}: wanted {want:?} in {errs:?}"
        );
    }
    let empty = f.write("empty-repmgr.conf", "");
    let path = f.write(
        "many.toml",
        &format!(
            "vip = \"x\"\ninterface = \"a/b\"\nrepmgr_config = {:?}\non_stop = \"no\"\n",
            empty.display().to_string()
        ),
    );
    let errs = errors(f.load(&path, &[]));
    assert!(errs.len() >= 5, "all problems at once: {errs:?}");
    assert!(
        errors(f.load(&f.config(""), &[("VIP_ARBITER_TYPO", "1")]))
            .iter()
            .any(|e| e.contains("typo"))
    );
}

#[test]
fn missing_files() {
    let f = Fixture::new();
    let errs = errors(f.load(Path::new("/nonexistent/vip-arbiter.toml"), &[]));
    assert_eq!(
        errs,
        vec!["config file /nonexistent/vip-arbiter.toml does not exist".to_owned()]
    );
    let errs = errors(load_from(None, Vec::new(), None));
    assert!(
        errs.iter().any(|e| e.starts_with("vip: is required")),
        "{errs:?}"
    );
}

#[test]
fn pgpass_fills_the_password_and_nothing_leaks() {
    let f = Fixture::new();
    f.write(
        "pgpass",
        &format!("localhost:5433:repmgr:repmgr:{SECRET}\n"),
    );
    let s = f.load(&f.config(""), &[]).expect("loads");
    assert_eq!(s.pg.config.get_password(), Some(SECRET.as_bytes()));
    for text in [format!("{s:?}"), s.redacted_toml()] {
        assert!(!text.contains(SECRET), "leaked: {text}");
    }
    // A group-readable file is ignored with a warning, like libpq.
    let p = f.dir.path().join("pgpass");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let s = f.load(&f.config(""), &[]).expect("loads");
    assert_eq!(s.pg.config.get_password(), None);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("readable by group or others"))
    );
}

#[test]
fn conninfo_password_never_shown() {
    let f = Fixture::new();
    let path = f.config(&format!(
        "conninfo = \"host=/tmp user=repmgr password='{SECRET} x' dbname=repmgr\"\n"
    ));
    let s = f.load(&path, &[]).expect("loads");
    assert_eq!(
        s.pg.conninfo_redacted,
        "host=/tmp user=repmgr password=******** dbname=repmgr"
    );
    assert!(!format!("{s:?}").contains(SECRET));
    assert!(!s.redacted_toml().contains(SECRET));
    let bad = f.config(&format!(
        "conninfo = \"user=a password={SECRET} sslmode=require\"\n"
    ));
    let errs = errors(f.load(&bad, &[]));
    assert!(!errs.join("\n").contains(SECRET), "{errs:?}");
    let uri = redact_conninfo(&format!(
        "postgres://repmgr:{SECRET}@localhost/repmgr?password={SECRET}&x=1"
    ));
    assert_eq!(
        uri,
        "postgres://repmgr:********@localhost/repmgr?password=********&x=1"
    );
}

#[test]
fn durations_round_trip() {
    for (text, d) in [
        ("1s", 1000),
        ("500ms", 500),
        ("2m", 120_000),
        ("1h", 3_600_000),
        ("0s", 0),
    ] {
        assert_eq!(parse_duration(text), Ok(Duration::from_millis(d)));
        assert_eq!(
            parse_duration(&format_duration(Duration::from_millis(d))),
            Ok(Duration::from_millis(d))
        );
    }
    assert!(parse_duration("").is_err());
    assert!(parse_duration("-1s").is_err());
}

#[test]
fn shipped_example_config_is_valid_and_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/vip-arbiter.toml");
    let env = vec![
        ("VIP_ARBITER_NODE_ID".to_owned(), "1".to_owned()),
        ("VIP_ARBITER_CONNINFO".to_owned(), "user=repmgr".to_owned()),
    ];
    let s = load_from(Some(&path), env, None).expect("the example loads");
    assert_eq!(s.vip, Ipv4Addr::new(10, 0, 1, 100));
    let text = std::fs::read_to_string(&path).expect("read example");
    let raw = serde_json::to_value(crate::config::RawConfig::default()).expect("json");
    let mut keys: Vec<String> = Vec::new();
    for (k, v) in raw.as_object().expect("object") {
        match v.as_object() {
            Some(table) => keys.extend(table.keys().map(|sub| format!("{k}__{sub}"))),
            None => keys.push(k.clone()),
        }
    }
    for key in keys {
        let env_name = format!("VIP_ARBITER_{}", key.to_ascii_uppercase());
        assert!(
            text.contains(&env_name),
            "etc/vip-arbiter.toml does not document {env_name}"
        );
        let leaf = key.rsplit("__").next().unwrap_or(&key);
        assert!(
            text.contains(&format!("{leaf} =")),
            "etc/vip-arbiter.toml has no line for {leaf}"
        );
    }
}

#[test]
fn env_values_stay_text_but_convert_where_a_key_needs_it() {
    let f = Fixture::new();
    let s = f
        .load(
            &f.config(""),
            &[
                ("VIP_ARBITER_SOCKET_MODE", "0640"),
                ("VIP_ARBITER_PREFIX_LEN", "24"),
                ("VIP_ARBITER_AWS__ENABLED", "true"),
                ("VIP_ARBITER_AWS__FENCE_COMMAND", "[ -x /x ] && /x"),
                ("VIP_ARBITER_KICK_ALLOW", "root, 4000000000,"),
                ("VIP_ARBITER_SOCKET_GROUP", "0"),
            ],
        )
        .expect("loads");
    assert_eq!(s.socket_mode, 0o640);
    let kick: Vec<u32> = s.kick_allow.iter().map(|p| p.id).collect();
    assert_eq!(kick, [0, 4_000_000_000], "a comma-separated list");
    assert_eq!(s.socket_group.map(|g| g.name), Some("root".into()));
    assert_eq!(s.prefix_len, Some(24));
    assert!(s.aws.enabled);
    assert_eq!(s.aws.fence_command.as_deref(), Some("[ -x /x ] && /x"));
}
