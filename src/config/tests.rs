//! Unit tests of the settings: defaults, every validation error's text, repmgr.conf and
//! .pgpass fallbacks, redaction.
use std::os::unix::fs::PermissionsExt;

use super::*;

const SECRET: &str = "Hunter2-planted-secret";

struct Fixture {
    dir: tempfile::TempDir,
}

/// The one way the tests write a config file: the required keys (`vip`,
/// `interface`, `repmgr_config` naming the fixture's repmgr.conf), each of which may
/// be replaced, then any other lines.
struct ConfigFile<'f> {
    fixture: &'f Fixture,
    name: String,
    required: Vec<(&'static str, String)>,
    extra: String,
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
    /// vip-arbiter.toml, with a repmgr.conf for node 2 with a conninfo.
    fn file(&self) -> ConfigFile<'_> {
        let repmgr = self.write(
            "repmgr.conf",
            "node_id=2\nnode_name='node2'\nconninfo='host=/tmp/sock port=5433 user=repmgr dbname=repmgr'\n",
        );
        ConfigFile {
            fixture: self,
            name: "vip-arbiter.toml".into(),
            required: vec![
                ("vip", "vip = \"10.77.0.100\"".into()),
                ("interface", "interface = \"ens5\"".into()),
                ("repmgr_config", repmgr_line(&repmgr)),
            ],
            extra: String::new(),
        }
    }
    /// A config file with the required keys plus `extra`.
    fn config(&self, extra: &str) -> PathBuf {
        self.file().set(extra).write()
    }
    fn load(&self, path: &Path, env: &[(&str, &str)]) -> Result<Settings, ConfigErrors> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        load_from(Some(path), env, Some(self.dir.path().join("pgpass")))
    }
}

fn repmgr_line(path: &Path) -> String {
    format!("repmgr_config = {:?}", path.display().to_string())
}

impl ConfigFile<'_> {
    fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
    /// `text` replaces the required key it starts with (`vip = "x"`); any other
    /// text goes after the required keys.
    fn set(mut self, text: &str) -> Self {
        let key = text.split([' ', '\n']).next().unwrap_or_default();
        match self.required.iter_mut().find(|(k, _)| *k == key) {
            Some((_, line)) => *line = text.trim_end().to_owned(),
            None => self.extra.push_str(text),
        }
        self
    }
    fn repmgr(self, path: &Path) -> Self {
        self.set(&repmgr_line(path))
    }
    fn write(self) -> PathBuf {
        let mut text: String = self
            .required
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        text.push_str(&self.extra);
        self.fixture.write(&self.name, &text)
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

/// (a line for the config file, a fragment of the one error it must cause).
const RULES: &[(&str, &str)] = &[
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
        "vip = \"0.0.0.0\"\n",
        "vip: 0.0.0.0 means \"any address\", not one address",
    ),
    (
        "vip = \"255.255.255.255\"\n",
        "vip: 255.255.255.255 is the limited broadcast address",
    ),
    (
        "vip = \"224.0.0.1\"\n",
        "vip: 224.0.0.1 is a multicast address",
    ),
    (
        "vip = \"127.0.0.5\"\n",
        "vip: 127.0.0.5 is a loopback address (127.0.0.0/8): no other host can reach it on ens5",
    ),
    ("vip = \"169.254.0.9\"\n", "vip: 169.254.0.9 is link-local"),
    (
        "vip = \"10.77.0.0\"\nprefix_len = 24\n",
        "vip: 10.77.0.0 is the network address of 10.77.0.0/24 (prefix_len)",
    ),
    (
        "vip = \"10.77.0.255\"\nprefix_len = 24\n",
        "vip: 10.77.0.255 is the broadcast address of 10.77.0.0/24 (prefix_len)",
    ),
    (
        "socket = \"/run/vip-arbiter/0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789.sock\"\n",
        "socket: the path is 122 bytes; a unix socket's path holds at most 107",
    ),
    (
        "socket = \"/run/vip-arbiter/\"\n",
        "socket: \"/run/vip-arbiter/\" names a directory",
    ),
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
    (
        "colour = \"blue\"\n",
        "colour: unknown key (the keys here: vip, interface,",
    ),
    (
        "intervall = \"1s\"\n",
        "intervall: unknown key; did you mean interval?",
    ),
    (
        "[aws]\nregoin = \"x\"\n",
        "aws.regoin: unknown key; did you mean aws.region?",
    ),
    (
        "pg_timeout = 5\n",
        "pg_timeout: expected a duration as text (\"2s\", \"500ms\", \"1.5s\"), found the number 5",
    ),
];

