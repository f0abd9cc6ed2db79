//! `check-config` checks this host, offline, inside a network namespace the test
//! makes (`ens5` 10.77.1.11/20 and its veth peer `ens5p`): the interface exists (its
//! MAC and addresses shown), the VIP is not another interface's primary address, and
//! the repmgr.conf and .pgpass the daemon would read are readable by the service user.
//! Each problem is one line; the exit status says whether the daemon would start
//! (0, or 78).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::Ran;
use support::netns::Netns;
use support::testbed::arbiter_bin;

const NOBODY: u32 = 65534;

/// What this file reads out of `check-config`'s output.
impl Ran {
    /// The lines of the host block.
    fn host(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .skip_while(|l| *l != "# this host")
            .skip(1)
            .collect()
    }

    fn fails(&self) -> Vec<&str> {
        self.host()
            .into_iter()
            .filter(|l| l.starts_with("FAIL: "))
            .collect()
    }

    fn has(&self, line_start: &str) -> bool {
        self.host().iter().any(|l| l.starts_with(line_start))
    }
}

fn check_config(ns: &Netns, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    ns.exec(&arbiter_bin(), &["--config"])
        .arg(config)
        .arg("check-config")
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().copied())
        .output()
        .expect("run vip-arbiter")
        .into()
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A directory every user may search.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn config(dir: &Path, name: &str, vip: &str, interface: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    write(
        &path,
        &format!("vip = \"{vip}\"\ninterface = \"{interface}\"\n{extra}"),
        0o644,
    );
    path
}

const EXPLICIT: &str = "node_id = 1\nconninfo = \"host=/tmp user=repmgr\"\n";

fn mac(ns: &Netns, ifname: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ns.ip(&["-j", "link", "show", ifname])).expect("ip -j link");
    v[0]["address"].as_str().expect("address").to_owned()
}

