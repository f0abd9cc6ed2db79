//! The forever loop: a pass every `interval` (sooner when kicked, or while following a
//! promotion repmgr has not recorded yet), health and sd_notify after each pass,
//! the systemd watchdog fed while waiting between passes, SIGHUP reload, graceful then
//! forced shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, error, info, info_span, warn};

use crate::core::decide::{FOLLOW_INTERVAL, Memory, Policy};
use crate::core::observation::{CloudView, KernelView, PgView};
use crate::daemon::shutdown::Shutdown;
use crate::daemon::systemd;
use crate::health::metrics::{Info, PassRecord};
use crate::health::state::{HealthState, Identity, snapshot};
use crate::pass::act::{CloudActuator, Fencer, KernelActuator};
use crate::pass::jitter;
use crate::pass::journal::{Journal, Kept, Start, boot_time};
use crate::pass::observe::{CloudSource, KernelSource, PgSource};
use crate::pass::reconcile::{self, Limits, World};

/// What a running loop may change on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopConfig {
    pub policy: Policy,
    pub interval: Duration,
    pub limits: Limits,
    pub release_on_stop: bool,
    /// Where the journal is kept across restarts (EC2 mode: `aws.state_file`);
    /// `None`: memory only (kernel-only mode).
    pub state_file: Option<std::path::PathBuf>,
}

/// How long a pass in progress may go on after a stop was asked for.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Kicks arriving this close together are one kick.
const KICK_DEBOUNCE: Duration = Duration::from_millis(10);

/// Hands the loop a new config on SIGHUP; `Err` keeps the old one.
pub trait Reload {
    fn reload(&mut self) -> Result<LoopConfig, String>;
}

/// The loop's inputs besides the world.
pub struct Control<R> {
    pub health: Arc<HealthState>,
    pub identity: Identity,
    pub kicks: mpsc::Receiver<()>,
    pub shutdown: Shutdown,
    pub reload: R,
    /// One message per SIGHUP (the daemon forwards the signal; tests send directly).
    pub hangups: Option<mpsc::Receiver<()>>,
    /// Opens the journal at `LoopConfig::state_file` (the daemon: the state file).
    pub journals: Journals,
}

