//! What one pass decided: the steps to carry out, the verdict, and notable events.
//! Plain data, no I/O.

use std::fmt;

use crate::core::claim::Claim;

/// One side effect. The actuators make every step idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write our claim tag on our own ENI and our high-water mark on the subnet, in
    /// one CreateTags call (before assigning, or to refresh them).
    WriteClaim(Claim),
    /// AssignPrivateIpAddresses(AllowReassignment=true) to our ENI.
    AssignCloud,
    /// DescribeNetworkInterfaces again; fails unless EC2 now says "me".
    VerifyCloud,
    /// Put VIP/prefix on the interface (replacing it if it is there with another prefix).
    AddKernel { prefix_len: u8 },
    /// Remove the VIP from the interface, whatever its prefix.
    RemoveKernel,
    /// UnassignPrivateIpAddresses from our own ENI: a fenced node that finds itself
    /// holding the VIP at EC2 (a takeover its lagging reads allowed) hands it back,
    /// so the rightful primary sees "nobody" and takes it at once.
    ReleaseCloud,
    /// Run the operator's fence command once for a stale-primary incident.
    Fence { holder: String },
    /// DeleteTags of these marks on the subnet, each only while it still has that
    /// value: node ids repmgr no longer knows, below the highest mark. Housekeeping: a
    /// failure never changes the verdict (tried again after `PRUNE_RETRY`).
    PruneMarks(Vec<Claim>),
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
            Step::ReleaseCloud => "release_cloud",
            Step::Fence { .. } => "fence",
            Step::PruneMarks(_) => "prune_marks",
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

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Ok, Severity::Warning, Severity::Critical];

    /// "ok", "warning", "critical": the one label (health JSON, as serde writes it;
    /// upper-cased in monitoring-plugin lines).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The severity `as_str` names.
    pub fn from_label(label: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == label)
    }
}

/// The one-line state of this node, as `STATUS=`, in health and in `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Eligible, and the VIP is here (kernel, and EC2 when enabled).
    Holding,
    /// Holding, but the subnet's last read showed no `vip-arbiter-cluster` tag: the
    /// shipped policy allows claims only on tagged resources, so the next takeover's
    /// claim (this node's or another's) would be refused. CRITICAL; the VIP stays.
    HoldingUntagged,
    /// Not eligible and the VIP is not here.
    Standby { reason: String },
    /// repmgr's witness (its `repmgr.nodes` row is `type = 'witness'`): never holds
    /// the VIP, in any mode, and is OK while the VIP is not here.
    Witness,
    /// PostgreSQL is writable (out of recovery) but repmgr does not make it eligible:
    /// a split brain or broken metadata. `recording`: within `PROMOTION_FOLLOW` of
    /// first seeing it with repmgr still saying standby (a promotion repmgr has not
    /// recorded yet), WARNING; CRITICAL otherwise.
    WritableNotEligible { reason: String, recording: bool },
    /// Eligible; steps are under way to take the VIP.
    Acquiring,
    /// Not eligible (or no longer allowed); the kernel address is being removed.
    Releasing { reason: String },
    /// PostgreSQL unknown; the kernel address is kept (until the hold runs out in
    /// kernel-only mode; in EC2 mode for as long as EC2 shows no other holder, and
    /// CRITICAL once `past_hold`).
    PgUnknownHolding { reason: String, past_hold: bool },
    /// PostgreSQL unknown and the VIP is not (or no longer) here.
    PgUnknown { reason: String },
    /// Eligible, but another ENI holds the VIP with an equal or higher timeline.
    StalePrimary {
        holder: String,
        holder_timeline: u32,
        our_timeline: u32,
    },
    /// Eligible, but the cloud could not be observed. `needs_operator`: the error
    /// is one no retry fixes (e.g. a missing IAM permission). `past_hold`: kept
    /// longer than `cloud_unknown_hold` (CRITICAL, still kept).
    CloudUnknown {
        reason: String,
        keeping: bool,
        needs_operator: bool,
        past_hold: bool,
    },
    /// Eligible, and another ENI (or nobody) holds the VIP with no visible claim
    /// that forbids a takeover, but EC2's reads may lag its writes: the holder's claim
    /// may not be visible yet. No takeover until the holder has been seen for the
    /// consistency bound.
    Ec2Settling { holder: String, remaining_ms: u64 },
    /// A claim of another database system (another `system_identifier`) is on the
    /// VIP or the subnet: neither compared by timeline nor overridden.
    ForeignClaim {
        place: String,
        claim: Claim,
        ours: Option<u64>,
    },
    /// The kernel could not be observed.
    KernelUnknown { reason: String },
    /// A step failed this pass. `floor`: the severity of the plan's own verdict, which
    /// a failure never lowers (a stale primary whose removal fails stays CRITICAL).
    ActionFailed {
        step: &'static str,
        error: String,
        needs_operator: bool,
        floor: Severity,
    },
}