#[test]
fn each_rule_has_its_error_and_all_are_reported_at_once() {
    let f = Fixture::new();
    for (extra, want) in RULES {
        let path = f.file().named("case.toml").set(extra).write();
        let errs = errors(f.load(&path, &[]));
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{extra:?}: wanted {want:?} in {errs:?}"
        );
    }
    let empty = f.write("empty-repmgr.conf", "");
    let path = (f.file().named("many.toml"))
        .set("vip = \"x\"")
        .set("interface = \"a/b\"")
        .repmgr(&empty)
        .set("on_stop = \"no\"\n")
        .write();
    let errs = errors(f.load(&path, &[]));
    assert!(errs.len() >= 5, "all problems at once: {errs:?}");
    // A problem with a key an environment variable set names the variable (issue 19).
    let errs = errors(f.load(&f.config(""), &[("VIP_ARBITER_TYPO", "1")]));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("VIP_ARBITER_TYPO (environment): unknown key")),
        "{errs:?}"
    );
}

#[test]
fn durations_take_a_fraction_to_the_millisecond() {
    use crate::config::validate::parse_duration;
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("0.25m"), Ok(Duration::from_secs(15)));
    assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("1.0001s"), Ok(Duration::from_secs(1)));
    for bad in ["1.s", ".5s", "1.2.3s", "1.5ms", "1.5"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
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
    for key in crate::config::keys::KEYS {
        let key = key.name.replace('.', "__");
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

/// Every piece a planted password could show up as: the whole, and its halves (a
/// value split at a space or cut by a parser).
fn pieces(secret: &str) -> Vec<&str> {
    let mut v = vec![secret];
    v.extend(secret.split([' ', '\\']).filter(|p| p.len() >= 5));
    v
}

fn assert_no_secret(secret: &str, what: &str, text: &str) {
    for p in pieces(secret) {
        assert!(!text.contains(p), "{what} shows {p:?}:\n{text}");
    }
}

/// Everything a load can show: errors, or Debug (also of the raw config),
/// `check-config`'s text and the warnings.
fn shown(r: &Result<Settings, ConfigErrors>) -> String {
    match r {
        Ok(s) => format!(
            "{s:?}\n{s:#?}\n{}\n{}\n{:?}",
            s.redacted_toml(),
            s.warnings.join("\n"),
            s.pg
        ),
        Err(e) => format!("{e}\n{e:?}"),
    }
}

const PW: &str = "Ag7-planted-pw";

/// (config file lines holding `PW`, whether the file must load).
fn planted_password_cases() -> Vec<(String, bool)> {
    vec![
        (
            format!("conninfo = \"host=/tmp user=a password={PW}\"\n"),
            true,
        ),
        (
            format!("conninfo = \"host=/tmp user=a password = '{PW} x'\"\n"),
            true,
        ),
        // A backslash-escaped space keeps one value (tokio-postgres's grammar).
        (
            format!("conninfo = 'host=/tmp user=a password={PW}\\ tail-of-pw'\n"),
            true,
        ),
        (
            format!("conninfo = \"postgres://a:{PW}@localhost/db\"\n"),
            true,
        ),
        (
            format!("conninfo = \"postgresql://a:{PW}/x@localhost/db\"\n"),
            true,
        ),
        (
            format!("conninfo = \"postgres://a@localhost/db?pass%77ord={PW}&connect_timeout=1\"\n"),
            true,
        ),
        // Broken conninfos: the error never quotes them.
        (
            format!("conninfo = \"user=a password={PW} sslmode=require\"\n"),
            false,
        ),
        (
            format!("conninfo = \"user=a password=first {PW}=x\"\n"),
            false,
        ),
        (
            format!("conninfo = \"user=a password=first {PW} host=x\"\n"),
            false,
        ),
        (format!("conninfo = \"user=a password='{PW}\"\n"), false),
        (format!("conninfo = \"user=a password {PW}\"\n"), false),
        (
            format!("conninfo = \"postgres://a:{PW}@host:99999/db\"\n"),
            false,
        ),
        (
            format!("conninfo = \"postgres://a:{PW}@localhost/db?{PW}\"\n"),
            false,
        ),
        // TOML syntax errors on the conninfo line: toml's own message quotes the line.
        (format!("conninfo = \"user=a password={PW}\n"), false),
        (format!("conninfo = \"user=a password=\"{PW}\"\"\n"), false),
        (format!("conninfo = user=a password={PW}\n"), false),
        // A password under a key of another type: figment would quote the value.
        (format!("node_id = \"{PW}\"\n"), false),
        (format!("prefix_len = \"{PW}\"\n"), false),
        (format!("[aws]\nenabled = \"{PW}\"\n"), false),
    ]
}

#[test]
fn no_planted_password_in_any_error_or_debug_output() {
    let f = Fixture::new();
    let cases = planted_password_cases();
    for (extra, loads) in &cases {
        let r = f.load(&f.config(extra), &[]);
        assert_eq!(r.is_ok(), *loads, "{extra:?}: {}", shown(&r));
        let text = shown(&r);
        assert!(!text.trim().is_empty());
        assert_no_secret(PW, extra, &text);
        if let Ok(s) = &r {
            assert!(
                s.pg.config
                    .get_password()
                    .is_some_and(|p| String::from_utf8_lossy(p).contains(PW)),
                "{extra:?}: the driver gets the password"
            );
            assert!(s.pg.conninfo_redacted.contains("********"), "{text}");
        }
    }
    // The raw layer's Debug too (a panic in an `expect` would print it).
    let path = f.config(&format!("conninfo = \"user=a password={PW}\"\n"));
    let (raw, _) = crate::config::raw::load_raw(Some(&path), Vec::new()).expect("raw");
    assert_no_secret(PW, "RawConfig Debug", &format!("{raw:?} {raw:#?}"));
    // The messages still say where and what.
    let errs = errors(f.load(
        &f.config(&format!("conninfo = \"user=a password={PW}\n")),
        &[],
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("TOML syntax error at line 4, column")),
        "{errs:?}"
    );
    let errs = errors(f.load(
        &f.config(&format!("conninfo = \"user=a password=first {PW}=x\"\n")),
        &[],
    ));
    assert!(
        errs.iter().any(|e| e.contains("an unknown option")),
        "{errs:?}"
    );
    let errs = errors(f.load(&f.config("conninfo = \"user=a passfile=/x\"\n"), &[]));
    assert!(
        errs.iter()
            .any(|e| e.contains("option `passfile` is not supported")),
        "{errs:?}"
    );
    let errs = errors(f.load(&f.config(&format!("node_id = \"{PW}\"\n")), &[]));
    assert!(
        errs.iter()
            .any(|e| e.contains("node_id: expected a whole number, found a string")),
        "{errs:?}"
    );
}

#[test]
fn repmgr_conf_errors_never_quote_its_lines() {
    const PW: &str = "Bq3-planted-pw";
    let f = Fixture::new();
    for repmgr in [
        format!("node_id=2\nconninfo='host=/tmp user=repmgr password='{PW}''\n"),
        format!("node_id=2\nconninfo='host=/tmp user=repmgr password='\n{PW}' x=1\n"),
        format!("node_id=2\n{PW}\n"),
        format!("node_id=2\nconninfo='user=repmgr password={PW}\n"),
    ] {
        let rc = f.write("broken-repmgr.conf", &repmgr);
        let path = f.file().named("uses-broken.toml").repmgr(&rc).write();
        let errs = errors(f.load(&path, &[]));
        assert!(
            errs.iter().any(|e| e.starts_with("repmgr_config: ")),
            "{errs:?}"
        );
        assert_no_secret(PW, &repmgr, &errs.join("\n"));
    }
}

#[test]
fn password_sources_in_libpq_order_and_none_shown() {
    const PW_CONNINFO: &str = "Cc1-conninfo-planted";
    const PW_ENV: &str = "Dd2-pgpassword-planted";
    const PW_FILE: &str = "Ee3-pgpass-planted";
    let f = Fixture::new();
    f.write("pgpass", &format!("*:*:*:*:{PW_FILE}\n"));
    let base = f.config("");
    let with_pw = f.file().named("with-pw.toml").set(&format!(
        "conninfo = \"host=/tmp/sock port=5433 user=repmgr dbname=repmgr password={PW_CONNINFO}\"\n"
    )).write();
    let cases = [
        (&with_pw, vec![("PGPASSWORD", PW_ENV)], PW_CONNINFO),
        (&base, vec![("PGPASSWORD", PW_ENV)], PW_ENV),
        (&base, vec![("PGPASSWORD", "")], PW_FILE),
        (&base, vec![], PW_FILE),
    ];
    for (path, env, want) in cases {
        let r = f.load(path, &env);
        let s = r.as_ref().expect("loads");
        assert_eq!(s.pg.config.get_password(), Some(want.as_bytes()), "{env:?}");
        let text = shown(&r);
        for pw in [PW_CONNINFO, PW_ENV, PW_FILE] {
            assert_no_secret(pw, "settings", &text);
        }
    }
    // The conninfo from the environment, password and all.
    let r = f.load(
        &base,
        &[(
            "VIP_ARBITER_CONNINFO",
            &format!("host=/tmp user=repmgr password={PW_CONNINFO}"),
        )],
    );
    assert_eq!(
        r.as_ref().expect("loads").pg.config.get_password(),
        Some(PW_CONNINFO.as_bytes())
    );
    assert_no_secret(PW_CONNINFO, "env conninfo", &shown(&r));
}

#[test]
fn redaction_follows_the_driver_grammar() {
    for (conninfo, want) in [
        (
            "host=/tmp user=a password=x\\ y dbname=d",
            "host=/tmp user=a password=******** dbname=d",
        ),
        (
            "user=a password = 'x y' dbname=d",
            "user=a password=******** dbname=d",
        ),
        (
            "user=a password='a\\' b' dbname=d",
            "user=a password=******** dbname=d",
        ),
        (
            "postgres://u:p/w@h/db?password=x&a=1",
            "postgres://u:********@h/db?password=********&a=1",
        ),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgres://u@h/db?pass%77ord=x",
            "postgres://u@h/db?pass%77ord=********",
        ),
    ] {
        assert_eq!(redact_conninfo(conninfo), want, "{conninfo}");
    }
}

#[test]
fn check_config_prints_every_key_in_file_order() {
    let f = Fixture::new();
    let path = f.config(
        "prefix_len = 24\nnode_id = 3\nconninfo = \"host=/tmp user=repmgr password=pw\"\n\
         interval = \"1500ms\"\non_stop = \"release\"\nsocket_group = \"0\"\n\
         kick_allow = [\"root\", \"0\"]\nlog_level = \"debug\"\n[aws]\nenabled = true\n\
         region = \"eu-west-1\"\neni_id = \"eni-0a\"\nfence_command = \"/bin/true\"\n\
         [http]\nlisten = \"0.0.0.0:8008\"\nallow = [\"10.0.0.0/8\", \"::1\"]\n",
    );
    let s = f.load(&path, &[]).expect("loads");
    let want = format!(
        "# from {} and VIP_ARBITER_* environment\n\
         vip = \"10.77.0.100\"\ninterface = \"ens5\"\nprefix_len = 24\nnode_id = 3\n\
         conninfo = \"host=/tmp user=repmgr password=********\"\ninterval = \"1500ms\"\n\
         pg_timeout = \"2s\"\npg_unknown_hold = \"10s\"\non_stop = \"release\"\n\
         socket = \"/run/vip-arbiter/vip-arbiter.sock\"\nsocket_mode = \"0660\"\n\
         socket_group = \"root\"\n\
         kick_allow = [\"root\", \"root\"]  # root and the service user are always allowed\n\
         log_level = \"debug\"\n\n[aws]\nenabled = true\nregion = \"eu-west-1\"\n\
         eni_id = \"eni-0a\"\nsubnet_id = (unset)\nverify_interval = \"30s\"\n\
         cloud_unknown_hold = \"300s\"\nconsistency_bound = \"60s\"\n\
         state_file = \"/var/lib/vip-arbiter/fence.json\"\nfence_command = \"/bin/true\"\n\n\
         [http]\nlisten = \"0.0.0.0:8008\"\nallow = [\"10.0.0.0/8\", \"::1/128\"]\n",
        path.display()
    );
    assert_eq!(s.redacted_toml(), want);
    let s = from_text(
        "vip = \"10.0.1.100\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"user=a\"\n",
        Vec::new(),
    )
    .expect("loads");
    let text = s.redacted_toml();
    assert!(
        text.starts_with(
            "# from built-in defaults and VIP_ARBITER_* environment (no config file)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\nprefix_len = (from the interface's own address)\n")
            && text.contains("\nsocket_group = (the service user's group)\n")
            && text.contains("\nkick_allow = []  # root")
            && text.contains("\nfence_command = (unset)\n")
            && text.contains("\nlisten = (unset: no TCP listener)\n")
            && text.contains("\nallow = [\"127.0.0.0/8\", \"::1/128\"]\n"),
        "{text}"
    );
}

#[test]
fn four_bad_aws_values_give_four_lines() {
    // Issue 19: an early return after the first bad duration hid the rest.
    let f = Fixture::new();
    let path = f.config(
        "[aws]\nverify_interval = \"1s\"\ncloud_unknown_hold = \"2h\"\nconsistency_bound = \"x\"\nstate_file = \"rel/fence.json\"\n",
    );
    let errs = errors(f.load(&path, &[]));
    let keys: Vec<&str> = errs
        .iter()
        .map(|e| e.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "aws.verify_interval",
            "aws.cloud_unknown_hold",
            "aws.consistency_bound",
            "aws.state_file"
        ],
        "{errs:?}"
    );
}

#[test]
fn type_errors_unknown_keys_and_rules_are_reported_together() {
    // serde stops at the first bad key; the merge sets it back and goes on, and the
    // rules still run on the rest (a key the merge named is not named twice).
    let f = Fixture::new();
    let path = f
        .file()
        .set("vip = 5")
        .set("colour = \"blue\"\ninterval = 3\npg_timeout = \"10ms\"\n[aws]\nenabled = \"maybe\"\nflavour = 1\n")
        .write();
    let errs = errors(f.load(&path, &[("VIP_ARBITER_TYPO", "1")]));
    let keys: Vec<&str> = errs
        .iter()
        .map(|e| e.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "aws.enabled",
            "aws.flavour",
            "colour",
            "interval",
            "VIP_ARBITER_TYPO (environment)",
            "vip",
            "pg_timeout"
        ],
        "{errs:?}"
    );
}
