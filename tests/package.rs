//! The Debian package and the systemd unit, as an operator gets them.
//!
//! * `deb_installs_where_the_docs_say_and_purges_clean`: `scripts/package --dev
//!   --no-build` packs the debug binary this suite already built (the release build
//!   takes ~9 min on CI's 2 cores; `scripts/package` without flags makes the real
//!   release .deb from the same asset list). The .deb is checked as an archive
//!   (`dpkg-deb -f/-e/-x`: control fields, conffiles, maintainer scripts, every file and
//!   its mode), then installed for real with `dpkg -i`, checked in place (binary,
//!   conffile readable by `postgres`, `man`, completions, `systemd-analyze verify` on the
//!   installed unit, neither enabled nor started), reinstalled over a modified conffile
//!   (kept), and purged (nothing left).
//!   The .rpm (`scripts/package --rpm --dev --no-build`, cargo-generate-rpm) is built
//!   from the same debug binary and inspected, not installed (`rpm -i` beside dpkg on
//!   this Debian machine would keep a second package database): `rpm -qp` for its
//!   header and Requires (glibc no newer than Amazon Linux 2023's and RHEL 9's 2.34, no
//!   PostgreSQL or repmgr), its scriptlets (never enable or start), `rpm -qlp` and the
//!   file modes/flags for the same paths and modes as `dpkg-deb -c`, the config file
//!   marked `%config(noreplace)` (`rpm -qpc`); its payload (`rpm2archive`) passes the
//!   same file checks as the .deb's.
//! * `unit_exposure_is_at_most_2_0`: `systemd-analyze security --offline=true` on
//!   systemd/vip-arbiter.service; the score is recorded in docs/operations.md.
//! * `unit_has_the_hardening_the_docs_promise`: the directives themselves.
//!
//! Needs root, dpkg, cargo-deb, cargo-generate-rpm, rpm (Debian's), man-db and
//! systemd-analyze (scripts/install-deps installs them); a missing one FAILS the test
//! with its name, never skips it.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use vip_arbiter::cli::Cli;

const PKG: &str = "vip-arbiter";
const UNIT: &str = "/usr/lib/systemd/system/vip-arbiter.service";
const METRICS_SERVICE: &str = "/usr/lib/systemd/system/vip-arbiter-metrics.service";
const METRICS_TIMER: &str = "/usr/lib/systemd/system/vip-arbiter-metrics.timer";
const COLLECTOR: &str = "/usr/libexec/vip-arbiter/metrics-textfile";
const CONFFILE: &str = "/etc/vip-arbiter/vip-arbiter.toml";
const MAN: &str = "/usr/share/man/man8/vip-arbiter.8.gz";
const BASH: &str = "/usr/share/bash-completion/completions/vip-arbiter";
const ZSH: &str = "/usr/share/zsh/vendor-completions/_vip-arbiter";
const FISH: &str = "/usr/share/fish/vendor_completions.d/vip-arbiter.fish";
const DOC: &str = "/usr/share/doc/vip-arbiter";
/// The package's own directories, deepest first: the .rpm's %postun removes them
/// when empty (cargo-generate-rpm 0.21.1 cannot list a directory in the package).
const PKG_DIRS: &[&str] = &[
    "/usr/share/doc/vip-arbiter/examples",
    DOC,
    "/usr/libexec/vip-arbiter",
    "/etc/vip-arbiter",
];
/// The newest glibc symbol version the binary may need: Amazon Linux 2023's and RHEL
/// 9's glibc is 2.34.
const MAX_GLIBC: (u32, u32) = (2, 34);

