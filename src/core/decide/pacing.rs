//! When to look: whether a pass asks EC2 (`cloud_due`) and reads the marks
//! (`marks_due`), and the paces that follow a promotion or a settling holder.

use std::time::Duration;

use super::{CloudMemory, CloudPolicy, Eligibility, Memory, Policy, Settled};
use crate::core::observation::{CloudView, HolderPg, KernelView, Observation, Tick};
use crate::core::plan::{Plan, Verdict};

/// After `repmgr standby promote` the server leaves recovery about one
/// `promote_check_interval` (1 s at least) before repmgr records it as primary; only
/// then is the node eligible. For this long after first seeing that state a pass looks
/// again after `FOLLOW_INTERVAL` rather than the configured interval, so the takeover
/// starts within a fraction of a second of repmgr's write, kick or no kick. Bounded:
/// a node left in that state (repmgr never catches up) goes back to the normal pace.
pub const PROMOTION_FOLLOW: Duration = Duration::from_secs(10);
/// The pace while following a promotion (the fastest interval the config allows).
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);
/// While settling (waiting out EC2's lag before a takeover), look this often.
pub const SETTLING_LOOK: Duration = Duration::from_secs(5);
/// A node whose PostgreSQL is unknown and that still has the kernel address looks at
/// EC2 at least this often for `UNKNOWN_WATCH` from the start of the unknown, so it
/// gives the address up within about a second of repmgr's failover moving the VIP.
pub const UNKNOWN_LOOK: Duration = Duration::from_secs(1);
/// How long the unknown node keeps looking at `UNKNOWN_LOOK`: long enough for repmgrd's
/// failover after a crash (its defaults: 6 reconnect attempts 10 s apart, then the
/// promotion) with room to spare. After that nobody is expected to take over soon and
/// the looks back off to `verify_interval` (at most 300 calls in one incident).
pub const UNKNOWN_WATCH: Duration = Duration::from_secs(300);

/// After a takeover a holder re-checks EC2 after 1, 2, 4 … s, up to `verify_interval`:
/// a wrong move (a takeover that lagging reads allowed) is seen within seconds.
fn reverify_period(cloud: &CloudMemory, cp: &CloudPolicy) -> Duration {
    Duration::from_secs(1u64 << cloud.reverify.min(20)).min(cp.verify_interval)
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
    let age = mem.cloud.checked_at.map(|at| now.saturating_sub(at));
    let younger = |limit: Duration| age.is_some_and(|a| a < limit);
    match elig {
        Eligibility::NotEligible(_) => false,
        // Only to learn whether someone else took over: every pass during the hold,
        // then once per UNKNOWN_LOOK while a failover may still come (UNKNOWN_WATCH),
        // then once per verify_interval.
        Eligibility::Unknown(_) => {
            if matches!(kernel, KernelView::Absent) {
                return false;
            }
            let Some(since) = mem.pg_unknown_since else {
                return true;
            };
            let unknown_for = now.saturating_sub(since);
            if unknown_for < policy.pg_unknown_hold {
                return true;
            }
            let pace = if unknown_for < UNKNOWN_WATCH {
                UNKNOWN_LOOK.min(cp.verify_interval)
            } else {
                cp.verify_interval
            };
            !younger(pace)
        }
        Eligibility::Eligible { timeline } => {
            let fresh = match &mem.cloud.settled {
                Some((tl, settled)) if tl == timeline => match settled {
                    Settled::Me => younger(reverify_period(&mem.cloud, cp)),
                    Settled::Stale { .. } | Settled::Foreign { .. } => younger(cp.verify_interval),
                    Settled::Settling { until, .. } => {
                        now < *until && younger(SETTLING_LOOK.min(cp.verify_interval))
                    }
                },
                _ => false,
            };
            !fresh
        }
    }
}

/// Should a look at EC2 also read the subnet's marks (DescribeTags)? On every look
/// an eligible node makes, the settled holder's included: a holder reads the fence on
/// each verify (one call per `verify_interval`, not per pass), so a newer primary's
/// mark makes it hand the VIP back even when that primary's assign is refused.
pub fn marks_due(elig: &Eligibility, _mem: &Memory, _now: Tick, policy: &Policy) -> bool {
    policy.cloud.is_some() && matches!(elig, Eligibility::Eligible { .. })
}

/// Should this pass ask the PostgreSQL behind the holder's ENI what it is, and decide
/// again with the answer? Only when the plan waits out the bound on a holder EC2 shows
/// this pass (issue 18, sequence 10): a provable standby spares the wait, and the
/// normal failover (the old primary's lower claim, taken at once) never waits on a
/// connection to a server that may be gone. Returns that holder's ENI.
pub fn holder_to_ask<'a>(obs: &'a Observation, plan: &Plan) -> Option<&'a str> {
    let CloudView::Other { eni, .. } = &obs.cloud else {
        return None;
    };
    let waits_on_it = matches!(&plan.verdict, Verdict::Ec2Settling { holder, .. } if holder == eni);
    (waits_on_it && obs.holder_pg == HolderPg::NotAsked).then_some(eni.as_str())
}
