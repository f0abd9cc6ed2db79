//! The command line: `run` starts the daemon; the other verbs are clients of a
//! running daemon (through its health socket) or one-shot checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::health::Snapshot;
use crate::health_client;

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
    /// Show the running daemon's state.
    Status {
        /// Print the raw health JSON.
        #[arg(long)]
        json: bool,
    },
    /// Monitoring-plugin check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check,
    /// Ask the running daemon for a pass now. Ignores its arguments (repmgr's
    /// placeholders) and always exits 0 quickly.
    Kick {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Observe and decide once; print what would be done; change nothing.
    Plan,
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig {
        /// Also check IMDS, the subnet and the IAM permissions (EC2 mode).
        #[arg(long)]
        online: bool,
    },
    /// Clear this node's stale-primary fence (after the operator has made sure this
    /// node may hold the VIP again). Root or the service user only.
    Unfence,
}

/// How long client verbs wait for the daemon.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// `kick` must never slow repmgr down.
pub const KICK_TIMEOUT: Duration = Duration::from_millis(500);

pub async fn status(socket: &Path, json: bool) -> i32 {
    match health_client::request(socket, "GET", "/health", CLIENT_TIMEOUT).await {
        Ok(r) if json => {
            println!("{}", r.body);
            if r.status == 200 { 0 } else { 1 }
        }
        Ok(r) => match serde_json::from_str::<Snapshot>(&r.body) {
            Ok(s) => {
                print!("{}", status_table(&s));
                if r.status == 200 { 0 } else { 1 }
            }
            Err(_) => {
                println!("{}", r.body);
                1
            }
        },
        Err(e) => {
            eprintln!("vip-arbiter is not answering on {}: {e}", socket.display());
            3
        }
    }
}

/// The human form of a snapshot.
pub fn status_table(s: &Snapshot) -> String {
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
        ("last pass", format!("{} ms", s.last_pass_duration_ms)),
        ("last error", opt(s.last_error.clone())),
    ];
    rows.iter().map(|(k, v)| format!("{k:<15} {v}\n")).collect()
}

pub async fn check(socket: &Path) -> i32 {
    match health_client::request(socket, "GET", "/health", CLIENT_TIMEOUT).await {
        Ok(r) => match serde_json::from_str::<Snapshot>(&r.body) {
            Ok(s) => {
                let (code, line) = s.check_line();
                println!("{line}");
                code
            }
            Err(_) => {
                println!("VIP-ARBITER UNKNOWN - daemon has not completed a pass yet");
                3
            }
        },
        Err(e) => {
            println!(
                "VIP-ARBITER UNKNOWN - daemon not answering on {}: {e}",
                socket.display()
            );
            3
        }
    }
}

/// Ask the running daemon to clear its fence; with no daemon, remove the fence file.
pub async fn unfence(socket: &Path, fence_file: Option<&Path>) -> i32 {
    match health_client::request(socket, "POST", "/unfence", CLIENT_TIMEOUT).await {
        Ok(r) if r.status == 202 => {
            println!("vip-arbiter: fence cleared (the next pass decides afresh)");
            0
        }
        Ok(r) => {
            eprintln!("vip-arbiter unfence: {} {}", r.status, r.body.trim());
            1
        }
        Err(e) => match fence_file.map(std::fs::remove_file) {
            Some(Ok(())) => {
                println!(
                    "vip-arbiter is not running ({e}); removed its fence file {}",
                    fence_file
                        .map(Path::display)
                        .map(|d| d.to_string())
                        .unwrap_or_default()
                );
                0
            }
            Some(Err(fe)) if fe.kind() == std::io::ErrorKind::NotFound => {
                println!("vip-arbiter is not running ({e}) and no fence is kept");
                0
            }
            Some(Err(fe)) => {
                eprintln!("vip-arbiter is not running ({e}); cannot remove the fence file: {fe}");
                1
            }
            None => {
                eprintln!("vip-arbiter is not answering on {}: {e}", socket.display());
                1
            }
        },
    }
}

/// Always 0: repmgr runs this synchronously and must never wait or fail on it.
pub async fn kick(socket: &Path) -> i32 {
    if let Err(e) = health_client::request(socket, "POST", "/kick", KICK_TIMEOUT).await {
        eprintln!("vip-arbiter kick: {e} (ignored)");
    }
    0
}