pub async fn run<P, K, C, F, R>(
    world: &mut World<P, K, C, F>,
    mut cfg: LoopConfig,
    mut ctl: Control<R>,
) where
    P: PgSource + Send,
    K: KernelSource + KernelActuator + Sync,
    C: CloudSource + CloudActuator + Sync,
    F: Fencer + Sync,
    R: Reload,
{
    let mut journal = Kept::new((ctl.journals)(cfg.state_file.as_deref()));
    let mut mem = start_memory(&mut journal, &cfg.policy);
    let mut passes: u64 = 0;
    let mut last_kind = "";
    let mut trigger = "startup";
    // Read once: systemd sets WATCHDOG_USEC (and WATCHDOG_PID) before exec.
    let feed_every = systemd::watchdog_feed_interval();
    loop {
        while ctl.kicks.try_recv().is_ok() {}
        if ctl.health.take_unfence() {
            match mem.unfence() {
                Some(f) => {
                    warn!(claim = %f.by, holder = %f.holder, "fence cleared by the operator (was: {} with claim {}); that claim fences this node no more", f.holder, f.by)
                }
                None => info!("unfence asked for, but this node is not fenced"),
            }
        }
        let pass_start = Instant::now();
        passes += 1;
        let span = info_span!("pass", pass = passes, trigger);
        let jitter = jitter();
        let fut = reconcile::pass(
            world,
            &mem,
            &cfg.policy,
            cfg.limits,
            (boot_time(), jitter),
            &mut journal,
        )
        .instrument(span);
        let result = tokio::select! {
            r = fut => Some(r),
            () = abandon_after(&ctl.shutdown) => None,
        };
        let Some((report, next)) = result else {
            warn!("stopping: abandoned the pass in progress");
            break;
        };
        mem = next;
        let took = pass_start.elapsed();
        let m = &ctl.health.metrics;
        m.pass(PassRecord {
            started: pass_start,
            took,
            verdict: &report.verdict,
            converged: report.converged(),
            interval: cfg.interval,
        });
        if passes == 1 {
            m.info(Info {
                node_id: ctl.identity.node_id,
                vip: ctl.identity.vip.clone(),
                interface: ctl.identity.interface.clone(),
                mode: if cfg.policy.cloud.is_some() {
                    "ec2"
                } else {
                    "kernel-only"
                },
            });
        }
        count_observer_failures(m, &report.observation);
        for d in &report.done {
            let result = match &d.result {
                Ok(crate::pass::act::Applied::Changed) => "ok",
                Ok(crate::pass::act::Applied::AlreadyDone) => "noop",
                Err(_) => "error",
            };
            m.action(d.step.kind(), result);
        }
        let status = report.verdict.to_string();
        if report.verdict.kind() != last_kind {
            info!(verdict = %status, severity = ?report.verdict.severity(), "verdict changed: {status}");
            last_kind = report.verdict.kind();
        }
        let last_error = report
            .done
            .iter()
            .find_map(|d| d.result.as_ref().err().map(|e| e.message.clone()));
        ctl.health
            .publish(snapshot(&ctl.identity, &report, took, passes, last_error));
        if passes == 1 {
            systemd::ready(&status);
        }
        systemd::pass_done(&status);
        if ctl.shutdown.is_shutting_down() {
            break;
        }
        // A promotion repmgr has not recorded yet: look again soon (decide::PROMOTION_FOLLOW).
        let pace = if report.plan.look_again_soon {
            cfg.interval.min(FOLLOW_INTERVAL)
        } else {
            cfg.interval
        };
        trigger = match wait_next(&mut ctl, pass_start + pace, feed_every).await {
            Wake::Timer if report.plan.look_again_soon => "promotion-follow",
            Wake::Timer => "timer",
            Wake::Kick => "kick",
            Wake::Stop => break,
            Wake::Hangup => {
                let was = cfg.state_file.clone();
                reload(&mut ctl.reload, &mut cfg, &status);
                if cfg.state_file != was {
                    // Kept in the new place from now on (written at the next pass).
                    journal = Kept::new((ctl.journals)(cfg.state_file.as_deref()));
                }
                "reload"
            }
        };
    }
    systemd::stopping("stopping");
    if cfg.release_on_stop {
        release_on_stop(world, cfg.limits.step, &ctl.shutdown).await;
    } else {
        info!("stopping: keeping the kernel address as it is (on_stop = keep)");
    }
}

/// Opens the journal kept at a path (the state file); `None`: kernel-only mode.
pub type Journals = fn(Option<&std::path::Path>) -> Box<dyn Journal + Send>;

/// The memory to start from: the journal's, or a careful start (docs/operations.md,
/// "The state file").
fn start_memory(journal: &mut Kept<Box<dyn Journal + Send>>, policy: &Policy) -> Memory {
    let now = boot_time();
    let (mem, start) = journal.start(now, policy);
    let ec2 = policy.cloud.is_some();
    match start {
        Start::Journal => info!("state file read: continuing from the last run's journal"),
        Start::Partial if ec2 => warn!(
            "the state file holds only a fence (written by an older vip-arbiter): careful start (no takeover for the consistency bound if this node claimed before)"
        ),
        Start::NoJournal if ec2 => info!(
            "no state file yet: careful start (no takeover for the consistency bound if this node claimed before)"
        ),
        Start::Unreadable(e) => error!(
            error = %e,
            "cannot read the state file: {e}; careful start (no takeover for the consistency bound if this node claimed before)"
        ),
        _ => {}
    }
    if let Some(f) = &mem.fenced {
        error!(claim = %f.by, holder = %f.holder, "still fenced from before the restart: {} holds claim {} (clear with `vip-arbiter unfence`)", f.holder, f.by);
    }
    mem
}

enum Wake {
    Timer,
    Kick,
    Stop,
    Hangup,
}