/// Every regular file the package ships, its mode, and the repository file it must be
/// a copy of (None: generated or built).
const FILES: &[(&str, u32, Option<&str>)] = &[
    ("/usr/bin/vip-arbiter", 0o755, None),
    (UNIT, 0o644, Some("systemd/vip-arbiter.service")),
    (CONFFILE, 0o644, Some("etc/vip-arbiter.toml")),
    (MAN, 0o644, None),
    (BASH, 0o644, None),
    (ZSH, 0o644, None),
    (FISH, 0o644, None),
    (
        "/usr/share/doc/vip-arbiter/iam-policy.json",
        0o644,
        Some("etc/iam-policy.json"),
    ),
    (
        "/usr/share/doc/vip-arbiter/README.md",
        0o644,
        Some("README.md"),
    ),
    (
        "/usr/share/doc/vip-arbiter/operations.md",
        0o644,
        Some("docs/operations.md"),
    ),
    (
        "/usr/share/doc/vip-arbiter/configuration.md",
        0o644,
        Some("docs/configuration.md"),
    ),
    (
        "/usr/share/doc/vip-arbiter/migrating.md",
        0o644,
        Some("docs/migrating.md"),
    ),
    (
        "/usr/share/doc/vip-arbiter/decision-table.md",
        0o644,
        Some("docs/decision-table.md"),
    ),
    (
        "/usr/share/doc/vip-arbiter/architecture.md",
        0o644,
        Some("docs/architecture.md"),
    ),
    ("/usr/share/doc/vip-arbiter/copyright", 0o644, None),
    (
        "/usr/share/doc/vip-arbiter/examples/vip-arbiter.rules.yml",
        0o644,
        Some("etc/prometheus/vip-arbiter.rules.yml"),
    ),
    (
        "/usr/share/doc/vip-arbiter/examples/vip-arbiter-dashboard.json",
        0o644,
        Some("etc/grafana/vip-arbiter-dashboard.json"),
    ),
    (
        METRICS_SERVICE,
        0o644,
        Some("systemd/vip-arbiter-metrics.service"),
    ),
    (
        METRICS_TIMER,
        0o644,
        Some("systemd/vip-arbiter-metrics.timer"),
    ),
    (
        COLLECTOR,
        0o755,
        Some("systemd/vip-arbiter-metrics-textfile"),
    ),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn output(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (scripts/install-deps installs it)"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run; panic with the output unless it exits 0; return stdout.
fn run(program: &str, args: &[&str]) -> String {
    let o = output(program, args);
    assert!(
        o.status.success(),
        "{program} {args:?} failed ({}):\n{}",
        o.status,
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn require_tools(tools: &[&str]) {
    for t in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "{t} is not on PATH: this test needs it (run scripts/install-deps)"
        );
    }
}

/// dpkg, retried while another dpkg/apt holds the lock (bounded).
fn dpkg(args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o = output("dpkg", args);
        if o.status.success() {
            return text(&o);
        }
        let t = text(&o);
        if t.contains("lock") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(2));
            continue;
        }
        panic!("dpkg {args:?} failed ({}):\n{t}", o.status);
    }
}

fn installed() -> bool {
    let o = output("dpkg-query", &["-W", "-f=${Status}", PKG]);
    String::from_utf8_lossy(&o.stdout).contains("install ok installed")
}

/// Purges the package when the test ends, also after a failure.
struct Purge;
impl Drop for Purge {
    fn drop(&mut self) {
        if installed() || Path::new(CONFFILE).exists() {
            let _ = Command::new("dpkg").args(["--purge", PKG]).output();
        }
    }
}

/// The visible subcommands of the real clap definition.
fn subcommands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The man page and the completions: generated from the real CLI, well formed.
fn check_generated(root: &Path) {
    let man = root.join(MAN.trim_start_matches('/'));
    let gz = std::fs::read(&man).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "{MAN} is not gzip");
    let roff = run("gzip", &["-dc", man.to_str().unwrap()]);
    assert!(
        roff.lines().any(|l| l.starts_with(".TH VIP-ARBITER 8")),
        "no .TH VIP-ARBITER 8 header:\n{roff}"
    );
    let o = Command::new("man")
        .args(["-l", man.to_str().unwrap()])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man");
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "man -l {MAN}: {}", text(&o));
    for heading in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "FILES",
        "EXIT STATUS",
        "SEE ALSO",
    ] {
        assert!(
            page.lines().any(|l| l.trim_end() == heading),
            "man page has no {heading} section:\n{page}"
        );
    }
    assert!(page.contains("--config"), "{page}");
    for sub in subcommands() {
        assert!(
            page.contains(&format!("vip-arbiter [--config PATH] {sub}")),
            "man page does not document `{sub}`:\n{page}"
        );
    }
    assert!(page.contains(&format!("v{}", env!("CARGO_PKG_VERSION"))));

    let bash = root.join(BASH.trim_start_matches('/'));
    let zsh = read(&root.join(ZSH.trim_start_matches('/')));
    let fish = read(&root.join(FISH.trim_start_matches('/')));
    run("bash", &["-n", bash.to_str().unwrap()]);
    // Sourcing registers the completion for the command name.
    let reg = run(
        "bash",
        &[
            "-c",
            &format!("source {} && complete -p vip-arbiter", bash.display()),
        ],
    );
    assert!(reg.contains("vip-arbiter"), "{reg}");
    let bash = read(&bash);
    assert!(zsh.starts_with("#compdef vip-arbiter"), "{zsh}");
    assert!(fish.contains("complete -c vip-arbiter"), "{fish}");
    for sub in subcommands() {
        for (shell, body) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
            assert!(body.contains(&sub), "{shell} completion lacks `{sub}`");
        }
    }
    for flag in ["--config", "--json", "--online"] {
        for (shell, body) in [("bash", &bash), ("zsh", &zsh)] {
            assert!(body.contains(flag), "{shell} completion lacks {flag}");
        }
    }
}

