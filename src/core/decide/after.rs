//! The after-steps of `decide()`: what every pass does around the rule that decided
//! it (follow a promotion, lift a fence, end the pg-unknown hold, forget a holder not
//! watched, start a stale-primary incident once).

use super::eligibility::promotion_pending;
use super::{Eligibility, Fenced, Memory, PROMOTION_FOLLOW, Policy};
use crate::core::observation::Observation;
use crate::core::plan::{Event, Step};

/// Remember when this node was first seen out of recovery with repmgr still saying
/// standby; within `PROMOTION_FOLLOW` of that, look again soon (the plan's
/// `look_again_soon`).
pub(super) fn follow_promotion(obs: &Observation, mem: &Memory, next: &mut Memory) -> bool {
    next.promotion_seen_at = if promotion_pending(&obs.pg) {
        Some(mem.promotion_seen_at.unwrap_or(obs.now))
    } else {
        None
    };
    next.promotion_seen_at
        .is_some_and(|since| obs.now.saturating_sub(since) < PROMOTION_FOLLOW)
}

/// A fence lifts when this node's timeline passes the claim that fenced it. The
/// looks made while fenced were for an older timeline: a wait for a holder starts
/// again from this pass (before the rule reads it).
pub(super) fn lift_fence(elig: &Eligibility, next: &mut Memory, events: &mut Vec<Event>) -> bool {
    if let (Eligibility::Eligible { timeline }, Some(f)) = (elig, &next.fenced)
        && *timeline > f.by.timeline
    {
        events.push(Event::FenceLifted { by: f.by });
        next.fenced = None;
        next.cloud.other_since = None;
        return true;
    }
    false
}

/// PostgreSQL known again: the pg-unknown hold is over.
pub(super) fn end_pg_hold(elig: &Eligibility, next: &mut Memory, events: &mut Vec<Event>) {
    if !matches!(elig, Eligibility::Unknown(_)) && next.pg_unknown_since.take().is_some() {
        if !next.pg_hold_released {
            events.push(Event::PgUnknownHoldEnded { released: false });
        }
        next.pg_hold_released = false;
    }
}

/// The wait for another holder (`other_since`) counts only looks this node made while
/// eligible: a pass that is not eligible (a standby stops looking, an unknown
/// PostgreSQL looks only to give its address up) starts the count again. A holder seen
/// long ago, and not watched since, may have lost the VIP and taken it again under a
/// claim not yet visible. (A fence that lifts starts it again too: `lift_fence`.)
pub(super) fn forget_unwatched_holder(elig: &Eligibility, next: &mut Memory) {
    if !matches!(elig, Eligibility::Eligible { .. }) {
        next.cloud.other_since = None;
    }
    // A known standby (or otherwise not eligible) holds nothing: a later promotion
    // did not hold the VIP "in place" at an older timeline (an unknown PostgreSQL
    // keeps what it held; what it held at exactly one timeline is never forgotten).
    if matches!(elig, Eligibility::NotEligible(_)) {
        next.cloud.left_primary = true;
    }
}

/// A new stale-primary incident (this pass fenced a node that was not fenced, or
/// whose old fence just lifted): log once, run the fence command once.
pub(super) fn start_stale_incident(
    was: Option<&Fenced>,
    next: &Memory,
    steps: &mut Vec<Step>,
    events: &mut Vec<Event>,
    policy: &Policy,
) {
    let Some(now) = &next.fenced else {
        return;
    };
    if was == Some(now) {
        return;
    }
    events.push(Event::StaleIncidentStarted {
        holder: now.holder.clone(),
    });
    if policy.cloud.as_ref().is_some_and(|c| c.fence_configured) {
        steps.push(Step::Fence {
            holder: now.holder.clone(),
        });
    }
}