/// Wait for the next pass's reason; meanwhile feed the watchdog every `feed_every`
/// (the last pass fed it as it ended).
async fn wait_next<R>(ctl: &mut Control<R>, at: Instant, feed_every: Option<Duration>) -> Wake {
    let mut next_feed = feed_every.map(|f| Instant::now() + f);
    loop {
        let hangup = async {
            match ctl.hangups.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        let feed = async {
            match next_feed {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        // Every branch but `feed` ends the wait; each is cancel-safe, so a feed
        // loses nothing that arrived meanwhile.
        tokio::select! {
            () = tokio::time::sleep_until(at) => return Wake::Timer,
            Some(()) = ctl.kicks.recv() => {
                tokio::time::sleep(KICK_DEBOUNCE).await;
                return Wake::Kick;
            }
            () = ctl.shutdown.cancelled() => return Wake::Stop,
            Some(()) = hangup => return Wake::Hangup,
            () = feed => {
                systemd::watchdog();
                next_feed = feed_every.map(|f| Instant::now() + f);
            }
        }
    }
}

/// Completes STOP_GRACE after a stop was asked for, or at once when forced.
async fn abandon_after(shutdown: &Shutdown) {
    shutdown.cancelled().await;
    tokio::select! {
        () = tokio::time::sleep(STOP_GRACE) => {}
        () = shutdown.forced() => {}
    }
}

/// What a reload changed, in words: `interval 1s -> 2s, verify_interval 30s -> 10s`.
fn changed_settings(old: &LoopConfig, new: &LoopConfig) -> String {
    let d = |d: Duration| format!("{d:?}");
    let mut out: Vec<String> = Vec::new();
    let mut note = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name} {a} -> {b}"));
        }
    };
    note("interval", d(old.interval), d(new.interval));
    note(
        "pg_unknown_hold",
        d(old.policy.pg_unknown_hold),
        d(new.policy.pg_unknown_hold),
    );
    note(
        "prefix_len",
        old.policy.prefix_len.to_string(),
        new.policy.prefix_len.to_string(),
    );
    note(
        "observe limit",
        d(old.limits.observe),
        d(new.limits.observe),
    );
    note("EC2 call limit", d(old.limits.cloud), d(new.limits.cloud));
    note("step limit", d(old.limits.step), d(new.limits.step));
    note(
        "on_stop",
        (if old.release_on_stop {
            "release"
        } else {
            "keep"
        })
        .into(),
        (if new.release_on_stop {
            "release"
        } else {
            "keep"
        })
        .into(),
    );
    let file = |c: &LoopConfig| {
        c.state_file
            .as_ref()
            .map_or("(none)".to_owned(), |p| p.display().to_string())
    };
    note("state_file", file(old), file(new));
    if let (Some(a), Some(b)) = (&old.policy.cloud, &new.policy.cloud) {
        note(
            "verify_interval",
            d(a.verify_interval),
            d(b.verify_interval),
        );
        note(
            "cloud_unknown_hold",
            d(a.cloud_unknown_hold),
            d(b.cloud_unknown_hold),
        );
        note(
            "consistency_bound",
            d(a.consistency_bound),
            d(b.consistency_bound),
        );
    }
    if out.is_empty() {
        "settings changed".to_owned()
    } else {
        out.join(", ")
    }
}

fn reload<R: Reload>(r: &mut R, cfg: &mut LoopConfig, status: &str) {
    systemd::reloading();
    match r.reload() {
        Ok(new) => {
            if new != *cfg {
                info!("configuration reloaded: {}", changed_settings(cfg, &new));
            } else {
                info!("configuration reloaded: nothing changed");
            }
            *cfg = new;
        }
        Err(e) => {
            error!(error = %e, "configuration reload refused ({e}); the old configuration stays in force")
        }
    }
    systemd::reloaded(status);
}

async fn release_on_stop<P, K, C, F>(
    world: &World<P, K, C, F>,
    limit: Duration,
    shutdown: &Shutdown,
) where
    K: KernelActuator,
{
    let removal = tokio::time::timeout(limit, world.kernel.remove());
    tokio::select! {
        r = removal => match r {
            Ok(Ok(applied)) => info!(result = ?applied, "stopping: released the kernel address (on_stop = release)"),
            Ok(Err(e)) => error!(error = %e.message, "stopping: could not release the kernel address"),
            Err(_) => error!("stopping: releasing the kernel address timed out"),
        },
        () = shutdown.forced() => warn!("stopping: forced; kernel address left as it is"),
    }
}

fn count_observer_failures(
    m: &crate::health::metrics::Metrics,
    o: &crate::core::observation::Observation,
) {
    if matches!(o.pg, PgView::Unknown(_)) {
        m.observer_failure("pg");
    }
    if matches!(o.kernel, KernelView::Unknown(_)) {
        m.observer_failure("kernel");
    }
    if matches!(o.cloud, CloudView::Unknown { .. }) {
        m.observer_failure("cloud");
    }
}
