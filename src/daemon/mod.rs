//! The composition root of `vip-arbiter run`: build the real adapters from the
//! settings, start the health socket, run the loop until shutdown.

pub mod logging;
pub mod reload;
pub mod shutdown;
pub mod systemd;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::adapters::ec2::Ec2;
use crate::adapters::fence::ShellFence;
use crate::adapters::netlink::{KernelError, Netlink};
use crate::adapters::postgres::{PgObserver, PgTimeouts};
use crate::adapters::state_file::StateFile;
use crate::config::{OnStop, Settings};
use crate::core::backoff::Backoff;
use crate::core::decide::{CloudPolicy, Policy};
use crate::daemon::logging::LevelHandle;
pub use crate::daemon::reload::FileReload;
use crate::daemon::shutdown::Shutdown;
use crate::health::metrics::Metrics;
use crate::health::socket_access::KickAllow;
use crate::health::state::{HealthState, Identity};
use crate::health::{server, tcp};
use crate::pass::journal::{Journal, Nowhere};
use crate::pass::reconcile::{Limits, World};
use crate::pass::run_loop::{self, Control, LoopConfig};

/// Why the daemon could not start: exit 78 for `Config`, 1 for the rest.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("kernel: {0}")]
    Kernel(#[from] KernelError),
    #[error("health socket: {0}")]
    Socket(#[from] server::SocketError),
    #[error("http.listen {addr}: {source}")]
    Http {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("signals: {0}")]
    Signals(#[source] std::io::Error),
    /// The EC2 set-up's reason, as it words it.
    #[error("EC2: {0}")]
    Cloud(String),
    /// A start-up self-test line naming what is not this node's; the VIP among
    /// this host's addresses (adapters/own_address.rs), every problem in one line.
    #[error("configuration: {0}")]
    Config(String),
    /// The interface has no IPv4 address yet: systemd tries again.
    #[error("not ready: {0}")]
    NotReady(String),
}

impl StartupError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartupError::Config(_) => crate::config::ConfigErrors::EXIT_CODE,
            StartupError::Socket(e) if e.is_config() => crate::config::ConfigErrors::EXIT_CODE,
            // `interface` names nothing here: check-config fails on it too.
            StartupError::Kernel(KernelError::NoSuchInterface { .. }) => {
                crate::config::ConfigErrors::EXIT_CODE
            }
            // `http.listen` names an address this host does not have: the config's.
            StartupError::Http { source, .. }
                if source.kind() == std::io::ErrorKind::AddrNotAvailable =>
            {
                crate::config::ConfigErrors::EXIT_CODE
            }
            _ => 1,
        }
    }
}

/// Per-call bound of EC2 calls and actions; EC2 retries inside the SDK.
pub const CLOUD_CALL_LIMIT: Duration = Duration::from_secs(5);

/// The loop's settings from the validated config.
pub fn loop_config(s: &Settings, prefix_len: u8) -> LoopConfig {
    LoopConfig {
        policy: Policy {
            node_id: s.node_id,
            prefix_len,
            pg_unknown_hold: s.pg_unknown_hold,
            cloud: s.aws.enabled.then(|| CloudPolicy {
                verify_interval: s.aws.verify_interval,
                cloud_unknown_hold: s.aws.cloud_unknown_hold,
                consistency_bound: s.aws.consistency_bound,
                backoff: Backoff::default(),
                fence_configured: s.aws.fence_command.is_some(),
            }),
        },
        interval: s.interval,
        limits: Limits {
            observe: s.pg_timeout,
            cloud: CLOUD_CALL_LIMIT,
            step: CLOUD_CALL_LIMIT,
        },
        release_on_stop: s.on_stop == OnStop::Release,
        state_file: s.aws.enabled.then(|| s.aws.state_file.clone()),
    }
}

/// The journal kept in the state file (`aws.state_file`), or none (kernel-only).
pub fn journal_for(path: Option<&std::path::Path>) -> Box<dyn Journal + Send> {
    match path {
        Some(p) => Box::new(StateFile::new(p)),
        None => Box::new(Nowhere),
    }
}

/// The VIP among this host's addresses, as `run` and `plan` judge it before anything
/// else: an address the host uses, or one outside the interface's network, is a
/// configuration error (check-config prints the same lines).
pub async fn vip_fits_here(kernel: &Netlink) -> Result<(), StartupError> {
    use crate::adapters::own_address::Problem;
    let mut config = Vec::new();
    for p in kernel.startup_problems().await? {
        match p {
            Problem::Config(line) => config.push(line),
            Problem::NoAddressYet(line) => return Err(StartupError::NotReady(line)),
        }
    }
    if config.is_empty() {
        Ok(())
    } else {
        Err(StartupError::Config(config.join("; ")))
    }
}

