//! The health snapshot: what `GET /health`, `status` and `check` report. Built from
//! the last pass; shared between the loop (writer) and the socket (reader).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::core::decide::{Eligibility, eligibility};
use crate::core::observation::{ClaimTag, CloudView, KernelView, PgRole, PgView};
use crate::core::plan::{Severity, Step};
use crate::health::metrics::Metrics;
use crate::pass::reconcile::PassReport;

/// One JSON document; field names are stable (monitoring parses them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub node_id: i32,
    pub vip: String,
    pub interface: String,
    /// "primary" | "standby" | "unknown"
    pub role: String,
    pub timeline: Option<u32>,
    pub eligible: bool,
    pub eligibility: String,
    pub repmgr_primary: Option<i32>,
    pub kernel: String,
    pub cloud: String,
    pub verdict: String,
    pub verdict_kind: String,
    /// "ok" | "warning" | "critical"
    pub severity: String,
    pub converged: bool,
    pub last_pass_unix_ms: u64,
    pub last_pass_duration_ms: u64,
    pub pass_count: u64,
    pub last_error: Option<String>,
    #[serde(default)]
    pub counters: serde_json::Value,
    /// A standby's WAL receiver and lag (the TCP endpoint's `/replica`); absent on
    /// a primary and when PostgreSQL is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationState>,
}

/// `pass::observe::Replication` as the snapshot shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicationState {
    /// `pg_stat_wal_receiver.status`; None: no WAL receiver (or not visible).
    pub receiver: Option<String>,
    /// This node's upstream in its `repmgr.nodes`.
    pub upstream: Option<i32>,
    pub lag_bytes: Option<u64>,
    pub lag_ms: Option<u64>,
}

impl Snapshot {
    /// Exit code and one line, monitoring-plugin style.
    pub fn check_line(&self) -> (i32, String) {
        let (code, label) = match Severity::from_label(&self.severity) {
            Some(s) => (s as i32, s.as_str().to_ascii_uppercase()),
            None => (3, "UNKNOWN".to_owned()),
        };
        (code, format!("VIP-ARBITER {label} - {}", self.verdict))
    }
}

/// Static facts the snapshot repeats.
#[derive(Debug, Clone)]
pub struct Identity {
    pub node_id: i32,
    pub vip: String,
    pub interface: String,
}

pub fn snapshot(
    id: &Identity,
    r: &PassReport,
    took: Duration,
    pass_count: u64,
    last_error: Option<String>,
) -> Snapshot {
    let o = &r.observation;
    let role = match &o.pg {
        PgView::Unknown(_) => "unknown",
        PgView::Known {
            role: PgRole::Primary { .. },
            ..
        } => "primary",
        PgView::Known {
            role: PgRole::Standby,
            ..
        } => "standby",
    };
    let elig = eligibility(&o.pg);
    let timeline = match &o.pg {
        PgView::Known {
            role: PgRole::Primary { timeline },
            ..
        } => Some(*timeline),
        _ => None,
    };
    Snapshot {
        node_id: id.node_id,
        vip: id.vip.clone(),
        interface: id.interface.clone(),
        role: role.into(),
        timeline,
        eligible: matches!(elig, Eligibility::Eligible { .. }),
        eligibility: match elig {
            Eligibility::Eligible { timeline } => format!("eligible (timeline {timeline})"),
            Eligibility::NotEligible(why) => format!("not eligible: {why}"),
            Eligibility::Unknown(why) => format!("unknown: {why}"),
        },
        repmgr_primary: r.repmgr_primary,
        kernel: kernel_after(r),
        cloud: describe_cloud(&o.cloud),
        verdict: r.verdict.to_string(),
        verdict_kind: r.verdict.kind().into(),
        severity: r.verdict.severity().as_str().into(),
        converged: r.converged(),
        last_pass_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        last_pass_duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        pass_count,
        last_error,
        counters: serde_json::Value::Null,
        replication: r.replication.as_ref().map(|x| ReplicationState {
            receiver: x.receiver.clone(),
            upstream: x.upstream,
            lag_bytes: x.lag_bytes,
            lag_ms: x.lag_ms,
        }),
    }
}

