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
    // run refuses it as a configuration error too (it exited 1: systemd restarted it).
    let r = verb(&ns, &eth9, "run");
    assert_eq!(r.code, 78, "{}", r.all());
    assert!(
        r.stderr.contains("interface \"eth9\" does not exist"),
        "{}",
        r.all()
    );
    // A service user that does not exist: systemd would not start the unit.
    let r = check_config(&ns, &good, &["--service-user", "no-such-user-va"], &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert_eq!(r.fails().len(), 1, "{}", r.all());
    assert!(r.fails()[0].contains("no user named"), "{}", r.all());
    // An interface whose only address would be the VIP: that is its own address.
    ns.add_address("ens5p", "10.77.5.100/24");
    let only = config(dir.path(), "only.toml", "10.77.5.100", "ens5p", EXPLICIT);
    let r = check_config(&ns, &only, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert!(
        r.fails().len() == 2
            && r.fails()[0].contains("no IPv4 address other than the VIP")
            && r.fails()[1].contains("interface's own address"),
        "{}",
        r.all()
    );
    // ... and so with prefix_len set (issue 19: this passed with "ok: the VIP is on
    // ens5p now", and `plan` then showed `ip addr del` of the node's own address).
    let set = config(
        dir.path(),
        "set.toml",
        "10.77.5.100",
        "ens5p",
        &format!("prefix_len = 24\n{EXPLICIT}"),
    );
    let r = check_config(&ns, &set, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert!(r.has("ok: prefix_len /24 (configured)"), "{}", r.all());
    assert_eq!(
        r.fails(),
        [
            "FAIL: the VIP is on ens5p now, and 10.77.5.100/24 is the only address of its network \
             on ens5p: it is the interface's own address, which vip-arbiter never removes"
        ],
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
            "FAIL: the VIP 10.77.9.100 is already an address of ens5p (10.77.9.100/24, primary): \
             this host uses it; a VIP must be an address no interface has"
        ],
        "{}",
        r.all()
    );
    // A secondary address elsewhere is a use too.
    let secondary = config(dir.path(), "s.toml", "10.77.9.101", "ens5", EXPLICIT);
    let r = check_config(&ns, &secondary, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert_eq!(
        r.fails(),
        [
            "FAIL: the VIP 10.77.9.101 is already an address of ens5p (10.77.9.101/24, secondary): \
             this host uses it; a VIP must be an address no interface has"
        ],
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
    // As a /32 (the primary of its own network by the kernel's flags): fine too.
    ns.add_address("ens5", "10.77.1.101/32");
    let lone = config(dir.path(), "l.toml", "10.77.1.101", "ens5", EXPLICIT);
    let r = check_config(&ns, &lone, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.has("ok: the VIP is on ens5 now (10.77.1.101/32)"),
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

/// `run` (and `plan`) in the namespace: exit code and stderr.
fn verb(ns: &Netns, config: &Path, verb: &str) -> Ran {
    ns.exec(&arbiter_bin(), &["--config"])
        .arg(config)
        .arg(verb)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("run vip-arbiter")
        .into()
}

/// A config for `run` whose socket lives in `dir` (the default /run path is the
/// host's).
fn runnable(dir: &Path, name: &str, vip: &str, extra: &str) -> PathBuf {
    let socket = dir.join(format!("{name}.sock"));
    config(
        dir,
        name,
        vip,
        "ens5",
        &format!(
            "socket = {:?}\nlog_level = \"error\"\n{EXPLICIT}{extra}",
            socket.display().to_string()
        ),
    )
}

#[test]
fn run_and_plan_refuse_the_interfaces_own_address_with_78() {
    // Issue 19, item 1: vip = ens5's own address.
    let ns = Netns::new("ccown", "10.77.1.11/24");
    let dir = open_dir();
    let own = runnable(dir.path(), "own.toml", "10.77.1.11", "prefix_len = 24\n");
    let want = "10.77.1.11/24 is the only address of its network on ens5: it is the \
                interface's own address, which vip-arbiter never removes";
    let r = check_config(&ns, &own, &["--service-user", "nobody"], &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert!(r.fails().iter().any(|f| f.contains(want)), "{}", r.all());
    for v in ["run", "plan"] {
        let r = verb(&ns, &own, v);
        assert_eq!(r.code, 78, "{v}: {}", r.all());
        assert!(
            r.stderr
                .contains("configuration: the VIP is on ens5 now, and ")
                && r.stderr.contains(want),
            "{v}: {}",
            r.all()
        );
    }
    // The address is still there.
    assert_eq!(ns.addresses("ens5"), [("10.77.1.11".to_owned(), 24)]);
}

#[test]
fn a_vip_outside_the_interfaces_network_or_its_broadcast_fails() {
    // Issue 19, item 2: these passed, and `plan` added a route for a foreign network.
    let ns = Netns::new("ccnet", "10.77.1.11/24");
    let dir = open_dir();
    let nobody = ["--service-user", "nobody"];
    let outside = runnable(dir.path(), "out.toml", "10.77.2.100", "");
    let r = check_config(&ns, &outside, &nobody, &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert_eq!(
        r.fails(),
        [
            "FAIL: the VIP 10.77.2.100 is outside ens5's network (10.77.1.11/24): it must lie in \
             the network of the interface's own address (else it is a foreign network on this link)"
        ],
        "{}",
        r.all()
    );
    let r = verb(&ns, &outside, "run");
    assert_eq!(r.code, 78, "{}", r.all());
    assert!(
        r.stderr.contains("is outside ens5's network"),
        "{}",
        r.all()
    );
    let broadcast = runnable(dir.path(), "bc.toml", "10.77.1.255", "");
    let r = check_config(&ns, &broadcast, &nobody, &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert_eq!(
        r.fails(),
        [
            "FAIL: 10.77.1.255 is the broadcast address of 10.77.1.0/24 (ens5's own address \
             10.77.1.11/24): not a host's address"
        ],
        "{}",
        r.all()
    );
    let good = runnable(dir.path(), "good.toml", "10.77.1.100", "");
    let r = check_config(&ns, &good, &nobody, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.has("ok: the VIP 10.77.1.100 lies in the network of ens5's own address 10.77.1.11/24"),
        "{}",
        r.all()
    );
}

#[test]
fn socket_paths_run_would_refuse_fail_check_config_and_run_exits_78() {
    // Issue 19, item 4: check-config passed these and run exited 1 (systemd restarts).
    let ns = Netns::new("ccsock", "10.77.1.11/20");
    let dir = open_dir();
    let nobody = ["--service-user", "nobody"];
    let a_dir = dir.path().join("a-dir");
    std::fs::create_dir(&a_dir).expect("mkdir");
    let a_file = dir.path().join("a-file");
    write(&a_file, "x", 0o644);
    for (path, what) in [
        (a_dir.clone(), "a directory"),
        (a_file.clone(), "a regular file"),
        (a_file.join("under.sock"), "is not a directory"),
    ] {
        let cfg = config(
            dir.path(),
            "sock.toml",
            "10.77.1.100",
            "ens5",
            &format!("socket = {:?}\n{EXPLICIT}", path.display().to_string()),
        );
        let r = check_config(&ns, &cfg, &nobody, &[]);
        assert_eq!(r.code, 78, "{what}: {}", r.all());
        assert!(
            r.fails().len() == 1
                && r.fails()[0].starts_with(&format!("FAIL: socket {}", path.display()))
                && r.fails()[0].contains(what)
                && r.fails()[0].ends_with("run would exit 78"),
            "{what}: {}",
            r.all()
        );
        let r = verb(&ns, &cfg, "run");
        assert_eq!(r.code, 78, "{what}: {}", r.all());
        assert!(r.stderr.contains(what), "{what}: {}", r.all());
    }
    assert!(a_dir.is_dir() && a_file.is_file(), "nothing removed");
    // A socket_group the service user is not in: run's chgrp would be refused.
    let cfg = config(
        dir.path(),
        "group.toml",
        "10.77.1.100",
        "ens5",
        &format!("socket_group = \"root\"\n{EXPLICIT}"),
    );
    let r = check_config(&ns, &cfg, &nobody, &[]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert_eq!(
        r.fails(),
        [
            "FAIL: socket_group root (gid 0): nobody is not a member, so run could not give the \
          socket that group; run would exit 78"
        ],
        "{}",
        r.all()
    );
    let r = check_config(&ns, &cfg, &["--service-user", "root"], &[]);
    assert!(
        r.has("ok: socket_group root (gid 0): root is a member"),
        "{}",
        r.all()
    );
}