/// Every file where the docs say, with its mode; copies equal their source.
fn check_tree(root: &Path) {
    for (path, want_mode, source) in FILES {
        let p = root.join(path.trim_start_matches('/'));
        assert!(p.is_file(), "{path} is missing under {}", root.display());
        assert_eq!(mode(&p), *want_mode, "{path} mode");
        if let Some(src) = source {
            assert_eq!(
                std::fs::read(&p).unwrap(),
                std::fs::read(repo().join(src)).unwrap(),
                "{path} differs from {src}"
            );
        }
    }
    let policy: serde_json::Value = serde_json::from_str(&read(
        &root.join("usr/share/doc/vip-arbiter/iam-policy.json"),
    ))
    .expect("the IAM policy is JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let v = run(
        root.join("usr/bin/vip-arbiter").to_str().unwrap(),
        &["--version"],
    );
    assert_eq!(
        v.trim(),
        format!("vip-arbiter {}", env!("CARGO_PKG_VERSION"))
    );
    check_generated(root);
}

fn package_files() -> BTreeSet<String> {
    FILES.iter().map(|(p, _, _)| p.to_string()).collect()
}

/// Every link or file named for one of our units (`vip-arbiter.service`,
/// `vip-arbiter-metrics.timer`, …) anywhere under /etc/systemd.
fn wants_links() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/etc/systemd")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vip-arbiter"))
            {
                found.push(p);
            }
        }
    }
    found
}

/// Processes running /usr/bin/vip-arbiter.
fn running_installed_binary() -> Vec<String> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if std::fs::read_link(e.path().join("exe"))
            .is_ok_and(|exe| exe == Path::new("/usr/bin/vip-arbiter"))
        {
            pids.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    pids
}

#[test]
fn deb_installs_where_the_docs_say_and_purges_clean() {
    support::require_root("this test (it installs a package with dpkg)");
    require_tools(&[
        "cargo",
        "cargo-deb",
        "dpkg",
        "dpkg-deb",
        "dpkg-query",
        "cargo-generate-rpm",
        "rpm",
        "rpm2archive",
        "tar",
        "gzip",
        "man",
        "systemctl",
        "systemd-analyze",
        "runuser",
    ]);
    let bin = Path::new(env!("CARGO_BIN_EXE_vip-arbiter"));
    if installed() {
        eprintln!("package: {PKG} is installed (an earlier run died?): purging it first");
        dpkg(&["--purge", PKG]);
    }
    let _purge = Purge;

    let (_out, deb) = build_the_deb(bin);
    let deb = deb.as_str();
    control_fields(deb);
    control_archive(deb);
    archive_files(deb);
    // The .rpm from the same binary, the same files.
    let (_rpm_out, rpm) = build_the_rpm(bin);
    let rpm = rpm.as_str();
    rpm_header(rpm);
    rpm_dependencies(rpm);
    rpm_scriptlets(rpm);
    rpm_files_are_the_debs(rpm, deb);
    rpm_payload(rpm, deb);
    install_for_real(deb);
    neither_enabled_nor_started();
    installed_units_verify();
    service_user_reads_the_conffile();
    reinstall_keeps_an_edited_conffile(deb);
    enable_makes_the_wants_link();
    purge_leaves_nothing();
}

/// Build: the debug binary the suite built, packaged by the real script; returns the
/// output directory (it holds the .deb) and the .deb's path.
fn build_the_deb(bin: &Path) -> (tempfile::TempDir, String) {
    // Build: the debug binary the suite built, packaged by the real script.
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let o = Command::new(repo().join("scripts/package"))
        .args(["--dev", "--no-build", "--output"])
        .arg(out.path())
        .output()
        .expect("run scripts/package");
    assert!(o.status.success(), "scripts/package failed:\n{}", text(&o));
    let deb = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .map(PathBuf::from)
        .expect("scripts/package prints the .deb path");
    assert!(deb.is_file(), "{} missing:\n{}", deb.display(), text(&o));
    eprintln!(
        "package: built {} in {:.1} s",
        deb.display(),
        started.elapsed().as_secs_f64()
    );
    // It packed the binary under test (scripts/package copies target/debug's).
    assert_staged(bin, "scripts/package");
    let deb = deb.to_str().unwrap().to_owned();
    (out, deb)
}

/// Control fields: PostgreSQL/repmgr only recommended, so CI can install it.
fn control_fields(deb: &str) {
    // Control fields: PostgreSQL/repmgr only recommended, so CI can install it.
    let field = |f: &str| run("dpkg-deb", &["-f", deb, f]).trim().to_owned();
    assert_eq!(field("Package"), PKG);
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Recommends"), "postgresql-15-repmgr | repmgr");
    let depends = field("Depends");
    assert!(depends.contains("libc6"), "{depends}");
    assert!(
        !depends.contains("postgres") && !depends.contains("repmgr"),
        "Depends must not pull PostgreSQL/repmgr: {depends}"
    );
}