/// The kernel as it is after this pass's steps, not as it was observed before them.
fn kernel_after(r: &PassReport) -> String {
    let done_ok = |kind: &str| {
        r.done
            .iter()
            .any(|d| d.step.kind() == kind && d.result.is_ok())
    };
    if done_ok("remove_kernel") {
        return "absent (removed this pass)".into();
    }
    let added = r.done.iter().find_map(|d| match (&d.step, &d.result) {
        (Step::AddKernel { prefix_len }, Ok(_)) => Some(*prefix_len),
        _ => None,
    });
    if let Some(prefix_len) = added {
        return format!("present /{prefix_len} (added this pass)");
    }
    match &r.observation.kernel {
        KernelView::Present { prefix_len } => format!("present /{prefix_len}"),
        KernelView::Absent => "absent".into(),
        KernelView::Unknown(why) => format!("unknown: {why}"),
    }
}

fn describe_cloud(c: &CloudView) -> String {
    let claim = |t: &ClaimTag| match t {
        ClaimTag::Absent => "no claim".to_owned(),
        ClaimTag::Valid(c) => format!("claim {c}"),
        ClaimTag::Invalid(why) => format!("unreadable claim ({why})"),
    };
    match c {
        CloudView::Disabled => "disabled (kernel-only)".into(),
        CloudView::NotChecked => {
            "not asked this pass (last answer still fresh, or backing off)".into()
        }
        CloudView::Me { claim: t } => format!("this ENI ({})", claim(t)),
        CloudView::Other { eni, claim: t } => format!("{eni} ({})", claim(t)),
        CloudView::Nobody => "nobody".into(),
        CloudView::Unknown { code, reason, .. } => match code {
            Some(code) => format!("unknown: {reason} ({code})"),
            None => format!("unknown: {reason}"),
        },
    }
}

/// Shared between the loop and the health socket.
pub struct HealthState {
    /// The last snapshot and when it was published.
    snapshot: Mutex<Option<(Snapshot, Instant)>>,
    pub metrics: Arc<Metrics>,
    kick: mpsc::Sender<()>,
    unfence: std::sync::atomic::AtomicBool,
}

impl HealthState {
    /// Returns the state and the receiving end of kicks, for the loop.
    pub fn new(metrics: Arc<Metrics>) -> (Arc<Self>, mpsc::Receiver<()>) {
        let (kick, rx) = mpsc::channel(1);
        (
            Arc::new(HealthState {
                snapshot: Mutex::new(None),
                metrics,
                kick,
                unfence: std::sync::atomic::AtomicBool::new(false),
            }),
            rx,
        )
    }

    pub fn publish(&self, s: Snapshot) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some((s, Instant::now()));
    }

    pub fn current(&self) -> Option<Snapshot> {
        self.current_with_age().map(|(s, _)| s)
    }

    /// The last snapshot and how long ago it was published.
    pub fn current_with_age(&self) -> Option<(Snapshot, Duration)> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(s, at)| (s.clone(), at.elapsed()))
    }

    /// Ask for a pass now. A full channel means a pass is already pending: kicks coalesce.
    pub fn kick(&self) {
        let _ = self.kick.try_send(());
    }

    /// The operator asked to clear the fence: remember it and pass at once.
    pub fn ask_unfence(&self) {
        self.unfence
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.kick();
    }

    /// Was an unfence asked for since the last call? (The loop, once per pass.)
    pub fn take_unfence(&self) -> bool {
        self.unfence
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// The `GET /health` answer: (converged, JSON).
    pub fn health_json(&self) -> (bool, String) {
        match self.current() {
            Some(mut s) => {
                s.counters = self.metrics.json();
                let converged = s.converged;
                (
                    converged,
                    serde_json::to_string(&s).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
                )
            }
            None => (
                false,
                r#"{"verdict":"starting: no pass completed yet","severity":"unknown"}"#.into(),
            ),
        }
    }
}

impl crate::health::server::HealthSource for HealthState {
    fn health(&self) -> (bool, String) {
        self.health_json()
    }
    fn metrics(&self) -> String {
        self.metrics.prometheus()
    }
    fn kick(&self) {
        HealthState::kick(self);
    }
    fn unfence(&self) {
        self.ask_unfence();
    }
}
