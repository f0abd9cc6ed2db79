//! `gen-assets OUT_DIR`: the man page vip-arbiter(8) and the bash, zsh and fish
//! completions, generated from the real command line (`vip_arbiter::cli::Cli`), so they
//! cannot drift from `--help`. `scripts/package` runs it before cargo-deb and writes
//! into `$CARGO_TARGET_DIR/assets`:
//!
//! ```text
//! OUT_DIR/man/vip-arbiter.8            (scripts/package gzips it for the .deb)
//! OUT_DIR/completions/vip-arbiter.bash
//! OUT_DIR/completions/_vip-arbiter     (zsh)
//! OUT_DIR/completions/vip-arbiter.fish
//! ```
//!
//! clap_mangen renders the title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS; COMMANDS is
//! built here from the same clap tree (clap_mangen's own SUBCOMMANDS section would
//! point at vip-arbiter-run(8) and friends, pages we do not ship); FILES, EXIT STATUS,
//! SIGNALS, ENVIRONMENT, EXAMPLES and SEE ALSO are operator prose kept next to it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};
use vip_arbiter::cli::Cli;

const BIN: &str = "vip-arbiter";

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen-assets OUT_DIR");
        std::process::exit(2);
    };
    if let Err(e) = generate(Path::new(&out)) {
        eprintln!("gen-assets: {e}");
        std::process::exit(1);
    }
}

fn generate(out: &Path) -> std::io::Result<()> {
    let man_dir = out.join("man");
    let comp_dir = out.join("completions");
    std::fs::create_dir_all(&man_dir)?;
    std::fs::create_dir_all(&comp_dir)?;

    let page = man_page()?;
    write(&man_dir.join(format!("{BIN}.8")), page.as_bytes())?;

    for (shell, name) in [
        (Shell::Bash, format!("{BIN}.bash")),
        (Shell::Zsh, format!("_{BIN}")),
        (Shell::Fish, format!("{BIN}.fish")),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), BIN, &mut buf);
        write(&comp_dir.join(name), &buf)?;
    }
    Ok(())
}

fn write(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    println!("{}", path.display());
    Ok(())
}

/// Each `Man::render_*` call starts with roff's apostrophe preamble; keep it once.
fn part(
    first: bool,
    f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<String> {
    let mut buf = Vec::new();
    f(&mut buf)?;
    let text = String::from_utf8(buf).map_err(std::io::Error::other)?;
    if first {
        return Ok(text);
    }
    let start = text
        .lines()
        .position(|l| l.starts_with(".SH") || l.starts_with(".TH"))
        .unwrap_or(0);
    Ok(text.lines().skip(start).map(|l| format!("{l}\n")).collect())
}

fn man_page() -> std::io::Result<String> {
    let mut cmd = Cli::command();
    cmd.set_bin_name(BIN);
    cmd.build();
    let man = Man::new(cmd.clone())
        .title("VIP-ARBITER")
        .section("8")
        .manual("System Administration");

    let mut page = String::new();
    page += &part(true, |w| man.render_title(w))?;
    page += &part(false, |w| man.render_name_section(w))?;
    page += &part(false, |w| man.render_synopsis_section(w))?;
    page += &part(false, |w| man.render_description_section(w))?;
    page += &part(false, |w| {
        let mut r = Roff::new();
        description_tail(&mut r);
        r.to_writer(w)
    })?;
    page += &part(false, |w| man.render_options_section(w))?;
    page += &part(false, |w| {
        let mut r = Roff::new();
        commands(&mut r, &cmd);
        prose(&mut r);
        r.to_writer(w)
    })?;
    page += &part(false, |w| man.render_version_section(w))?;
    Ok(page)
}

fn description_tail(r: &mut Roff) {
    r.control("PP", []);
    r.text([roman(
        "One daemon per node, beside repmgrd, under systemd. Every interval it observes the \
         local PostgreSQL (role, timeline, repmgr's view), the kernel address on the interface \
         and, in EC2 mode, which ENI holds the VIP as a secondary private IP; it decides and \
         acts until both agree. Taking the VIP from another ENI needs a strictly higher \
         PostgreSQL timeline (a timeline-fenced claim), so an old primary restarted by mistake \
         never takes it back.",
    )]);
}

/// COMMANDS, from the clap tree: each visible subcommand with its about text and its
/// own options.
fn commands(r: &mut Roff, cmd: &clap::Command) {
    r.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let mut head = vec![
            bold(BIN),
            roman(" [--config "),
            italic("PATH"),
            roman("] "),
            bold(sub.get_name()),
        ];
        let args: Vec<_> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_global_set())
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .collect();
        for a in &args {
            if let Some(l) = a.get_long() {
                let required = a.is_required_set();
                head.push(roman(if required { " " } else { " [" }));
                head.push(bold(format!("--{l}")));
                if let Some([value]) = a
                    .get_value_names()
                    .filter(|_| a.get_action().takes_values())
                {
                    head.push(roman(" "));
                    head.push(italic(value.to_string()));
                }
                if !required {
                    head.push(roman("]"));
                }
            }
        }
        if sub
            .get_arguments()
            .any(|a| a.is_positional() && a.is_hide_set())
        {
            head.push(roman(" ["));
            head.push(italic("ARG"));
            head.push(roman("]..."));
        }
        r.control("TP", []);
        r.text(head);
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            r.text([roman(about.to_string().replace('\n', " "))]);
        }
        for a in &args {
            let (Some(l), Some(help)) = (a.get_long(), a.get_help()) else {
                continue;
            };
            r.control("RS", []);
            r.control("TP", []);
            r.text([bold(format!("--{l}"))]);
            r.text([roman(help.to_string())]);
            r.control("RE", []);
        }
    }
}

