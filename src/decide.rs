//! THE decision: a pure function from what one pass saw (plus what earlier passes
//! remember) to the steps that make "the VIP lives where the primary is" true.
//!
//! No async, no I/O, no clock reads, no logging: time comes in as `Observation::now`
//! and randomness as `jitter`. docs/decision-table.md is the human-readable form of
//! this file and `decide_tests.rs` checks it row by row.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::claim::Claim;
use crate::observation::{
    CloudView, KernelView, Observation, PgRole, PgView, RepmgrSays, Tick, code_needs_operator,
};
use crate::plan::{Event, Plan, Step, Verdict};

/// The configured rules `decide()` applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub node_id: i32,
    pub prefix_len: u8,
    /// How long to keep the kernel address while PostgreSQL is unknown (0 = release at once).
    pub pg_unknown_hold: Duration,
    /// `None` = kernel-only mode.
    pub cloud: Option<CloudPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudPolicy {
    /// A converged node re-checks EC2 this often.
    pub verify_interval: Duration,
    /// How long a "me" confirmation keeps an existing kernel address while EC2 is unknown.
    pub cloud_unknown_hold: Duration,
    pub backoff: Backoff,
    pub fence_configured: bool,
}

/// Whether this node may hold the VIP, from PostgreSQL and repmgr alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    Eligible { timeline: u32 },
    NotEligible(String),
    Unknown(String),
}

/// Eligible = reachable AND not in recovery AND repmgr.nodes names this node an
/// active primary (and no other active primary).
pub fn eligibility(pg: &PgView) -> Eligibility {
    match pg {
        PgView::Unknown(reason) => Eligibility::Unknown(reason.clone()),
        PgView::Known {
            role: PgRole::Standby,
            ..
        } => Eligibility::NotEligible("in recovery".into()),
        PgView::Known {
            role: PgRole::Primary { timeline },
            repmgr,
        } => match repmgr {
            RepmgrSays::SelfPrimary => Eligibility::Eligible {
                timeline: *timeline,
            },
            RepmgrSays::SelfNotPrimary => {
                Eligibility::NotEligible("not in recovery but repmgr says standby".into())
            }
            RepmgrSays::SelfInactive => {
                Eligibility::NotEligible("repmgr marks this primary inactive".into())
            }
            RepmgrSays::OtherPrimary(id) => {
                Eligibility::NotEligible(format!("repmgr names node {id} an active primary too"))
            }
            RepmgrSays::NotRegistered => {
                Eligibility::NotEligible("this node is not registered in repmgr.nodes".into())
            }
            RepmgrSays::NoMetadata => {
                Eligibility::NotEligible("repmgr.nodes does not exist".into())
            }
        },
    }
}

/// A conclusive cloud answer, remembered so a converged node need not ask again
/// until `verify_interval` has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Me,
    Stale {
        holder: String,
        holder_timeline: u32,
    },
}

/// What the cloud side remembers between passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudMemory {
    /// Last time EC2 confirmed that our ENI holds the VIP.
    pub me_at: Option<Tick>,
    /// Last time EC2 answered at all.
    pub checked_at: Option<Tick>,
    /// The last conclusive answer and the timeline it was for.
    pub settled: Option<(u32, Settled)>,
    /// Consecutive failed cloud calls, and when the next one is allowed.
    pub failures: u32,
    pub retry_at: Option<Tick>,
    pub last_error: Option<String>,
}

/// What `decide()` carries from one pass to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// When PostgreSQL became unknown (the hold runs from here).
    pub pg_unknown_since: Option<Tick>,
    /// The hold ran out (or was cut short) and the address was released.
    pub pg_hold_released: bool,
    /// An ongoing stale-primary incident: the holder we yield to (fence ran once).
    pub stale_holder: Option<String>,
    /// When this node was first seen out of recovery while repmgr still named it a
    /// standby: a promotion whose metadata has not caught up yet.
    pub promotion_seen_at: Option<Tick>,
    pub cloud: CloudMemory,
}