#[test]
fn the_interface_must_exist_and_is_shown() {
    let ns = Netns::new("cch", "10.77.1.11/20");
    let dir = open_dir();
    let good = config(dir.path(), "good.toml", "10.77.1.100", "ens5", EXPLICIT);
    let r = check_config(&ns, &good, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.fails().is_empty(), "{}", r.all());
    let want = format!(
        "ok: interface ens5 exists: mac {}, up, 10.77.1.11/20",
        mac(&ns, "ens5")
    );
    assert!(r.host().contains(&want.as_str()), "{want:?}: {}", r.all());
    assert!(
        r.has("ok: prefix_len /20 from ens5's own address 10.77.1.11/20"),
        "{}",
        r.all()
    );
    assert!(r.has("ok: service user nobody (uid 65534, "), "{}", r.all());
    // Without --service-user: the unit's User= (installed, else the shipped one).
    let r = check_config(&ns, &good, &[], &[]);
    assert!(
        r.has("ok: service user postgres (uid ") && r.stdout.contains("User= in "),
        "{}",
        r.all()
    );
    // The effective config still comes first, as before.
    assert!(r.stdout.starts_with("# from "), "{}", r.all());

    // interface = "eth9" on a host without eth9: one line, exit 78.
    let eth9 = config(dir.path(), "eth9.toml", "10.77.1.100", "eth9", EXPLICIT);
    let r = check_config(&ns, &eth9, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert_eq!(r.fails().len(), 1, "{}", r.all());
    assert!(
        r.fails()[0]
            .starts_with("FAIL: interface \"eth9\" does not exist on this host (there are: ")
            && r.fails()[0].contains("ens5"),
        "{}",
        r.all()
    );
    // A service user that does not exist: systemd would not start the unit.
    let r = check_config(&ns, &good, &["--service-user", "no-such-user-va"], &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert_eq!(r.fails().len(), 1, "{}", r.all());
    assert!(r.fails()[0].contains("no user named"), "{}", r.all());
    // An interface whose only address would be the VIP: no prefix to take.
    ns.add_address("ens5p", "10.77.5.100/24");
    let only = config(dir.path(), "only.toml", "10.77.5.100", "ens5p", EXPLICIT);
    let r = check_config(&ns, &only, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert!(
        r.fails().len() == 1 && r.fails()[0].contains("no IPv4 address other than the VIP"),
        "{}",
        r.all()
    );
    // ... unless prefix_len is set.
    let set = config(
        dir.path(),
        "set.toml",
        "10.77.5.100",
        "ens5p",
        &format!("prefix_len = 24\n{EXPLICIT}"),
    );
    let r = check_config(&ns, &set, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.has("ok: prefix_len /24 (configured)"), "{}", r.all());
    assert!(
        r.has("ok: the VIP is on ens5p now (10.77.5.100/24)"),
        "{}",
        r.all()
    );
}

#[test]
fn the_vip_must_not_be_another_interfaces_primary_address() {
    let ns = Netns::new("ccv", "10.77.1.11/20");
    let dir = open_dir();
    ns.add_address("ens5p", "10.77.9.100/24"); // the first of its subnet there: primary
    ns.add_address("ens5p", "10.77.9.101/24"); // the second: secondary
    let primary = config(dir.path(), "p.toml", "10.77.9.100", "ens5", EXPLICIT);
    let r = check_config(&ns, &primary, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert_eq!(
        r.fails(),
        [
            "FAIL: the VIP 10.77.9.100 is already a primary address of ens5p (10.77.9.100/24): \
          a VIP must be an address no interface owns"
        ],
        "{}",
        r.all()
    );
    // A secondary address elsewhere is named, but the daemon would start.
    let secondary = config(dir.path(), "s.toml", "10.77.9.101", "ens5", EXPLICIT);
    let r = check_config(&ns, &secondary, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.has("warning: the VIP 10.77.9.101 is also a secondary address of ens5p"),
        "{}",
        r.all()
    );
    // On our own interface (the daemon holding it): fine.
    ns.add_address("ens5", "10.77.1.100/20");
    let held = config(dir.path(), "h.toml", "10.77.1.100", "ens5", EXPLICIT);
    let r = check_config(&ns, &held, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.has("ok: the VIP is on ens5 now (10.77.1.100/20)"),
        "{}",
        r.all()
    );
}

#[test]
fn repmgr_conf_and_pgpass_must_be_readable_by_the_service_user() {
    let ns = Netns::new("ccf", "10.77.1.11/20");
    let dir = open_dir();
    let repmgr = dir.path().join("repmgr.conf");
    write(
        &repmgr,
        "node_id=1\nconninfo='host=/tmp user=repmgr dbname=repmgr'\n",
        0o600,
    );
    let cfg = config(
        dir.path(),
        "va.toml",
        "10.77.1.100",
        "ens5",
        &format!("repmgr_config = {:?}\n", repmgr.display().to_string()),
    );
    let nobody = ["--service-user", "nobody"];
    // root reads it (so the config validates), nobody may not: the daemon would exit 78.
    let r = check_config(&ns, &cfg, &nobody, &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert_eq!(r.fails().len(), 1, "{}", r.all());
    let f = r.fails()[0];
    assert!(
        f.starts_with(&format!(
            "FAIL: repmgr_config {} is not readable by nobody: no read permission on {} (mode 0600, root:",
            repmgr.display(),
            repmgr.display()
        )) && f.ends_with("the daemon would exit 78"),
        "{}",
        r.all()
    );
    // A directory on the way that nobody may not search counts too.
    let hidden = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(hidden.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let deep = hidden.path().join("repmgr.conf");
    write(
        &deep,
        "node_id=1\nconninfo='host=/tmp user=repmgr'\n",
        0o644,
    );
    let deep_cfg = config(
        dir.path(),
        "deep.toml",
        "10.77.1.100",
        "ens5",
        &format!("repmgr_config = {:?}\n", deep.display().to_string()),
    );
    let r = check_config(&ns, &deep_cfg, &nobody, &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert!(
        r.fails().len() == 1 && r.fails()[0].contains("no search permission"),
        "{}",
        r.all()
    );
    // Readable: ok.
    std::fs::set_permissions(&repmgr, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let r = check_config(&ns, &cfg, &nobody, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.has(&format!(
            "ok: repmgr_config {} is readable by nobody",
            repmgr.display()
        )),
        "{}",
        r.all()
    );

    // The .pgpass the daemon would read (here PGPASSFILE): root's, 0600: nobody cannot
    // read it. The daemon starts, so a warning, exit 0.
    let pgpass = dir.path().join("pgpass");
    write(&pgpass, "*:*:*:repmgr:secret-pw\n", 0o600);
    let env = [("PGPASSFILE", pgpass.to_str().expect("utf-8"))];
    let r = check_config(&ns, &cfg, &nobody, &env);
    assert_eq!(r.code, 0, "{}", r.all());
    let shown = pgpass.display();
    assert!(
        r.has(&format!(
            "warning: {shown} (PGPASSFILE) is not readable by nobody: no read permission on {shown} (mode 0600, root:"
        )),
        "{}",
        r.all()
    );
    assert!(!r.all().contains("secret-pw"), "{}", r.all());
    // Owned by the service user, 0600: ok.
    std::os::unix::fs::chown(&pgpass, Some(NOBODY), None).expect("chown");
    let r = check_config(&ns, &cfg, &nobody, &env);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.has(&format!("ok: {shown} (PGPASSFILE) is readable by nobody")),
        "{}",
        r.all()
    );
    // Readable by others: libpq ignores it.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let r = check_config(&ns, &cfg, &nobody, &env);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.has(&format!(
            "warning: {shown} (PGPASSFILE) is readable by group or others"
        )),
        "{}",
        r.all()
    );
    // PGPASSWORD set, or a password in the conninfo: .pgpass is not read at all.
    let r = check_config(&ns, &cfg, &nobody, &[("PGPASSWORD", "x")]);
    assert!(
        r.has("ok: .pgpass is not read (PGPASSWORD is set)"),
        "{}",
        r.all()
    );
    let with_pw = config(
        dir.path(),
        "pw.toml",
        "10.77.1.100",
        "ens5",
        "node_id = 1\nconninfo = \"host=/tmp user=repmgr password=inline-pw\"\n",
    );
    let r = check_config(&ns, &with_pw, &nobody, &env);
    assert!(
        r.has("ok: .pgpass is not read (the conninfo has a password)")
            && r.has("ok: repmgr_config /etc/repmgr.conf is not read"),
        "{}",
        r.all()
    );
    assert!(!r.all().contains("inline-pw"), "{}", r.all());
}
