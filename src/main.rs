//! vip-arbiter: CLI → config → logging → daemon or client verb → exit code.

use std::process::ExitCode;

use clap::Parser;
use vip_arbiter::cli::{self, Cli, Command};
use vip_arbiter::settings::{self, ConfigErrors};
use vip_arbiter::shutdown::Shutdown;
use vip_arbiter::{daemon, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vip-arbiter: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(dispatch(cli));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn dispatch(cli: Cli) -> i32 {
    let path = cli.config.as_deref();
    if let Command::Kick { .. } = cli.command {
        // Never fail repmgr: fall back to the default socket if the config is broken.
        let socket = settings::load(path).map_or_else(|_| settings::default_socket(), |s| s.socket);
        return cli::kick(&socket).await;
    }
    let s = match settings::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ConfigErrors::EXIT_CODE;
        }
    };
    match cli.command {
        Command::Kick { .. } => 0,
        Command::Status { json } => cli::status(&s.socket, json).await,
        Command::Check => cli::check(&s.socket).await,
        Command::Unfence => {
            let file = s.aws.enabled.then_some(s.aws.state_file.as_path());
            cli::unfence(&s.socket, file).await
        }
        Command::CheckConfig { online } => {
            print!("{}", s.redacted_toml());
            for w in &s.warnings {
                eprintln!("warning: {w}");
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
        Command::Plan => {
            let _ = logging::init(&s.log_level);
            match daemon::plan_once(&s).await {
                Ok(text) => {
                    print!("{text}");
                    0
                }
                Err(e) => {
                    eprintln!("vip-arbiter plan: {e}");
                    1
                }
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