/// After `repmgr standby promote` the server leaves recovery about one
/// `promote_check_interval` (1 s at least) before repmgr records it as primary; only
/// then is the node eligible. For this long after first seeing that state a pass looks
/// again after `FOLLOW_INTERVAL` rather than the configured interval, so the takeover
/// starts within a fraction of a second of repmgr's write, kick or no kick. Bounded:
/// a node left in that state (repmgr never catches up) goes back to the normal pace.
pub const PROMOTION_FOLLOW: Duration = Duration::from_secs(10);
/// The pace while following a promotion (the fastest interval the config allows).
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// Out of recovery while this node's `repmgr.nodes` still calls it a standby.
fn promotion_pending(pg: &PgView) -> bool {
    matches!(
        pg,
        PgView::Known {
            role: PgRole::Primary { .. },
            repmgr: RepmgrSays::SelfNotPrimary,
        }
    )
}

/// Should this pass call DescribeNetworkInterfaces? Keeps a standby at zero calls and
/// a converged primary at one call per `verify_interval`.
pub fn cloud_due(
    elig: &Eligibility,
    kernel: &KernelView,
    mem: &Memory,
    now: Tick,
    policy: &Policy,
) -> bool {
    let Some(cp) = &policy.cloud else {
        return false;
    };
    if mem.cloud.retry_at.is_some_and(|at| now < at) {
        return false;
    }
    match elig {
        Eligibility::NotEligible(_) => false,
        // Only to learn whether someone else took over, so the hold can end early.
        Eligibility::Unknown(_) => !matches!(kernel, KernelView::Absent),
        Eligibility::Eligible { timeline } => {
            let settled_here = matches!(&mem.cloud.settled, Some((tl, _)) if tl == timeline);
            let fresh = mem
                .cloud
                .checked_at
                .is_some_and(|at| now.saturating_sub(at) < cp.verify_interval);
            !(settled_here && fresh)
        }
    }
}

/// Decide one pass. Returns the plan and the memory for the next pass.
pub fn decide(obs: &Observation, mem: &Memory, policy: &Policy, jitter: u32) -> (Plan, Memory) {
    let mut next = mem.clone();
    let mut events = Vec::new();
    next.cloud = absorb_observation(&mem.cloud, &obs.cloud, obs.now, policy, jitter);
    let elig = eligibility(&obs.pg);

    let (steps, verdict) = match &elig {
        Eligibility::Unknown(reason) => {
            pg_unknown(obs, mem, &mut next, policy, reason, &mut events)
        }
        Eligibility::NotEligible(reason) => not_eligible(&obs.kernel, reason),
        Eligibility::Eligible { timeline } => match &policy.cloud {
            None => eligible_kernel_only(&obs.kernel, policy),
            Some(cp) => eligible_with_cloud(obs, &next.cloud, policy, cp, *timeline),
        },
    };

    if !matches!(elig, Eligibility::Unknown(_)) && next.pg_unknown_since.take().is_some() {
        if !next.pg_hold_released {
            events.push(Event::PgUnknownHoldEnded { released: false });
        }
        next.pg_hold_released = false;
    }
    match &verdict {
        Verdict::StalePrimary { holder, .. } if next.stale_holder.as_ref() != Some(holder) => {
            events.push(Event::StaleIncidentStarted {
                holder: holder.clone(),
            });
            next.stale_holder = Some(holder.clone());
        }
        Verdict::StalePrimary { .. } => {}
        _ if next.stale_holder.take().is_some() => events.push(Event::StaleIncidentEnded),
        _ => {}
    }
    if let (Eligibility::Eligible { timeline }, Some(_)) = (&elig, &policy.cloud) {
        match (&obs.cloud, &verdict) {
            (
                _,
                Verdict::StalePrimary {
                    holder,
                    holder_timeline,
                    ..
                },
            ) => {
                next.cloud.settled = Some((
                    *timeline,
                    Settled::Stale {
                        holder: holder.clone(),
                        holder_timeline: *holder_timeline,
                    },
                ));
            }
            (CloudView::Me { .. }, _)
                if !steps.iter().any(|s| matches!(s, Step::WriteClaim(_))) =>
            {
                next.cloud.settled = Some((*timeline, Settled::Me));
            }
            _ => {}
        }
    }
    next.promotion_seen_at = if promotion_pending(&obs.pg) {
        Some(mem.promotion_seen_at.unwrap_or(obs.now))
    } else {
        None
    };
    let look_again_soon = next
        .promotion_seen_at
        .is_some_and(|since| obs.now.saturating_sub(since) < PROMOTION_FOLLOW);
    let mut steps = steps;
    if let Verdict::StalePrimary { holder, .. } = &verdict {
        let new_incident = mem.stale_holder.as_ref() != Some(holder);
        if new_incident && policy.cloud.as_ref().is_some_and(|c| c.fence_configured) {
            steps.push(Step::Fence {
                holder: holder.clone(),
            });
        }
    }
    (
        Plan {
            steps,
            verdict,
            events,
            look_again_soon,
        },
        next,
    )
}