/// Control archive: the conffile, and maintainer scripts that never start or enable
/// the units.
fn control_archive(deb: &str) {
    // Control archive: the conffile, and maintainer scripts that never start or
    // enable the unit (debhelper's --no-enable --no-start).
    let ctl = tempfile::tempdir().unwrap();
    run("dpkg-deb", &["-e", deb, ctl.path().to_str().unwrap()]);
    assert_eq!(read(&ctl.path().join("conffiles")), format!("{CONFFILE}\n"));
    let postinst = read(&ctl.path().join("postinst"));
    for forbidden in [
        "invoke start",
        "invoke restart",
        "systemctl start",
        "systemctl enable",
    ] {
        assert!(
            !postinst.contains(forbidden),
            "postinst contains `{forbidden}`:\n{postinst}"
        );
    }
    // The `enable`s (the daemon and the metrics timer; the metrics service has no
    // [Install]) re-create links only if the admin had enabled them before.
    let enables: Vec<_> = postinst
        .lines()
        .filter(|l| l.contains("deb-systemd-helper enable"))
        .collect();
    assert_eq!(enables.len(), 2, "{postinst}");
    for unit in ["vip-arbiter.service", "vip-arbiter-metrics.timer"] {
        assert!(
            postinst.contains(&format!(
                "if deb-systemd-helper --quiet was-enabled {unit}; then"
            )),
            "{postinst}"
        );
    }
    // An upgrade restarts them only if they are running (on_stop = keep: nothing moves).
    for units in [
        "vip-arbiter.service",
        "vip-arbiter-metrics.service vip-arbiter-metrics.timer",
    ] {
        assert!(
            postinst.contains(&format!("deb-systemd-invoke try-restart {units} >")),
            "{postinst}"
        );
    }
}

/// The archive's files, extracted into a throwaway root: exactly the package's.
fn archive_files(deb: &str) {
    // The archive's files, extracted into a throwaway root.
    let root = tempfile::tempdir().unwrap();
    run("dpkg-deb", &["-x", deb, root.path().to_str().unwrap()]);
    check_tree(root.path());
    let contents = run("dpkg-deb", &["-c", deb]);
    let shipped: BTreeSet<String> = contents
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    assert_eq!(
        shipped,
        package_files(),
        "the .deb ships exactly these files"
    );
}

/// Build the .rpm from the same debug binary with the real script; returns the output
/// directory and the .rpm's path.
fn build_the_rpm(bin: &Path) -> (tempfile::TempDir, String) {
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let o = Command::new(repo().join("scripts/package"))
        .args(["--rpm", "--dev", "--no-build", "--output"])
        .arg(out.path())
        .output()
        .expect("run scripts/package --rpm");
    assert!(
        o.status.success(),
        "scripts/package --rpm failed:\n{}",
        text(&o)
    );
    let rpm = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .map(PathBuf::from)
        .expect("scripts/package --rpm prints the .rpm path");
    assert!(rpm.is_file(), "{} missing:\n{}", rpm.display(), text(&o));
    assert_eq!(
        rpm.parent(),
        Some(out.path()),
        "the .rpm is not in --output"
    );
    eprintln!(
        "package: built {} in {:.1} s",
        rpm.display(),
        started.elapsed().as_secs_f64()
    );
    assert_staged(bin, "scripts/package --rpm");
    let rpm = rpm.to_str().unwrap().to_owned();
    (out, rpm)
}

/// `script` staged the binary under test (target/deb-dev is where both packagers
/// take it from).
fn assert_staged(bin: &Path, script: &str) {
    let staged = bin
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("deb-dev/vip-arbiter");
    assert_eq!(
        std::fs::read(&staged).unwrap(),
        std::fs::read(bin).unwrap(),
        "{script} staged a different binary than the one under test"
    );
}

/// `rpm -qp` with a query format.
fn rpm_query(rpm: &str, args: &[&str]) -> String {
    let mut all = vec!["-qp"];
    all.extend_from_slice(args);
    all.push(rpm);
    run("rpm", &all)
}

/// Name, version, release, architecture, license.
fn rpm_header(rpm: &str) {
    let got = rpm_query(
        rpm,
        &[
            "--queryformat",
            "%{NAME}|%{VERSION}|%{RELEASE}|%{ARCH}|%{LICENSE}|%{OS}|%{SUMMARY}",
        ],
    );
    let arch = run("uname", &["-m"]);
    assert_eq!(
        got,
        format!(
            "{PKG}|{}|1|{}|Apache-2.0|linux|{}",
            env!("CARGO_PKG_VERSION"),
            arch.trim(),
            env!("CARGO_PKG_DESCRIPTION")
        )
    );
    let name = Path::new(rpm).file_name().unwrap().to_string_lossy();
    assert_eq!(
        name,
        format!("{PKG}-{}-1.{}.rpm", env!("CARGO_PKG_VERSION"), arch.trim())
    );
}