/// Run until `shutdown`; returns after the loop and the socket have stopped.
pub async fn run(
    s: Settings,
    config_path: Option<PathBuf>,
    shutdown: Shutdown,
    level: Option<LevelHandle>,
) -> Result<(), StartupError> {
    for w in &s.warnings {
        warn!(warning = %w, "configuration: {w}");
    }
    if let Some(problem) = server::path_problem(&s.socket) {
        return Err(server::SocketError::Path(problem).into());
    }
    let kernel = Netlink::connect(&s.interface, s.vip)?;
    vip_fits_here(&kernel).await?;
    let prefix_len = match s.prefix_len {
        Some(p) => p,
        None => kernel.primary_prefix().await?,
    };
    let cfg = loop_config(&s, prefix_len);
    let metrics = Arc::new(Metrics::default());
    let cloud = build_cloud(&s, &kernel, metrics.clone(), true)
        .await?
        .map(|(ec2, _)| ec2);
    let (health, kicks) = HealthState::new(metrics);
    let listener = server::bind(
        &s.socket,
        s.socket_mode,
        s.socket_group.as_ref().map(|g| g.id),
    )
    .await?;
    let server = tokio::spawn(server::serve(
        listener,
        health.clone(),
        KickAllow::new(&s.kick_allow),
        shutdown.token(),
    ));
    let http = match s.http.listen {
        None => None,
        Some(addr) => {
            let listener = tcp::bind(addr)
                .await
                .map_err(|source| StartupError::Http { addr, source })?;
            info!(listen = %addr, "http endpoint listening");
            Some(tokio::spawn(tcp::serve(
                listener,
                health.clone(),
                tcp::Endpoint {
                    allow: s.http.allow.clone(),
                    stale_after: stale_after(&s),
                },
                shutdown.token(),
            )))
        }
    };
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(StartupError::Signals)?;
    let (hangup_tx, hangups) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while sighup.recv().await.is_some() {
            let _ = hangup_tx.try_send(());
        }
    });
    info!(vip = %s.vip, interface = %s.interface, prefix_len, node_id = s.node_id,
        aws = s.aws.enabled, interval_ms = u64::try_from(s.interval.as_millis()).unwrap_or(u64::MAX), "starting");
    let identity = Identity {
        node_id: s.node_id,
        vip: s.vip.to_string(),
        interface: s.interface.clone(),
    };
    let pg = pg_observer(&s);
    let pg_timeouts = Some(pg.timeouts());
    let mut world = World {
        pg,
        kernel,
        cloud,
        fencer: fencer(&s),
    };
    let socket_path = s.socket.clone();
    let ctl = Control {
        health,
        identity,
        kicks,
        shutdown: shutdown.clone(),
        reload: FileReload {
            path: config_path,
            running: s,
            prefix_len,
            level,
            pg_timeouts,
        },
        hangups: Some(hangups),
        journals: journal_for,
    };
    run_loop::run(&mut world, cfg, ctl).await;
    shutdown.trigger_graceful();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    if let Some(http) = http {
        let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
    }
    let _ = std::fs::remove_file(&socket_path);
    info!("stopped");
    Ok(())
}

/// How old the last pass may be before the TCP endpoint's role answers call it
/// unknown (503): three intervals and one slow pass (the PostgreSQL bound, an EC2
/// call and a step). 15 s with the defaults.
pub fn stale_after(s: &Settings) -> Duration {
    s.interval * 3 + s.pg_timeout + CLOUD_CALL_LIMIT * 2
}

/// EC2 mode: the adapter, after the start-up self-test (`check-config --online`'s
/// checks) is logged. An ENI that is not this node's (another instance's, another
/// subnet's, another MAC's), or that EC2 still does not show after
/// `adapters::ec2::setup::ENI_WAIT`, is a configuration error; anything else (an outage, a
/// missing permission) is logged and the loop reports it as it acts.
async fn build_cloud(
    s: &Settings,
    kernel: &Netlink,
    metrics: Arc<Metrics>,
    self_test: bool,
) -> Result<Option<(Ec2, crate::adapters::ec2::setup::Placement)>, StartupError> {
    if !s.aws.enabled {
        return Ok(None);
    }
    let (ec2, placement) = crate::adapters::ec2::setup::ec2(s, kernel, metrics)
        .await
        .map_err(StartupError::Cloud)?;
    info!(eni = ec2.eni_id(), subnet = %placement.subnet_id, "EC2 mode");
    if self_test {
        // Before READY: the ENI must be this node's (retried while EC2 does not show
        // it yet, adapters::ec2::setup::ENI_WAIT); a mismatch is a configuration error.
        let eni = match crate::adapters::ec2::setup::here(s, kernel, &placement).await {
            Ok(here) => crate::adapters::ec2::setup::wait_for_eni(
                &ec2,
                &placement,
                &here,
                crate::adapters::ec2::setup::eni_wait(),
            )
            .await
            .map_err(|line| {
                tracing::error!(check = %format!("FAIL: {line}"), "start-up self-test");
                StartupError::Config(line)
            })?,
            Err(e) => vec![(
                false,
                format!("ENI {} not cross-checked: {e}", placement.eni_id),
            )],
        };
        let found = crate::adapters::ec2::setup::checks(&ec2, &placement, s.node_id, eni).await;
        let fits = crate::adapters::ec2::setup::vip_in_subnet::check(&ec2, &placement, s.vip)
            .await
            .map_err(|line| {
                tracing::error!(check = %format!("FAIL: {line}"), "start-up self-test");
                StartupError::Config(line)
            })?;
        for f in found.iter().chain(&fits) {
            if f.ok {
                info!(check = %f, "start-up self-test");
            } else {
                tracing::error!(check = %f, "start-up self-test");
            }
        }
        let note = crate::adapters::ec2::setup::vip_in_subnet::reservation_note(
            s.vip,
            &placement.subnet_id,
        );
        info!(check = %note, "start-up self-test");
    }
    Ok(Some((ec2, placement)))
}

