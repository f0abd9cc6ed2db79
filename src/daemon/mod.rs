//! The composition root of `vip-arbiter run`: build the real adapters from the
//! settings, start the health socket, run the loop until shutdown.

pub mod logging;
pub mod shutdown;
pub mod systemd;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::adapters::ec2::Ec2;
use crate::adapters::fence::ShellFence;
use crate::adapters::netlink::{KernelError, Netlink};
use crate::adapters::postgres::{PgObserver, PgTimeouts, TimeoutsHandle};
use crate::config::{self, OnStop, Settings};
use crate::core::backoff::Backoff;
use crate::core::decide::{CloudPolicy, Policy};
use crate::daemon::logging::LevelHandle;
use crate::daemon::shutdown::Shutdown;
use crate::health::metrics::Metrics;
use crate::health::server;
use crate::health::socket_access::KickAllow;
use crate::health::state::{HealthState, Identity};
use crate::pass::reconcile::{Limits, World};
use crate::pass::run_loop::{self, Control, LoopConfig, Reload};

/// Why the daemon could not start: exit 78 for `Config`, 1 for the rest.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("kernel: {0}")]
    Kernel(#[from] KernelError),
    #[error("health socket: {0}")]
    Socket(String),
    #[error("signals: {0}")]
    Signals(std::io::Error),
    #[error("EC2: {0}")]
    Cloud(String),
    #[error("configuration: {0}")]
    Config(String),
}

/// Per-call bound of EC2 calls and actions; EC2 retries inside the SDK.
impl StartupError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartupError::Config(_) => crate::config::ConfigErrors::EXIT_CODE,
            _ => 1,
        }
    }
}

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
        fence_file: s.aws.enabled.then(|| s.aws.state_file.clone()),
    }
}

/// Re-reads the config file on SIGHUP. Keys that need a restart are reported and
/// keep their running values.
pub struct FileReload {
    pub path: Option<PathBuf>,
    pub running: Settings,
    pub prefix_len: u8,
    pub level: Option<LevelHandle>,
    /// The PostgreSQL observer's timeouts, which follow `pg_timeout`.
    pub pg_timeouts: Option<TimeoutsHandle>,
}

impl Reload for FileReload {
    fn reload(&mut self) -> Result<LoopConfig, String> {
        let new = config::load(self.path.as_deref()).map_err(|e| e.to_string())?;
        for key in restart_only_changes(&self.running, &new) {
            warn!(
                key,
                "changed in the config file, but only takes effect after a restart"
            );
        }
        if new.log_level != self.running.log_level
            && let Some(level) = &self.level
        {
            level.set(&new.log_level)?;
        }
        let prefix_len = new.prefix_len.unwrap_or(self.prefix_len);
        let mut cfg = loop_config(&new, prefix_len);
        if let Some(t) = &self.pg_timeouts {
            t.set_pg_timeout(new.pg_timeout);
        }
        // The running adapters were built for these; keep them coherent.
        cfg.policy.node_id = self.running.node_id;
        if new.aws.enabled != self.running.aws.enabled {
            cfg.policy.cloud = loop_config(&self.running, prefix_len).policy.cloud;
        }
        if let Some(c) = cfg.policy.cloud.as_mut() {
            c.fence_configured = self.running.aws.fence_command.is_some();
        }
        // Keys that need a restart keep their running values in what we remember too.
        let mut new = new;
        new.vip = self.running.vip;
        new.interface.clone_from(&self.running.interface);
        new.node_id = self.running.node_id;
        new.pg = self.running.pg.clone();
        new.socket.clone_from(&self.running.socket);
        new.socket_mode = self.running.socket_mode;
        new.socket_group.clone_from(&self.running.socket_group);
        new.kick_allow.clone_from(&self.running.kick_allow);
        new.aws.enabled = self.running.aws.enabled;
        new.aws
            .fence_command
            .clone_from(&self.running.aws.fence_command);
        self.running = new;
        Ok(cfg)
    }
}

fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.vip != new.vip {
        keys.push("vip");
    }
    if old.interface != new.interface {
        keys.push("interface");
    }
    if old.node_id != new.node_id {
        keys.push("node_id");
    }
    // The masked text hides a changed password: compare what the driver would use,
    // except a password file's, which is read again at every connect anyway.
    let password_changed = match (&old.pg.passfile, &new.pg.passfile) {
        (Some(a), Some(b)) => a.path != b.path,
        (None, None) => old.pg.config.get_password() != new.pg.config.get_password(),
        _ => true,
    };
    if old.pg.conninfo_redacted != new.pg.conninfo_redacted || password_changed {
        keys.push("conninfo");
    }
    if old.socket != new.socket {
        keys.push("socket");
    }
    if old.socket_mode != new.socket_mode {
        keys.push("socket_mode");
    }
    if old.socket_group != new.socket_group {
        keys.push("socket_group");
    }
    if old.kick_allow != new.kick_allow {
        keys.push("kick_allow");
    }
    if old.aws.enabled != new.aws.enabled {
        keys.push("aws.enabled");
    }
    if old.aws.fence_command != new.aws.fence_command {
        keys.push("aws.fence_command");
    }
    keys
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
    let kernel = Netlink::connect(&s.interface, s.vip)?;
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
    .await
    .map_err(|e| StartupError::Socket(e.to_string()))?;
    let server = tokio::spawn(server::serve(
        listener,
        health.clone(),
        KickAllow::new(&s.kick_allow),
        shutdown.token(),
    ));
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
    };
    run_loop::run(&mut world, cfg, ctl).await;
    shutdown.trigger_graceful();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    let _ = std::fs::remove_file(&socket_path);
    info!("stopped");
    Ok(())
}