/// "2.34" → (2, 34).
fn glibc_version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Requires: what the binary links (glibc no newer than AL2023/RHEL 9's), systemd,
/// /usr/bin/kill for ExecReload, /bin/sh for the scriptlets; never PostgreSQL or
/// repmgr (the arbiter must not pull in a server). Only curl is suggested.
fn rpm_dependencies(rpm: &str) {
    let requires: Vec<String> = rpm_query(rpm, &["--requires"])
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let names: BTreeSet<&str> = requires
        .iter()
        .map(|r| r.split_whitespace().next().unwrap())
        .collect();
    for want in ["systemd", "/usr/bin/kill", "/bin/sh"] {
        assert!(names.contains(want), "Requires lacks {want}: {requires:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("libc.so.6")),
        "no automatic glibc dependency (find-requires): {requires:?}"
    );
    for r in &requires {
        let l = r.to_lowercase();
        assert!(
            !l.contains("postgres") && !l.contains("repmgr") && !l.contains("libpq"),
            "Requires must not pull PostgreSQL/repmgr: {r}"
        );
        // libc.so.6(GLIBC_2.34)(64bit): no newer than the target distributions'.
        if let Some(v) = r
            .split("(GLIBC_")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
        {
            assert!(
                glibc_version(v) <= MAX_GLIBC,
                "{r}: newer than Amazon Linux 2023's/RHEL 9's glibc {}.{}",
                MAX_GLIBC.0,
                MAX_GLIBC.1
            );
        }
    }
    // The deb-only tools never appear.
    for debian in ["procps", "libc6", "deb-systemd"] {
        assert!(
            !names.contains(debian),
            "{debian} is a Debian name: {requires:?}"
        );
    }
    assert_eq!(rpm_query(rpm, &["--suggests"]).trim(), "curl");
    assert_eq!(rpm_query(rpm, &["--recommends"]).trim(), "");
    eprintln!("package: .rpm Requires {requires:?}");
}

/// Scriptlets: no %post at all (installing enables and starts nothing); removal
/// disables and stops the units; an upgrade try-restarts only what runs.
fn rpm_scriptlets(rpm: &str) {
    let scripts = rpm_query(rpm, &["--scripts"]);
    for forbidden in [
        "systemctl start",
        "systemctl enable",
        "systemctl restart",
        "preset",
    ] {
        assert!(
            !scripts.contains(forbidden),
            "scriptlets contain `{forbidden}`:\n{scripts}"
        );
    }
    assert!(
        !scripts.contains("postinstall scriptlet"),
        "an install scriptlet:\n{scripts}"
    );
    // `rpm -qp --scripts`: each scriptlet under a "NAME scriptlet…:" line.
    let section = |name: &str| -> String {
        let mut lines = scripts
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{name} scriptlet")));
        assert!(lines.next().is_some(), "no {name} scriptlet:\n{scripts}");
        lines
            .take_while(|l| !(l.contains(" scriptlet") && l.ends_with(':')))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let preun = section("preuninstall");
    assert!(
        preun.contains(r#"if [ "$1" -eq 0 ]"#)
            && preun.contains(
                "systemctl --no-reload disable --now vip-arbiter.service vip-arbiter-metrics.timer vip-arbiter-metrics.service"
            ),
        "{preun}"
    );
    let postun = section("postuninstall");
    assert!(
        postun.contains(r#"if [ "$1" -ge 1 ]"#)
            && postun.contains(
                "systemctl try-restart vip-arbiter.service vip-arbiter-metrics.service vip-arbiter-metrics.timer"
            ),
        "{postun}"
    );
    // Removal takes the package's directories when empty (an .rpmsave keeps /etc's).
    assert!(
        postun.contains(&format!(
            "if [ \"$1\" -eq 0 ]; then\n  rmdir {} 2>/dev/null || :",
            PKG_DIRS.join(" ")
        )),
        "{postun}"
    );
}

/// "-rwxr-xr-x" → 0o755 (no set-id bits are expected here).
fn perms_mode(perms: &str) -> u32 {
    perms[1..]
        .chars()
        .fold(0, |m, c| (m << 1) | u32::from(c != '-'))
}

/// The .rpm's paths are the .deb's (`rpm -qlp` against `dpkg-deb -c`), with the same
/// modes, owned by root; the config file marked %config(noreplace) and nothing else;
/// the docs marked %doc.
fn rpm_files_are_the_debs(rpm: &str, deb: &str) {
    let deb_files: BTreeSet<String> = run("dpkg-deb", &["-c", deb])
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    let listed: BTreeSet<String> = rpm_query(rpm, &["-l"]).lines().map(str::to_owned).collect();
    assert_eq!(
        listed, deb_files,
        "rpm -qlp and dpkg-deb -c list different files"
    );
    assert_eq!(listed, package_files());
    // Mode, flags, owner of each entry.
    let entries = rpm_query(
        rpm,
        &[
            "--queryformat",
            "[%{FILEMODES:perms} %{FILEFLAGS:fflags}. %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]",
        ],
    );
    let mut seen = BTreeSet::new();
    for line in entries.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 4, "{line}");
        let (perms, flags, owner, path) = (f[0], f[1].trim_end_matches('.'), f[2], f[3]);
        assert_eq!(owner, "root:root", "{line}");
        seen.insert(path.to_owned());
        let (_, want, _) = FILES
            .iter()
            .find(|(p, _, _)| *p == path)
            .unwrap_or_else(|| panic!("{path} is not a package file"));
        assert!(perms.starts_with('-'), "{line}: not a regular file");
        assert_eq!(perms_mode(perms), *want, "{line}: mode");
        if path == CONFFILE {
            assert!(
                flags.contains('c') && flags.contains('n'),
                "{line}: not %config(noreplace)"
            );
        } else {
            assert!(!flags.contains('c'), "{line}: marked config");
        }
        if path.starts_with(DOC) || path == MAN {
            assert!(flags.contains('d'), "{line}: not marked %doc");
        }
    }
    assert_eq!(seen, listed);
    assert_eq!(
        rpm_query(rpm, &["-c"]).trim(),
        CONFFILE,
        "rpm -qpc lists the config file and nothing else"
    );
    // The unit where systemd on RHEL/AL2023 looks for vendor units.
    assert!(listed.contains(UNIT), "{listed:?}");
}

/// The payload, unpacked: the same file checks as the .deb's extracted tree, and the
/// copyright file equal to the one cargo-deb writes.
fn rpm_payload(rpm: &str, deb: &str) {
    let root = tempfile::tempdir().unwrap();
    let tgz = root.path().join("payload.tgz");
    let o = Command::new("rpm2archive")
        .arg("-")
        .stdin(std::fs::File::open(rpm).unwrap())
        .stdout(std::fs::File::create(&tgz).unwrap())
        .output()
        .expect("rpm2archive");
    assert!(o.status.success(), "rpm2archive: {}", text(&o));
    let tree = root.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    run(
        "tar",
        &["-xzpf", tgz.to_str().unwrap(), "-C", tree.to_str().unwrap()],
    );
    check_tree(&tree);
    let deb_root = tempfile::tempdir().unwrap();
    run("dpkg-deb", &["-x", deb, deb_root.path().to_str().unwrap()]);
    let copyright = "usr/share/doc/vip-arbiter/copyright";
    assert_eq!(
        read(&tree.join(copyright)),
        read(&deb_root.path().join(copyright)),
        "the .rpm's copyright differs from the .deb's"
    );
    // Byte for byte the same payload as the .deb; the binary is the one under test
    // (cargo-deb strips its copy, cargo-generate-rpm packs it as built: the release
    // profile's binary is stripped already).
    for f in package_files() {
        let rel = f.trim_start_matches('/');
        let want = if f == "/usr/bin/vip-arbiter" {
            std::fs::read(env!("CARGO_BIN_EXE_vip-arbiter")).unwrap()
        } else {
            std::fs::read(deb_root.path().join(rel)).unwrap()
        };
        assert!(
            std::fs::read(tree.join(rel)).unwrap() == want,
            "{f} in the .rpm differs from the .deb's (or, the binary, from the one under test)"
        );
    }
}

/// A real `dpkg -i` on this machine: every file in place, listed, the conffile
/// registered, the man page found.
fn install_for_real(deb: &str) {
    // A real install on this machine.
    dpkg(&["-i", deb]);
    assert!(installed());
    check_tree(Path::new("/"));
    let listed: BTreeSet<String> = run("dpkg", &["-L", PKG])
        .lines()
        .map(str::to_owned)
        .collect();
    for f in package_files() {
        assert!(listed.contains(&f), "dpkg -L does not list {f}");
    }
    let conffiles = run("dpkg-query", &["-W", "-f=${Conffiles}", PKG]);
    assert!(conffiles.contains(CONFFILE), "{conffiles}");
    assert_eq!(
        run("man", &["-w", PKG]).trim(),
        MAN,
        "man finds the installed page"
    );
}

/// After the install: neither enabled nor started.
fn neither_enabled_nor_started() {
    // Neither enabled nor started.
    for unit in ["vip-arbiter.service", "vip-arbiter-metrics.timer"] {
        let o = output("systemctl", &["is-enabled", unit]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "disabled",
            "{unit}: {}",
            text(&o)
        );
    }
    // The metrics service is started by its timer only (no [Install]).
    let o = output("systemctl", &["is-enabled", "vip-arbiter-metrics.service"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "static",
        "{}",
        text(&o)
    );
    assert_eq!(
        wants_links(),
        Vec::<PathBuf>::new(),
        "enabled by the install"
    );
    assert_eq!(
        running_installed_binary(),
        Vec::<String>::new(),
        "started by the install"
    );
}

/// The installed units verify.
fn installed_units_verify() {
    // The installed unit verifies (it needs /usr/bin/vip-arbiter and man to find
    // vip-arbiter(8) for Documentation=, hence here and not on the repo's copy).
    for unit in [UNIT, METRICS_SERVICE, METRICS_TIMER] {
        let o = output("systemd-analyze", &["verify", unit]);
        assert!(
            o.status.success() && !text(&o).contains("vip-arbiter"),
            "systemd-analyze verify {unit}:\n{}",
            text(&o)
        );
    }
}

/// The service user reads the conffile (check-config in a namespace with an `ens5`).
fn service_user_reads_the_conffile() {
    // The service user reads the conffile, and the installed binary accepts it once
    // repmgr's node_id and conninfo are there (here from the environment), on a host
    // with the conffile's interface: check-config checks the host too, so it runs in a
    // namespace that has an `ens5`.
    let ns = support::netns::Netns::new("pkg", "10.0.1.11/24");
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "runuser",
            "-u",
            "postgres",
            "--",
            "/usr/bin/vip-arbiter",
            "check-config",
        ])
        .env("VIP_ARBITER_NODE_ID", "1")
        .env(
            "VIP_ARBITER_CONNINFO",
            "host=/var/run/postgresql user=repmgr dbname=repmgr",
        )
        .output()
        .expect("runuser");
    assert!(
        o.status.success(),
        "check-config as postgres:\n{}",
        text(&o)
    );
    assert!(text(&o).contains("vip = \"10.0.1.100\""), "{}", text(&o));
    assert!(
        text(&o).contains("ok: interface ens5 exists")
            && text(&o).contains(&format!("; User= in {UNIT})")),
        "the host checks, as the installed unit's user: {}",
        text(&o)
    );
}

/// Upgrade path (reinstall): an operator's edited conffile is kept.
fn reinstall_keeps_an_edited_conffile(deb: &str) {
    // Upgrade path (reinstall): an operator's edited conffile is kept.
    let edited = format!("{}\n# edited by the operator\n", read(Path::new(CONFFILE)));
    std::fs::write(CONFFILE, &edited).unwrap();
    dpkg(&["--force-confold", "-i", deb]);
    assert_eq!(
        read(Path::new(CONFFILE)),
        edited,
        "conffile replaced on upgrade"
    );
    assert_eq!(
        wants_links(),
        Vec::<PathBuf>::new(),
        "enabled by the upgrade"
    );
    assert_eq!(running_installed_binary(), Vec::<String>::new());
}

/// `systemctl enable` makes the `multi-user.target.wants` link.
fn enable_makes_the_wants_link() {
    // `systemctl enable` is all the setup the unit needs (`--now` also starts it where
    // systemd runs; here there is no booted systemd, so only the link is checked), and
    // the purge takes the link away with the package.
    run("systemctl", &["enable", "vip-arbiter.service"]);
    assert_eq!(
        run("systemctl", &["is-enabled", "vip-arbiter.service"]).trim(),
        "enabled"
    );
    assert_eq!(
        wants_links(),
        vec![PathBuf::from(
            "/etc/systemd/system/multi-user.target.wants/vip-arbiter.service"
        )]
    );
}

/// Purge: nothing left, the conffile and the link included.
fn purge_leaves_nothing() {
    // Purge: nothing left, the conffile included.
    dpkg(&["--purge", PKG]);
    assert!(!installed());
    for f in package_files() {
        assert!(!Path::new(&f).exists(), "{f} left after purge");
    }
    assert!(
        !Path::new("/etc/vip-arbiter").exists(),
        "/etc/vip-arbiter left"
    );
    assert!(!Path::new(DOC).exists(), "{DOC} left");
    assert!(
        !Path::new("/usr/libexec/vip-arbiter").exists(),
        "/usr/libexec/vip-arbiter left"
    );
    assert_eq!(wants_links(), Vec::<PathBuf>::new());
}

/// `systemd-analyze security --offline=true UNIT` (systemd 252): the overall exposure.
fn exposure(unit: &Path) -> (f64, Output) {
    let o = output(
        "systemd-analyze",
        &[
            "security",
            "--offline=true",
            "--threshold=20",
            unit.to_str().unwrap(),
        ],
    );
    let out = text(&o);
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level for "))
        .unwrap_or_else(|| panic!("no overall exposure line:\n{out}"));
    let score = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"));
    (score, o)
}

#[test]
fn unit_exposure_is_at_most_2_0() {
    require_tools(&["systemd-analyze"]);
    let unit = repo().join("systemd/vip-arbiter.service");
    let (score, o) = exposure(&unit);
    eprintln!("systemd-analyze security: overall exposure {score}");
    assert!(
        score <= 2.0 && o.status.success(),
        "exposure {score} > 2.0 (threshold exit {}):\n{}",
        o.status,
        text(&o)
    );
    // The score docs/operations.md records is the current one.
    let ops = read(&repo().join("docs/operations.md"));
    assert!(
        ops.contains(&format!("overall exposure **{score:.1}**")),
        "docs/operations.md does not record the current exposure {score:.1}"
    );
    // The metrics collector's unit, likewise.
    let (metrics, o) = exposure(&repo().join("systemd/vip-arbiter-metrics.service"));
    eprintln!("systemd-analyze security: vip-arbiter-metrics.service {metrics}");
    assert!(
        metrics <= 2.0 && o.status.success(),
        "{metrics}:\n{}",
        text(&o)
    );
    assert!(
        ops.contains(&format!("vip-arbiter-metrics.service` **{metrics:.1}**")),
        "docs/operations.md does not record vip-arbiter-metrics.service's exposure {metrics:.1}"
    );
    // The check itself can fail: a unit without the hardening scores far above 2.0.
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("vip-arbiter.service");
    std::fs::write(
        &bare,
        "[Service]\nType=notify\nExecStart=/usr/bin/vip-arbiter run\n",
    )
    .unwrap();
    let (bare_score, o) = exposure(&bare);
    assert!(
        bare_score > 2.0 && !o.status.success(),
        "{bare_score}: {}",
        text(&o)
    );
}

/// The unit's `Key=value` lines (continuations are not used in this unit).
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn unit_has_the_hardening_the_docs_promise() {
    let unit = read(&repo().join("systemd/vip-arbiter.service"));
    let d = directives(&unit);
    let all = |k: &str| -> Vec<&str> {
        d.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |k: &str| -> &str {
        let v = all(k);
        assert_eq!(v.len(), 1, "{k}= set {} times", v.len());
        v[0]
    };
    for (k, v) in [
        (
            "ExecStart",
            "/usr/bin/vip-arbiter run --config /etc/vip-arbiter/vip-arbiter.toml",
        ),
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "78"),
        ("User", "postgres"),
        ("Group", "postgres"),
        ("AmbientCapabilities", "CAP_NET_ADMIN"),
        ("CapabilityBoundingSet", "CAP_NET_ADMIN"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RuntimeDirectory", "vip-arbiter"),
        ("StateDirectory", "vip-arbiter"),
        ("WantedBy", "multi-user.target"),
    ] {
        assert_eq!(one(k), v, "{k}=");
    }
    assert!(all("SystemCallFilter").contains(&"@system-service"));
    assert!(one("WatchdogSec").ends_with('s'));
    let after = one("After");
    for u in ["network-online.target", "postgresql.service"] {
        assert!(after.split_whitespace().any(|w| w == u), "After= lacks {u}");
    }
    // No one PostgreSQL version's cluster unit (issue 19, item 13): Debian's clusters
    // of any version start before postgresql.service.
    assert!(
        !after.contains("postgresql@"),
        "After= names a version: {after}"
    );
    assert_eq!(one("Wants"), "network-online.target");
    // Starting the arbiter must never start a PostgreSQL stopped on purpose.
    for k in ["Wants", "Requires", "BindsTo", "Requisite", "PartOf"] {
        for v in all(k) {
            assert!(
                !v.contains("postgresql"),
                "{k}={v} would pull in PostgreSQL"
            );
        }
    }
    // It must still read /etc/repmgr.conf and ~postgres/.pgpass: nothing hides /etc
    // or /var/lib/postgresql, and ProtectHome=yes covers neither.
    for k in ["InaccessiblePaths", "TemporaryFileSystem", "ReadOnlyPaths"] {
        assert!(
            all(k).is_empty(),
            "{k}= would change what the daemon can read"
        );
    }
    // The service user, as the PostgreSQL packages create it (scripts/install-deps).
    let passwd = read(Path::new("/etc/passwd"));
    let home = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .and_then(|l| l.split(':').nth(5))
        .expect("no postgres user: install PostgreSQL (scripts/install-deps)");
    for hidden in ["/home", "/root", "/run/user"] {
        assert!(
            !home.starts_with(hidden),
            "postgres's home {home} is hidden by ProtectHome=yes"
        );
    }
}
