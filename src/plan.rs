//! What one pass decided: the steps to carry out, the verdict, and notable events.
//! Plain data, no I/O.

use std::fmt;

use crate::claim::Claim;

/// One side effect. The actuators make every step idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write our claim tag on our own ENI (before assigning, or to refresh it).
    WriteClaim(Claim),
    /// AssignPrivateIpAddresses(AllowReassignment=true) to our ENI.
    AssignCloud,
    /// DescribeNetworkInterfaces again; fails unless EC2 now says "me".
    VerifyCloud,
    /// Put VIP/prefix on the interface (replacing it if it is there with another prefix).
    AddKernel { prefix_len: u8 },
    /// Remove the VIP from the interface, whatever its prefix.
    RemoveKernel,
    /// Run the operator's fence command once for a stale-primary incident.
    Fence { holder: String },
}

impl Step {
    /// Steps that take the VIP: a failure stops the rest of the plan, so the kernel
    /// address is never added without a confirmed cloud assignment.
    pub fn is_acquire(&self) -> bool {
        matches!(
            self,
            Step::WriteClaim(_) | Step::AssignCloud | Step::VerifyCloud | Step::AddKernel { .. }
        )
    }

    /// Short stable name, used as a metrics label and in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::WriteClaim(_) => "write_claim",
            Step::AssignCloud => "assign_cloud",
            Step::VerifyCloud => "verify_cloud",
            Step::AddKernel { .. } => "add_kernel",
            Step::RemoveKernel => "remove_kernel",
            Step::Fence { .. } => "fence",
        }
    }
}

/// Monitoring-plugin severity of a verdict (`vip-arbiter check` exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

/// The one-line state of this node, as `STATUS=`, in health and in `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Eligible, and the VIP is here (kernel, and EC2 when enabled).
    Holding,
    /// Not eligible and the VIP is not here.
    Standby { reason: String },
    /// Eligible; steps are under way to take the VIP.
    Acquiring,
    /// Not eligible (or no longer allowed); the kernel address is being removed.
    Releasing { reason: String },
    /// PostgreSQL unknown; the kernel address is kept until the hold runs out.
    PgUnknownHolding { reason: String },
    /// PostgreSQL unknown and the VIP is not (or no longer) here.
    PgUnknown { reason: String },
    /// Eligible, but another ENI holds the VIP with an equal or higher timeline.
    StalePrimary {
        holder: String,
        holder_timeline: u32,
        our_timeline: u32,
    },
    /// Eligible, but the cloud could not be observed. `needs_operator`: the error
    /// is one no retry fixes (e.g. a missing IAM permission).
    CloudUnknown {
        reason: String,
        keeping: bool,
        needs_operator: bool,
    },
    /// The kernel could not be observed.
    KernelUnknown { reason: String },
    /// A step failed this pass.
    ActionFailed {
        step: &'static str,
        error: String,
        needs_operator: bool,
    },
}

impl Verdict {
    pub fn severity(&self) -> Severity {
        match self {
            Verdict::Holding | Verdict::Standby { .. } => Severity::Ok,
            Verdict::StalePrimary { .. } => Severity::Critical,
            Verdict::PgUnknown { .. } => Severity::Critical,
            Verdict::CloudUnknown {
                needs_operator: true,
                ..
            } => Severity::Critical,
            Verdict::ActionFailed {
                needs_operator: true,
                ..
            } => Severity::Critical,
            _ => Severity::Warning,
        }
    }

    /// Short stable name (metrics label, health JSON).
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Holding => "holding",
            Verdict::Standby { .. } => "standby",
            Verdict::Acquiring => "acquiring",
            Verdict::Releasing { .. } => "releasing",
            Verdict::PgUnknownHolding { .. } => "pg-unknown-holding",
            Verdict::PgUnknown { .. } => "pg-unknown",
            Verdict::StalePrimary { .. } => "stale-primary",
            Verdict::CloudUnknown { .. } => "cloud-unknown",
            Verdict::KernelUnknown { .. } => "kernel-unknown",
            Verdict::ActionFailed { .. } => "action-failed",
        }
    }

    /// Every kind, for metrics that must list all label values.
    pub const KINDS: [&'static str; 10] = [
        "holding",
        "standby",
        "acquiring",
        "releasing",
        "pg-unknown-holding",
        "pg-unknown",
        "stale-primary",
        "cloud-unknown",
        "kernel-unknown",
        "action-failed",
    ];
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Holding => write!(f, "holding: primary, VIP here"),
            Verdict::Standby { reason } => write!(f, "standby: {reason}; VIP not here"),
            Verdict::Acquiring => write!(f, "acquiring: primary, taking the VIP"),
            Verdict::Releasing { reason } => write!(f, "releasing: {reason}"),
            Verdict::PgUnknownHolding { reason } => {
                write!(f, "pg-unknown-holding: {reason}; keeping the VIP for now")
            }
            Verdict::PgUnknown { reason } => write!(f, "pg-unknown: {reason}; VIP not here"),
            Verdict::StalePrimary {
                holder,
                holder_timeline,
                our_timeline,
            } => write!(
                f,
                "stale-primary: {holder} holds the VIP with timeline {holder_timeline} >= ours ({our_timeline}); not taking it"
            ),
            Verdict::CloudUnknown {
                reason, keeping, ..
            } => write!(
                f,
                "cloud-unknown: {reason}; {}",
                if *keeping {
                    "keeping the kernel address"
                } else {
                    "not adding the kernel address"
                }
            ),
            Verdict::KernelUnknown { reason } => write!(f, "kernel-unknown: {reason}"),
            Verdict::ActionFailed { step, error, .. } => {
                write!(f, "action-failed: {step}: {error}")
            }
        }
    }
}

/// Something worth one INFO line when it happens (not every pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PgUnknownHoldStarted { hold_ms: u64 },
    PgUnknownHoldEnded { released: bool },
    StaleIncidentStarted { holder: String },
    StaleIncidentEnded,
}

/// The result of `decide()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub verdict: Verdict,
    pub events: Vec<Event>,
    /// Look again after `FOLLOW_INTERVAL` instead of the configured interval: this node
    /// has left recovery and repmgr has not yet recorded it as primary (see
    /// `decide::PROMOTION_FOLLOW`). Only when to look, never what to do.
    pub look_again_soon: bool,
}
