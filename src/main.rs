//! vip-arbiter: CLI → config → logging → daemon or client verb → exit code.

use std::process::ExitCode;

use clap::Parser;
use vip_arbiter::cli::{self, Cli, Command, Contract};
use vip_arbiter::cli::{client_socket, host_check, retire_claim};
use vip_arbiter::config::{self, ConfigErrors};
use vip_arbiter::daemon::shutdown::Shutdown;
use vip_arbiter::daemon::{self, logging};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let contract = Contract::of(&args);
    if contract != Contract::Ordinary {
        // `check` and `kick` keep their exit status even if something panics
        // (release builds abort on panic: the hook runs before that).
        std::panic::set_hook(Box::new(move |info| {
            contract.report_failure(&format!("internal error: {info}"));
            std::process::exit(contract.failure_code(101));
        }));
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if contract == Contract::Ordinary || !e.use_stderr() => e.exit(),
        Err(e) => {
            let first = e.to_string();
            let first = first.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            contract.report_failure(&format!("usage: {first}"));
            return exit(contract.failure_code(2));
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            contract.report_failure(&format!("cannot start the async runtime: {e}"));
            return exit(contract.failure_code(1));
        }
    };
    exit(rt.block_on(dispatch(cli)))
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn dispatch(cli: Cli) -> i32 {
    let path = cli.config.as_deref();
    // The client verbs need only the socket; the config is read leniently for it.
    match &cli.command {
        Command::Status { json, client } => {
            return cli::status(
                &client_socket::resolve(client.socket.as_deref(), path),
                *json,
            )
            .await;
        }
        Command::Check { client } => {
            return cli::check(&client_socket::resolve(client.socket.as_deref(), path)).await;
        }
        Command::Kick { client, .. } => {
            return cli::kick(&client_socket::resolve(client.socket.as_deref(), path)).await;
        }
        Command::RetireClaim { node, .. } => {
            if let Err(why) = retire_claim::node_id(*node) {
                eprintln!("vip-arbiter retire-claim: refused: {why}");
                return retire_claim::EXIT_REFUSED;
            }
        }
        _ => {}
    }
    let s = match config::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ConfigErrors::EXIT_CODE;
        }
    };
    match cli.command {
        // Answered above, without the full config.
        Command::Kick { .. } | Command::Status { .. } | Command::Check { .. } => 0,
        Command::Unfence => {
            let file = s.aws.enabled.then_some(s.aws.state_file.as_path());
            cli::unfence(&s.socket, file).await
        }
        Command::CheckConfig {
            online,
            service_user,
        } => {
            print!("{}", s.redacted_toml());
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            let findings = host_check::for_config(&s, path, service_user.as_deref()).await;
            println!("# this host");
            for f in &findings {
                println!("{f}");
            }
            if findings.iter().any(|f| f.level == host_check::Level::Fail) {
                return ConfigErrors::EXIT_CODE;
            }
            if !online {
                return 0;
            }
            if !s.aws.enabled {
                println!(
                    "# --online: nothing to check in kernel-only mode ([aws] enabled = false)"
                );
                return 0;
            }
            match daemon::online_check(&s).await {
                Ok((all_ok, lines)) => {
                    println!("# online self-test");
                    for l in lines {
                        println!("{l}");
                    }
                    if all_ok { 0 } else { 1 }
                }
                Err(e) => {
                    println!("FAIL: {e}");
                    1
                }
            }
        }
        Command::Plan { json } => {
            let _ = logging::init(&s.log_level);
            match daemon::plan_once(&s).await {
                Ok(report) if json => {
                    println!("{}", report.to_json());
                    0
                }
                Ok(report) => {
                    print!("{}", report.render_text());
                    0
                }
                Err(e) => {
                    eprintln!("vip-arbiter plan: {e}");
                    e.exit_code()
                }
            }
        }
        Command::RetireClaim { node, apply, force } => {
            // Warnings only (IMDS discovery): the verb's own lines are its output.
            let _ = logging::init("warn");
            match retire_claim::node_id(node) {
                Ok(node) => retire_claim::run(&s, node, apply, force).await,
                Err(_) => retire_claim::EXIT_REFUSED, // refused above
            }
        }
        Command::Run => {
            let level = match logging::init(&s.log_level) {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("vip-arbiter: logging: {e}");
                    None
                }
            };
            let shutdown = match Shutdown::from_signals() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("vip-arbiter: signals: {e}");
                    return 1;
                }
            };
            match daemon::run(s, cli.config.clone(), shutdown, level).await {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start");
                    eprintln!("vip-arbiter: {e}");
                    e.exit_code()
                }
            }
        }
    }
}