fn remove_unless_absent(kernel: &KernelView) -> Vec<Step> {
    match kernel {
        KernelView::Absent => vec![],
        _ => vec![Step::RemoveKernel],
    }
}

fn not_eligible(kernel: &KernelView, reason: &str) -> (Vec<Step>, Verdict) {
    let reason = reason.to_owned();
    match kernel {
        KernelView::Absent => (vec![], Verdict::Standby { reason }),
        _ => (vec![Step::RemoveKernel], Verdict::Releasing { reason }),
    }
}

fn pg_unknown(
    obs: &Observation,
    mem: &Memory,
    next: &mut Memory,
    policy: &Policy,
    reason: &str,
    events: &mut Vec<Event>,
) -> (Vec<Step>, Verdict) {
    let since = *next.pg_unknown_since.get_or_insert(obs.now);
    if mem.pg_unknown_since.is_none() {
        next.pg_hold_released = false;
        events.push(Event::PgUnknownHoldStarted {
            hold_ms: u64::try_from(policy.pg_unknown_hold.as_millis()).unwrap_or(u64::MAX),
        });
    }
    let expired = obs.now.saturating_sub(since) >= policy.pg_unknown_hold;
    let taken_elsewhere = matches!(obs.cloud, CloudView::Other { .. });
    let reason = reason.to_owned();
    if matches!(obs.kernel, KernelView::Absent) {
        return (vec![], Verdict::PgUnknown { reason });
    }
    if expired || taken_elsewhere {
        if !next.pg_hold_released {
            next.pg_hold_released = true;
            events.push(Event::PgUnknownHoldEnded { released: true });
        }
        return (vec![Step::RemoveKernel], Verdict::PgUnknown { reason });
    }
    (vec![], Verdict::PgUnknownHolding { reason })
}

fn eligible_kernel_only(kernel: &KernelView, policy: &Policy) -> (Vec<Step>, Verdict) {
    let add = Step::AddKernel {
        prefix_len: policy.prefix_len,
    };
    match kernel {
        KernelView::Present { prefix_len } if *prefix_len == policy.prefix_len => {
            (vec![], Verdict::Holding)
        }
        _ => (vec![add], Verdict::Acquiring),
    }
}

/// The claim-protocol rows: who holds the VIP at EC2 decides what we may do.
fn eligible_with_cloud(
    obs: &Observation,
    cloud_mem: &CloudMemory,
    policy: &Policy,
    cp: &CloudPolicy,
    timeline: u32,
) -> (Vec<Step>, Verdict) {
    let ours = Claim {
        timeline,
        node_id: policy.node_id,
    };
    let kernel_ok =
        matches!(obs.kernel, KernelView::Present { prefix_len } if prefix_len == policy.prefix_len);
    let add = Step::AddKernel {
        prefix_len: policy.prefix_len,
    };
    let takeover = || {
        let mut steps = vec![Step::WriteClaim(ours), Step::AssignCloud, Step::VerifyCloud];
        if !kernel_ok {
            steps.push(add.clone());
        }
        (steps, Verdict::Acquiring)
    };
    let holding = |claim_current: bool| {
        let mut steps = vec![];
        if !kernel_ok {
            steps.push(add.clone());
        }
        if !claim_current {
            steps.push(Step::WriteClaim(ours));
        }
        let verdict = if steps.is_empty() {
            Verdict::Holding
        } else {
            Verdict::Acquiring
        };
        (steps, verdict)
    };
    let stale = |holder: &str, holder_timeline: u32| {
        (
            remove_unless_absent(&obs.kernel),
            Verdict::StalePrimary {
                holder: holder.to_owned(),
                holder_timeline,
                our_timeline: timeline,
            },
        )
    };
    match &obs.cloud {
        CloudView::Disabled => eligible_kernel_only(&obs.kernel, policy),
        CloudView::Me { claim } => holding(claim.valid() == Some(ours)),
        CloudView::Nobody => takeover(),
        CloudView::Other { eni, claim } => match claim.valid() {
            Some(c) if c.timeline >= timeline => stale(eni, c.timeline),
            _ => takeover(),
        },
        CloudView::NotChecked => match &cloud_mem.settled {
            Some((tl, Settled::Me)) if *tl == timeline => holding(true),
            Some((
                tl,
                Settled::Stale {
                    holder,
                    holder_timeline,
                },
            )) if *tl == timeline => stale(holder, *holder_timeline),
            _ => {
                let why = cloud_mem
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "not yet confirmed".into());
                cloud_unknown(obs, cloud_mem, cp, &format!("backing off: {why}"), false)
            }
        },
        CloudView::Unknown { reason, code } => {
            let needs_operator = code.as_deref().is_some_and(code_needs_operator);
            cloud_unknown(obs, cloud_mem, cp, reason, needs_operator)
        }
    }
}