fn section(r: &mut Roff, name: &str, items: &[(&str, &str)]) {
    r.control("SH", [name]);
    for (tag, text) in items {
        r.control("TP", []);
        r.text([bold(*tag)]);
        r.text([roman(*text)]);
    }
}

fn prose(r: &mut Roff) {
    section(
        r,
        "FILES",
        &[
            (
                "/etc/vip-arbiter/vip-arbiter.toml",
                "The configuration (every key annotated, with its default and its \
                 VIP_ARBITER_ variable). Only vip and interface are required.",
            ),
            (
                "/etc/repmgr.conf",
                "node_id and conninfo come from here unless set in the configuration.",
            ),
            (
                "~postgres/.pgpass",
                "The password, when neither conninfo nor PGPASSWORD has one (or PGPASSFILE); ignored when readable by group or others, as libpq does.",
            ),
            (
                "/run/vip-arbiter/vip-arbiter.sock",
                "The health socket: HTTP/1.1 GET /health, GET /metrics, POST /kick.",
            ),
            (
                "/usr/lib/systemd/system/vip-arbiter.service",
                "The hardened unit: runs as postgres with only CAP_NET_ADMIN, Type=notify, \
                 WatchdogSec=60s. Installing the package neither enables nor starts it.",
            ),
            (
                "/usr/share/doc/vip-arbiter/",
                "operations.md (the runbook), configuration.md, migrating.md, iam-policy.json.",
            ),
        ],
    );
    section(
        r,
        "EXIT STATUS",
        &[
            (
                "run",
                "0 after SIGTERM or SIGINT; 78 (EX_CONFIG) for a configuration error or a wrong \
                 ENI or subnet found by the start-up self-test (systemd does not restart it); \
                 1 for other start-up failures.",
            ),
            (
                "check",
                "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (daemon not answering, a bad answer, \
                 a usage error); never anything else. A missing or broken configuration is \
                 named in the line, never fatal.",
            ),
            (
                "status",
                "0 converged, 1 not converged, 3 daemon not answering. A missing or broken \
                 configuration is one line on stderr, never fatal.",
            ),
            (
                "kick",
                "Always 0, also for a broken configuration or a usage error.",
            ),
            (
                "check-config",
                "0 valid and the daemon would start on this host; 78 invalid, or a host check \
                 FAILs (no such interface, the VIP another interface's primary address, a \
                 repmgr.conf the service user cannot read); 1 when an --online check fails.",
            ),
            (
                "plan",
                "0, or 1 when it cannot observe at all (no such interface, EC2 setup failing).",
            ),
            (
                "retire-claim",
                "0 done, dry run printed, or nothing to retire; 1 refused (that node's ENI holds \
                 the VIP, or it is this node, without --force; a node id below 1) or an EC2 call \
                 failed (the AWS error code named); 78 configuration error, or kernel-only mode.",
            ),
        ],
    );
    section(
        r,
        "SIGNALS",
        &[
            (
                "SIGHUP",
                "Re-read the configuration (systemctl reload). A broken file is refused and the \
                 old configuration stays in force.",
            ),
            (
                "SIGTERM, SIGINT",
                "Stop after the current pass; a second signal abandons it. The kernel address is \
                 kept (on_stop = \"keep\") unless on_stop = \"release\".",
            ),
        ],
    );
    section(
        r,
        "ENVIRONMENT",
        &[
            (
                "VIP_ARBITER_<KEY>",
                "Overrides a configuration key; nested keys with a double underscore \
                 (VIP_ARBITER_AWS__ENABLED=true). Unknown names are errors.",
            ),
            (
                "AWS_ENDPOINT_URL, AWS_EC2_METADATA_SERVICE_ENDPOINT",
                "The AWS SDK's standard endpoint overrides; credentials come from the default \
                 chain (the instance profile).",
            ),
            ("PGPASSFILE", "libpq's password file, instead of ~/.pgpass."),
            (
                "PGPASSWORD",
                "The password when conninfo has none, before the password file (as libpq).",
            ),
        ],
    );
    r.control("SH", ["EXAMPLES"]);
    for (what, line) in [
        (
            "Set up once the configuration is filled in:",
            "vip-arbiter check-config --online && systemctl enable --now vip-arbiter",
        ),
        (
            "In /etc/repmgr.conf (put --config before kick):",
            "event_notification_command='/usr/bin/vip-arbiter --config \
             /etc/vip-arbiter/vip-arbiter.toml kick %n %e %s %t \"%d\"'",
        ),
        (
            "What a pass would do now, for a script:",
            "vip-arbiter plan --json | jq -r '.verdict.kind, (.steps[] | .call)'",
        ),
        (
            "Retire a gone node's claim (its subnet mark and ENI claim); drop --apply for a dry run:",
            "vip-arbiter retire-claim --node 2 --apply",
        ),
        (
            "The health snapshot:",
            "curl --unix-socket /run/vip-arbiter/vip-arbiter.sock http://localhost/health",
        ),
    ] {
        r.control("PP", []);
        r.text([roman(what)]);
        r.control("RS", ["4"]);
        r.control("nf", []);
        r.text([roman(line)]);
        r.control("fi", []);
        r.control("RE", []);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "repmgr(1), repmgrd(8), systemd.exec(5), journalctl(1); \
         /usr/share/doc/vip-arbiter/operations.md",
    )]);
}
