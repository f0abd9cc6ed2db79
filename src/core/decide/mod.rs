//! THE decision: a pure function from what one pass saw (plus what earlier passes
//! remember) to the steps that make "the VIP lives where the primary is" true.
//!
//! No async, no I/O, no clock reads, no logging: time comes in as `Observation::now`
//! and randomness as `jitter`. docs/decision-table.md is the human-readable form of
//! this file and `tests.rs` checks it row by row.

mod absorb;
mod after;
mod cloud_rules;
mod eligibility;
mod local_rules;
mod memory;
mod pacing;
mod policy;
mod settle;

pub use eligibility::{Eligibility, eligibility};
pub use memory::{CloudMemory, Fenced, Memory, Settled};
pub use pacing::{
    FOLLOW_INTERVAL, PROMOTION_FOLLOW, SETTLING_LOOK, UNKNOWN_LOOK, UNKNOWN_WATCH, cloud_due,
    holder_to_ask, marks_due,
};
pub use policy::{CloudPolicy, Policy};
pub use settle::{PRUNE_RETRY, StepOutcome, intend, settle};

use absorb::absorb_observation;
use after::{
    end_pg_hold, follow_promotion, forget_unwatched_holder, lift_fence, start_stale_incident,
};
use cloud_rules::{eligible_with_cloud, resolve_careful};
use local_rules::{eligible_kernel_only, not_eligible, pg_unknown};

use crate::core::observation::Observation;
use crate::core::plan::Plan;

/// Decide one pass. Returns the plan and the memory for the next pass.
///
/// Absorb the cloud answer, note a promotion to follow and a fence that lifts, let
/// the one rule for this eligibility (and mode) decide, then the after-steps.
pub fn decide(obs: &Observation, mem: &Memory, policy: &Policy, jitter: u32) -> (Plan, Memory) {
    let elig = eligibility(&obs.pg);
    // A careful start is settled by the marks before this pass's answer is absorbed:
    // the wait for a holder must not count from a start-up "assign" that never was.
    let mut mem = mem.clone();
    if let Eligibility::Eligible { timeline } = elig
        && policy.cloud.is_some()
    {
        resolve_careful(obs, &mut mem, policy.node_id, timeline);
    }
    let mem = &mem;
    let mut next = mem.clone();
    let mut events = Vec::new();
    next.cloud = absorb_observation(&mem.cloud, obs, policy, jitter);
    let look_again_soon = follow_promotion(obs, mem, &mut next);
    let was_fenced = if lift_fence(&elig, &mut next, &mut events) {
        None
    } else {
        mem.fenced.clone()
    };

    let (mut steps, verdict) = match &elig {
        Eligibility::Unknown(reason) => {
            pg_unknown(obs, mem, &mut next, policy, reason, &mut events)
        }
        Eligibility::NotEligible(reason) => not_eligible(obs, reason, look_again_soon),
        Eligibility::Eligible { timeline } => match &policy.cloud {
            None => eligible_kernel_only(&obs.kernel, policy),
            Some(cp) => eligible_with_cloud(obs, &mut next, policy, cp, *timeline),
        },
    };

    end_pg_hold(&elig, &mut next, &mut events);
    forget_unwatched_holder(&elig, &mut next);
    start_stale_incident(was_fenced.as_ref(), &next, &mut steps, &mut events, policy);
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;

#[cfg(test)]
mod cluster_tests;

#[cfg(test)]
mod sequence_tests;

#[cfg(test)]
mod props_cluster;