/// EC2 cannot be asked: never add a kernel address without a confirmation; keep an
/// existing one while the last "me" is younger than `cloud_unknown_hold`.
fn cloud_unknown(
    obs: &Observation,
    cloud_mem: &CloudMemory,
    cp: &CloudPolicy,
    reason: &str,
    needs_operator: bool,
) -> (Vec<Step>, Verdict) {
    let fresh_me = cloud_mem
        .me_at
        .is_some_and(|at| obs.now.saturating_sub(at) < cp.cloud_unknown_hold);
    let reason = reason.to_owned();
    match (&obs.kernel, fresh_me) {
        (KernelView::Absent, _) => (
            vec![],
            Verdict::CloudUnknown {
                reason,
                keeping: false,
                needs_operator,
            },
        ),
        (_, true) => (
            vec![],
            Verdict::CloudUnknown {
                reason,
                keeping: true,
                needs_operator,
            },
        ),
        (_, false) => (
            vec![Step::RemoveKernel],
            Verdict::CloudUnknown {
                reason,
                keeping: false,
                needs_operator,
            },
        ),
    }
}

/// Fold this pass's cloud answer into memory (backoff on failure).
fn absorb_observation(
    mem: &CloudMemory,
    view: &CloudView,
    now: Tick,
    policy: &Policy,
    jitter: u32,
) -> CloudMemory {
    let mut next = mem.clone();
    match view {
        CloudView::Disabled | CloudView::NotChecked => {}
        CloudView::Unknown { reason, .. } => {
            next.settled = None;
            note_cloud_failure(&mut next, reason, now, policy, jitter);
        }
        answered => {
            next.checked_at = Some(now);
            next.failures = 0;
            next.retry_at = None;
            next.last_error = None;
            next.settled = None;
            if let CloudView::Me { .. } = answered {
                next.me_at = Some(now);
            }
        }
    }
    next
}

fn note_cloud_failure(mem: &mut CloudMemory, error: &str, now: Tick, policy: &Policy, jitter: u32) {
    mem.failures = mem.failures.saturating_add(1);
    let backoff = policy.cloud.as_ref().map(|c| c.backoff).unwrap_or_default();
    mem.retry_at = Some(now + backoff.delay(mem.failures, jitter));
    mem.last_error = Some(error.to_owned());
}

/// The outcome of carrying out one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub step: Step,
    pub error: Option<String>,
}

/// Fold the act results into memory: a failed cloud step backs off; a verified
/// takeover or a refreshed claim settles the cloud state for `timeline`.
pub fn settle(
    mem: &Memory,
    outcomes: &[StepOutcome],
    now: Tick,
    policy: &Policy,
    jitter: u32,
    timeline: Option<u32>,
) -> Memory {
    let mut next = mem.clone();
    let is_cloud = |s: &Step| {
        matches!(
            s,
            Step::WriteClaim(_) | Step::AssignCloud | Step::VerifyCloud
        )
    };
    if let Some(failed) = outcomes
        .iter()
        .find(|o| is_cloud(&o.step) && o.error.is_some())
    {
        next.cloud.settled = None;
        let msg = failed.error.clone().unwrap_or_default();
        note_cloud_failure(&mut next.cloud, &msg, now, policy, jitter);
        return next;
    }
    let Some(tl) = timeline else {
        return next;
    };
    if outcomes.iter().any(|o| o.step == Step::VerifyCloud) {
        next.cloud.me_at = Some(now);
        next.cloud.checked_at = Some(now);
        next.cloud.settled = Some((tl, Settled::Me));
    } else if outcomes
        .iter()
        .any(|o| matches!(o.step, Step::WriteClaim(_)))
    {
        next.cloud.settled = Some((tl, Settled::Me));
    }
    next
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "decide_props.rs"]
mod props;