/// The PostgreSQL observer as configured: timeouts from `pg_timeout`, the password
/// file read again at every connect.
fn pg_observer(s: &Settings) -> PgObserver {
    PgObserver::from_settings(
        s.pg.clone(),
        s.node_id,
        PgTimeouts::for_pg_timeout(s.pg_timeout),
    )
}

fn fencer(s: &Settings) -> Option<ShellFence> {
    s.aws.fence_command.as_ref().map(|command| ShellFence {
        command: command.clone(),
        vip: s.vip,
        node_id: s.node_id,
    })
}

/// `vip-arbiter plan`: observe and decide once with the real adapters; act never.
pub async fn plan_once(s: &Settings) -> Result<crate::cli::plan_report::PlanReport, StartupError> {
    use crate::cli::plan_report::{Ec2Place, PlanContext, PlanReport};
    use crate::pass::observe::{self, CloudSource};
    let kernel = Netlink::connect(&s.interface, s.vip)?;
    vip_fits_here(&kernel).await?;
    let prefix_len = match s.prefix_len {
        Some(p) => p,
        None => kernel.primary_prefix().await?,
    };
    let cfg = loop_config(s, prefix_len);
    let (cloud, place) = match build_cloud(s, &kernel, Arc::new(Metrics::default()), false).await? {
        Some((ec2, placement)) => (Some(ec2), Some(placement)),
        None => (None, None),
    };
    let mut pg = pg_observer(s);
    let (report, kernel_view) = observe::gather_local(&mut pg, &kernel, cfg.limits.observe).await;
    let repmgr_primary = report.repmgr_primary;
    // Decide as a daemon started now would: from the journal (read, never written).
    let now = crate::pass::journal::boot_time();
    let (memory, _) = crate::pass::journal::Kept::new(journal_for(cfg.state_file.as_deref()))
        .start(now, &cfg.policy);
    let mut observation = crate::core::observation::Observation {
        now,
        pg: report.view,
        kernel: kernel_view,
        cloud: cloud.observe().await,
        marks: cloud.marks().await,
        system_id: report.system_id,
        holder_pg: Default::default(),
        known_nodes: report.known_nodes,
        cluster_tag: cloud.cluster_tagged(),
    };
    let (plan, _) = crate::pass::reconcile::decide_asking_holder(
        &mut observation,
        &memory,
        &cfg.policy,
        0,
        (&mut pg, &cloud),
        cfg.limits.observe,
    )
    .await;
    let ctx = PlanContext {
        node_id: s.node_id,
        vip: s.vip,
        interface: s.interface.clone(),
        prefix_len,
        ec2: place.map(|p| Ec2Place {
            eni: p.eni_id,
            subnet: p.subnet_id,
        }),
        fence_command: s.aws.fence_command.clone(),
        repmgr_primary,
    };
    let elig = crate::core::decide::eligibility(&observation.pg);
    Ok(PlanReport::new(&ctx, &observation, &elig, &plan))
}

/// One-shot EC2 verbs (`retire-claim`): the adapter as `plan` builds it (the ENI and
/// subnet from the config, else IMDS; no start-up self-test). `None` in kernel-only mode.
pub async fn cloud_once(
    s: &Settings,
) -> Result<Option<(Ec2, crate::adapters::ec2::setup::Placement)>, StartupError> {
    let kernel = Netlink::connect(&s.interface, s.vip)?;
    build_cloud(s, &kernel, Arc::new(Metrics::default()), false).await
}

/// `check-config --online`: the EC2 self-test.
pub async fn online_check(s: &Settings) -> Result<(bool, Vec<String>), StartupError> {
    let kernel = Netlink::connect(&s.interface, s.vip)?;
    Ok(crate::adapters::ec2::setup::self_test(s, &kernel, Arc::new(Metrics::default())).await)
}