/// EC2 mode: the adapter, after the start-up self-test (`check-config --online`'s
/// checks) is logged. An ENI that is not this node's (another instance's, another
/// subnet's, another MAC's), or that EC2 still does not show after
/// `cloud_setup::ENI_WAIT`, is a configuration error; anything else (an outage, a
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
        // it yet, cloud_setup::ENI_WAIT); a mismatch is a configuration error.
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
        let (_, lines) =
            crate::adapters::ec2::setup::checks(&ec2, &placement, s.vip, s.node_id, eni).await;
        for line in &lines {
            if line.starts_with("FAIL") {
                tracing::error!(check = %line, "start-up self-test");
            } else {
                info!(check = %line, "start-up self-test");
            }
        }
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
    let observation = crate::core::observation::Observation {
        now: Duration::ZERO,
        pg: report.view,
        kernel: kernel_view,
        cloud: cloud.observe().await,
        marks: cloud.marks().await,
        system_id: report.system_id,
    };
    let (plan, _) = crate::core::decide::decide(
        &observation,
        &crate::core::decide::Memory::default(),
        &cfg.policy,
        0,
    );
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

/// `check-config --online`: the EC2 self-test.
pub async fn online_check(s: &Settings) -> Result<(bool, Vec<String>), StartupError> {
    let kernel = Netlink::connect(&s.interface, s.vip)?;
    Ok(crate::adapters::ec2::setup::self_test(s, &kernel, Arc::new(Metrics::default())).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Settings {
        let text = format!("vip = \"10.0.1.100\"\ninterface = \"ens5\"\nnode_id = 1\n{extra}");
        config::from_text(&text, Vec::new()).expect("a valid config")
    }

    #[test]
    fn a_changed_password_or_socket_access_is_reported_as_needing_a_restart() {
        let a = settings("conninfo = \"user=repmgr password=one\"\n");
        let b = settings("conninfo = \"user=repmgr password=two\"\n");
        assert_eq!(restart_only_changes(&a, &b), ["conninfo"]);
        assert!(restart_only_changes(&a, &a).is_empty());
        let c = settings(
            "conninfo = \"user=repmgr password=one\"\nkick_allow = [\"root\"]\nsocket_group = \"0\"\nsocket_mode = \"0600\"\n",
        );
        assert_eq!(
            restart_only_changes(&a, &c),
            ["socket_mode", "socket_group", "kick_allow"]
        );
    }

    #[test]
    fn a_rotated_password_file_needs_no_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (toml, pgpass) = (dir.path().join("va.toml"), dir.path().join("pgpass"));
        std::fs::write(
            &toml,
            "vip = \"10.0.1.100\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"user=repmgr\"\n",
        )
        .expect("write");
        let load = |pw: &str| {
            std::fs::write(&pgpass, format!("*:*:*:*:{pw}\n")).expect("write");
            std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
            config::load_from(Some(&toml), Vec::new(), Some(pgpass.clone())).expect("loads")
        };
        let (a, b) = (load("one"), load("two"));
        assert!(restart_only_changes(&a, &b).is_empty());
    }

    #[test]
    fn every_restart_only_key_is_reported_and_keeps_its_running_value() {
        let old = "vip = \"10.0.1.100\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"user=a\"\ninterval = \"1s\"\n";
        let new = "vip = \"10.0.1.101\"\ninterface = \"ens6\"\nnode_id = 2\nconninfo = \"user=b\"\n\
                   interval = \"2s\"\nsocket = \"/run/x.sock\"\nsocket_mode = \"0600\"\nsocket_group = \"0\"\n\
                   kick_allow = [\"root\"]\nlog_level = \"debug\"\n[aws]\nenabled = true\nfence_command = \"/bin/true\"\n";
        let (a, b) = (
            config::from_text(old, Vec::new()).expect("loads"),
            config::from_text(new, Vec::new()).expect("loads"),
        );
        assert_eq!(
            restart_only_changes(&a, &b),
            [
                "vip",
                "interface",
                "node_id",
                "conninfo",
                "socket",
                "socket_mode",
                "socket_group",
                "kick_allow",
                "aws.enabled",
                "aws.fence_command"
            ]
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("va.toml");
        std::fs::write(&path, new).expect("write");
        let mut reload = FileReload {
            path: Some(path),
            running: a.clone(),
            prefix_len: 24,
            level: None,
            pg_timeouts: None,
        };
        let cfg = reload.reload().expect("reloads");
        assert_eq!(cfg.interval, Duration::from_secs(2), "applies at once");
        assert_eq!(cfg.policy.node_id, 1);
        assert!(cfg.policy.cloud.is_none(), "aws.enabled needs a restart");
        let r = &reload.running;
        assert!(restart_only_changes(&a, r).is_empty(), "{r:?}");
        assert_eq!(
            (r.interval, r.log_level.as_str()),
            (Duration::from_secs(2), "debug")
        );
    }
}