impl Verdict {
    pub fn severity(&self) -> Severity {
        match self {
            Verdict::Holding | Verdict::Standby { .. } | Verdict::Witness => Severity::Ok,
            Verdict::StalePrimary { .. }
            | Verdict::PgUnknown { .. }
            | Verdict::HoldingUntagged
            | Verdict::ForeignClaim { .. } => Severity::Critical,
            Verdict::WritableNotEligible { recording, .. } => {
                if *recording {
                    Severity::Warning
                } else {
                    Severity::Critical
                }
            }
            Verdict::PgUnknownHolding { past_hold, .. } => {
                if *past_hold {
                    Severity::Critical
                } else {
                    Severity::Warning
                }
            }
            Verdict::CloudUnknown {
                needs_operator,
                past_hold,
                ..
            } => {
                if *needs_operator || *past_hold {
                    Severity::Critical
                } else {
                    Severity::Warning
                }
            }
            Verdict::ActionFailed {
                needs_operator,
                floor,
                ..
            } => {
                if *needs_operator {
                    Severity::Critical
                } else {
                    (*floor).max(Severity::Warning)
                }
            }
            Verdict::Acquiring
            | Verdict::Releasing { .. }
            | Verdict::KernelUnknown { .. }
            | Verdict::Ec2Settling { .. } => Severity::Warning,
        }
    }
}

/// Every verdict's kind, declared once: `Verdict::kind()` and `Verdict::KINDS` both
/// come from this list (a variant missing from it does not compile).
macro_rules! verdict_kinds {
    ($($variant:ident => $name:literal,)*) => {
        impl Verdict {
            /// Short stable name (metrics label, health JSON).
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Verdict::$variant { .. } => $name,)*
                }
            }

            /// Every kind, for metrics that must list all label values.
            pub const KINDS: [&'static str; [$($name),*].len()] = [$($name),*];
        }
    };
}

verdict_kinds! {
    Holding => "holding",
    HoldingUntagged => "holding-untagged",
    Standby => "standby",
    Witness => "witness",
    WritableNotEligible => "writable-not-eligible",
    Acquiring => "acquiring",
    Releasing => "releasing",
    PgUnknownHolding => "pg-unknown-holding",
    PgUnknown => "pg-unknown",
    StalePrimary => "stale-primary",
    CloudUnknown => "cloud-unknown",
    Ec2Settling => "ec2-settling",
    ForeignClaim => "foreign-claim",
    KernelUnknown => "kernel-unknown",
    ActionFailed => "action-failed",
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Holding => write!(f, "holding: primary, VIP here"),
            Verdict::HoldingUntagged => write!(
                f,
                "holding-untagged: primary, VIP here, but the subnet has no vip-arbiter-cluster tag: the next takeover's claim will be refused (put it back: aws ec2 create-tags --resources <subnet> --tags Key=vip-arbiter-cluster,Value=<cluster>)"
            ),
            Verdict::Standby { reason } => write!(f, "standby: {reason}; VIP not here"),
            Verdict::Witness => write!(
                f,
                "witness: repmgr's witness never holds the VIP; VIP not here"
            ),
            Verdict::WritableNotEligible { reason, recording } => write!(
                f,
                "writable-not-eligible: PostgreSQL is writable but {reason}{}; VIP not here",
                if *recording {
                    " (a promotion repmgr has not recorded yet?)"
                } else {
                    ": split brain or broken repmgr metadata"
                }
            ),
            Verdict::Acquiring => write!(f, "acquiring: primary, taking the VIP"),
            Verdict::Releasing { reason } => write!(f, "releasing: {reason}"),
            Verdict::PgUnknownHolding { reason, past_hold } => write!(
                f,
                "pg-unknown-holding: {reason}; keeping the VIP {}",
                if *past_hold {
                    "(past pg_unknown_hold: EC2 shows no other holder)"
                } else {
                    "for now"
                }
            ),
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
                reason,
                keeping,
                past_hold,
                ..
            } => write!(
                f,
                "cloud-unknown: {reason}; {}",
                match (keeping, past_hold) {
                    (true, true) => "keeping the kernel address (past cloud_unknown_hold)",
                    (true, false) => "keeping the kernel address",
                    (false, _) => "not adding the kernel address",
                }
            ),
            Verdict::Ec2Settling {
                holder,
                remaining_ms,
            } => write!(
                f,
                "ec2-settling: {holder} holds the VIP without a visible claim that forbids a takeover; \
                 waiting {remaining_ms} ms more for EC2's reads to catch up before taking it"
            ),
            Verdict::ForeignClaim { place, claim, ours } => write!(
                f,
                "foreign-claim: {place} carries claim {claim} of another database system (ours: {}); \
                 not taking the VIP: retire the old claims (operations.md, \"After pg_upgrade\")",
                ours.map_or_else(|| "unknown".to_owned(), |o| o.to_string())
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
    PgUnknownHoldStarted {
        hold_ms: u64,
    },
    PgUnknownHoldEnded {
        released: bool,
    },
    StaleIncidentStarted {
        holder: String,
    },
    StaleIncidentEnded,
    /// Fenced no more: this node's timeline passed the claim that fenced it.
    FenceLifted {
        by: Claim,
    },
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
