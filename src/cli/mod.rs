//! The command line: `run` starts the daemon; the other verbs are clients of a
//! running daemon (through its health socket) or one-shot checks.

pub mod client_socket;
pub mod host_check;
pub mod host_files;
pub mod host_interface;
pub mod http_check;
pub mod plan_report;
pub mod retire_claim;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cli::client_socket::ClientSocket;
use crate::health::client::{self, ClientError};
use crate::health::state::Snapshot;

#[derive(Debug, Parser)]
#[command(
    name = "vip-arbiter",
    version,
    about = "Keeps a PostgreSQL VIP on the repmgr primary (EC2 secondary IP + kernel address)"
)]
pub struct Cli {
    /// Configuration file (default /etc/vip-arbiter/vip-arbiter.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (under systemd: Type=notify).
    Run,
    /// Show the running daemon's state. Exit 0 converged, 1 not converged, 3 no answer.
    Status {
        /// Print the raw health JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Monitoring-plugin check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for
    /// a missing or broken config, no answer, a bad answer or a usage error).
    Check {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Ask the running daemon for a pass now. Ignores its arguments (repmgr's
    /// placeholders) and always exits 0 quickly.
    Kick {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Observe and decide once; print what each source said, the verdict and the
    /// steps with the call each would make; change nothing.
    Plan {
        /// Print the plan as one JSON document (shape: docs/operations.md).
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration, print it with secrets redacted, and check this
    /// host: the interface, the VIP, and the files the service user must read.
    CheckConfig {
        /// Also check IMDS, the subnet and the IAM permissions (EC2 mode).
        #[arg(long)]
        online: bool,
        /// Judge file access as this user, with its own groups (default: User= and
        /// Group= of the installed vip-arbiter.service, else of the shipped unit:
        /// postgres).
        #[arg(long, value_name = "USER")]
        service_user: Option<String>,
    },
    /// Clear this node's stale-primary fence (after the operator has made sure this
    /// node may hold the VIP again). Root or the service user only.
    Unfence,
    /// Retire a node's claim for the VIP (EC2 mode): its mark on the subnet and the
    /// claim tags naming it on ENIs, for a node that is gone. Prints what it would
    /// delete and changes nothing unless --apply. Exit 0 done or dry run (also nothing
    /// to retire), 1 refused or an EC2 error, 78 configuration error.
    RetireClaim {
        /// The node whose claim to retire (its repmgr node_id, 1 or more).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        node: i64,
        /// Delete the tags (ec2:DeleteTags); without it, only print them.
        #[arg(long)]
        apply: bool,
        /// Retire it even when that node's ENI holds the VIP at EC2 now, or when it is
        /// this node.
        #[arg(long)]
        force: bool,
    },
}

/// What the client verbs share: they need only the daemon's socket.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// The daemon's health socket (default: VIP_ARBITER_SOCKET, else the config
    /// file's `socket` key, read even when the rest of the file is broken, else
    /// /run/vip-arbiter/vip-arbiter.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// What a verb promises about its exit status, whatever goes wrong (a usage error,
/// a panic, no runtime): `check` is a monitoring plugin (3 UNKNOWN), `kick` runs
/// inside repmgr (always 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    Plugin,
    NeverFails,
    Ordinary,
}

impl Contract {
    /// From the raw arguments, before (or without) a successful parse: the first word
    /// that is neither an option nor the value of `--config`/`--socket`.
    pub fn of(args: &[std::ffi::OsString]) -> Contract {
        let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
        while let Some(w) = words.next() {
            match w.as_ref() {
                "--config" | "--socket" => {
                    words.next();
                }
                w if w.starts_with('-') => {}
                "check" => return Contract::Plugin,
                "kick" => return Contract::NeverFails,
                _ => return Contract::Ordinary,
            }
        }
        Contract::Ordinary
    }

    /// The exit status when the verb could not do its job at all.
    pub fn failure_code(self, ordinary: i32) -> i32 {
        match self {
            Contract::Plugin => 3,
            Contract::NeverFails => 0,
            Contract::Ordinary => ordinary,
        }
    }

    /// Say why, in the verb's own form: the plugin's one UNKNOWN line on stdout, else
    /// one line on stderr.
    pub fn report_failure(self, why: &str) {
        use std::io::Write;
        let why = crate::cli::client_socket::one_line(why);
        match self {
            Contract::Plugin => {
                let _ = writeln!(std::io::stdout(), "VIP-ARBITER UNKNOWN - {why}");
            }
            Contract::NeverFails => {
                let _ = writeln!(std::io::stderr(), "vip-arbiter kick: {why} (ignored)");
            }
            Contract::Ordinary => {
                let _ = writeln!(std::io::stderr(), "vip-arbiter: {why}");
            }
        }
    }
}

/// How long client verbs wait for the daemon.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// `kick` must never slow repmgr down.
pub const KICK_TIMEOUT: Duration = Duration::from_millis(500);

pub async fn status(socket: &ClientSocket, json: bool) -> i32 {
    if let Some(p) = &socket.config_problem {
        eprintln!("vip-arbiter: {p} (asking {} anyway)", socket.path.display());
    }
    let path = &socket.path;
    // 0 converged, 1 answered but not converged (a starting daemon too), 3 no answer
    // from a vip-arbiter (nothing listening, or something else answering).
    let (code, text, value) = match client::request(path, "GET", "/health", CLIENT_TIMEOUT).await {
        Err(e) => {
            let why = format!("vip-arbiter is not answering on {}: {e}", path.display());
            (
                3,
                why.clone(),
                serde_json::json!({"answering": false, "error": why}),
            )
        }
        Ok(r) => match answer_of(&r) {
            Answer::Snapshot(s) => {
                let code = if r.status == 200 { 0 } else { 1 };
                let value = serde_json::to_value(&s).unwrap_or_default();
                (code, status_table(&s, now_unix_ms()), value)
            }
            Answer::Starting => {
                let line = "vip-arbiter is starting: no pass completed yet".to_owned();
                let value = serde_json::from_str(&r.body).unwrap_or_default();
                (1, line, value)
            }
            Answer::Foreign(why) => {
                let why = format!(
                    "bad answer on {}: {why} (is this vip-arbiter's socket?)",
                    path.display()
                );
                (
                    3,
                    why.clone(),
                    serde_json::json!({"answering": false, "error": why}),
                )
            }
        },
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else if code == 3 {
        eprintln!("{text}");
    } else if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
    code
}

/// What answered on the socket.
enum Answer {
    Snapshot(Box<Snapshot>),
    /// The daemon, before its first pass completed.
    Starting,
    /// Not a vip-arbiter answer (another HTTP server, a non-JSON body), and why.
    Foreign(String),
}

fn answer_of(r: &crate::health::http::Response) -> Answer {
    if r.status != 200 && r.status != 503 {
        return Answer::Foreign(format!("HTTP {}", r.status));
    }
    match serde_json::from_str::<Snapshot>(&r.body) {
        Ok(s) => Answer::Snapshot(Box::new(s)),
        Err(e) => {
            let starting = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["verdict"].as_str().map(|v| v.starts_with("starting")))
                .unwrap_or(false);
            if starting {
                Answer::Starting
            } else {
                Answer::Foreign(format!("not a status: {e}"))
            }
        }
    }
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The human form of a snapshot, its age taken at `now_ms` (Unix ms).
pub fn status_table(s: &Snapshot, now_ms: u64) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows = [
        ("verdict", s.verdict.clone()),
        ("severity", s.severity.clone()),
        ("converged", s.converged.to_string()),
        ("node", s.node_id.to_string()),
        ("vip", format!("{} on {}", s.vip, s.interface)),
        ("role", s.role.clone()),
        ("timeline", opt(s.timeline.map(|t| t.to_string()))),
        ("eligibility", s.eligibility.clone()),
        (
            "repmgr primary",
            opt(s.repmgr_primary.map(|t| t.to_string())),
        ),
        ("kernel", s.kernel.clone()),
        ("ec2", s.cloud.clone()),
        ("passes", s.pass_count.to_string()),
        (
            "last pass",
            format!(
                "{:.1} s ago, took {} ms",
                now_ms.saturating_sub(s.last_pass_unix_ms) as f64 / 1000.0,
                s.last_pass_duration_ms
            ),
        ),
        ("last error", opt(s.last_error.clone())),
    ];
    rows.iter().map(|(k, v)| format!("{k:<15} {v}\n")).collect()
}

pub async fn check(socket: &ClientSocket) -> i32 {
    let (code, line, perf) = check_result(&socket.path).await;
    let line = match &socket.config_problem {
        Some(p) => format!("{line}; {p}"),
        None => line,
    };
    // The text is made one line without '|' (the perfdata separator); then the perfdata.
    let text = crate::cli::client_socket::one_line(&line);
    match perf {
        Some(perf) => println!("{text} | {perf}"),
        None => println!("{text}"),
    }
    code
}

/// The plugin's exit code and line (before any config note), from the daemon's answer,
/// with perfdata: the last pass's age and duration, the pass count, converged (0/1).
async fn check_result(path: &Path) -> (i32, String, Option<String>) {
    let unknown = |why: String| (3, format!("VIP-ARBITER UNKNOWN - {why}"), None);
    let r = match client::request(path, "GET", "/health", CLIENT_TIMEOUT).await {
        Ok(r) => r,
        Err(e @ ClientError::Malformed(_)) => {
            return unknown(format!("bad answer on {}: {e}", path.display()));
        }
        Err(e) => {
            return unknown(format!("daemon not answering on {}: {e}", path.display()));
        }
    };
    match answer_of(&r) {
        Answer::Snapshot(s) => {
            let (code, line) = s.check_line();
            let age = now_unix_ms().saturating_sub(s.last_pass_unix_ms) as f64 / 1000.0;
            let perf = format!(
                "last_pass_age={age:.1}s pass_duration={}ms passes={}c converged={}",
                s.last_pass_duration_ms,
                s.pass_count,
                u8::from(s.converged)
            );
            (code, line, Some(perf))
        }
        Answer::Starting => unknown("daemon has not completed a pass yet".into()),
        Answer::Foreign(why) => unknown(format!(
            "bad answer on {}: {why} (is this vip-arbiter's socket?)",
            path.display()
        )),
    }
}

/// Ask the running daemon to clear its fence; with no daemon, clear it in the state
/// file (the journal: the claim that fenced this node is recorded as overridden, so
/// the next start does not fence again from it, nor run `fence_command` again).
pub async fn unfence(socket: &Path, state_file: Option<&Path>) -> i32 {
    match client::request(socket, "POST", "/unfence", CLIENT_TIMEOUT).await {
        Ok(r) if r.status == 202 => {
            println!("vip-arbiter: fence cleared (the next pass decides afresh)");
            0
        }
        Ok(r) => {
            eprintln!("vip-arbiter unfence: {} {}", r.status, r.body.trim());
            1
        }
        Err(e) => match state_file {
            Some(path) => unfence_file(path, &e.to_string()),
            None => {
                eprintln!("vip-arbiter is not answering on {}: {e}", socket.display());
                1
            }
        },
    }
}

/// `unfence` with no daemon: edit the journal in the state file.
fn unfence_file(path: &Path, why: &str) -> i32 {
    use crate::pass::journal::Journal as _;
    let mut file = crate::adapters::state_file::StateFile::new(path);
    let now = crate::pass::journal::boot_time();
    let mut loaded = match file.load(now) {
        Ok(Some(l)) => l,
        Ok(None) => {
            println!("vip-arbiter is not running ({why}) and no fence is kept");
            return 0;
        }
        Err(e) => {
            eprintln!("vip-arbiter is not running ({why}); cannot read the state file: {e}");
            return 1;
        }
    };
    let Some(f) = loaded.memory.unfence() else {
        println!("vip-arbiter is not running ({why}) and this node is not fenced");
        return 0;
    };
    match file.save(&loaded.memory.journaled(), now) {
        Ok(()) => {
            println!(
                "vip-arbiter is not running ({why}); cleared the fence in {} (was: {} with claim {})",
                path.display(),
                f.holder,
                f.by
            );
            0
        }
        Err(e) => {
            eprintln!("vip-arbiter is not running ({why}); {e}");
            1
        }
    }
}

/// Always 0: repmgr runs this synchronously and must never wait or fail on it.
pub async fn kick(socket: &ClientSocket) -> i32 {
    if let Some(p) = &socket.config_problem {
        eprintln!(
            "vip-arbiter kick: {p} (kicking {} anyway)",
            socket.path.display()
        );
    }
    match client::request(&socket.path, "POST", "/kick", KICK_TIMEOUT).await {
        Err(e) => eprintln!("vip-arbiter kick: {e} (ignored)"),
        // Refused (403), or something else answered: say so, still 0 for repmgr.
        Ok(r) if !(200..300).contains(&r.status) => eprintln!(
            "vip-arbiter kick: not kicked: HTTP {} from {}: {} (ignored)",
            r.status,
            socket.path.display(),
            crate::cli::client_socket::one_line(&r.body)
        ),
        Ok(_) => {}
    }
    0
}
