//! Fold this pass's cloud answer into memory, before the rules run.

use std::time::Duration;

use super::{CloudMemory, Policy};
use crate::core::backoff::delay_for;
use crate::core::observation::{CloudView, FailureKind, MarkView, Observation, Tick};

/// Fold this pass's cloud answer into memory (backoff on failure).
pub(super) fn absorb_observation(
    mem: &CloudMemory,
    obs: &Observation,
    policy: &Policy,
    jitter: u32,
) -> CloudMemory {
    let now = obs.now;
    let mut next = mem.clone();
    match &obs.cloud {
        CloudView::Disabled | CloudView::NotChecked => {}
        CloudView::Unknown { reason, kind, .. } => {
            next.settled = None;
            next.failing_takeover = false;
            let pending = mem.me_at.is_none_or(|_| mem.me_at != mem.checked_at);
            note_cloud_failure(&mut next, reason, *kind, pending, now, policy, jitter);
        }
        answered => {
            next.checked_at = Some(now);
            // A good describe ends a run of failed describes; a takeover that keeps
            // failing keeps its backoff (settle ends it when a takeover step succeeds).
            if !mem.failing_takeover {
                next.failures = 0;
                next.last_error = None;
            }
            next.retry_at = None;
            next.settled = None;
            match answered {
                CloudView::Me { .. } => {
                    next.me_at = Some(now);
                    next.other_since = None;
                    next.reverify = next.reverify.saturating_add(1);
                }
                CloudView::Other { eni, .. } => {
                    next.other_seen_at = Some(now);
                    // The wait for a holder counts from a look made the bound after our
                    // own last assign at the earliest: a read before then may show the
                    // holder as it was before we took the VIP from it.
                    let bound = policy
                        .cloud
                        .as_ref()
                        .map_or(Duration::ZERO, |c| c.consistency_bound);
                    if mem.took_at.is_some_and(|took| now < took + bound) {
                        next.other_since = None;
                    } else if !matches!(&next.other_since, Some((held_by, _)) if held_by == eni) {
                        next.other_since = Some((eni.clone(), now));
                    }
                }
                _ => next.other_since = None,
            }
            if let MarkView::Unknown { reason, kind, .. } = &obs.marks
                && !matches!(answered, CloudView::Me { .. })
            {
                next.failing_takeover = false;
                note_cloud_failure(&mut next, reason, *kind, true, now, policy, jitter);
            }
        }
    }
    next
}

/// A failed cloud call: count it and wait before the next one, by its cause
/// (`backoff::delay_for`). `pending`: this node wants the VIP and does not hold it
/// (a takeover is pending), so an outage is retried closely.
pub(super) fn note_cloud_failure(
    mem: &mut CloudMemory,
    error: &str,
    kind: FailureKind,
    pending: bool,
    now: Tick,
    policy: &Policy,
    jitter: u32,
) {
    mem.failures = mem.failures.saturating_add(1);
    let delay = policy.cloud.as_ref().map_or(Duration::ZERO, |c| {
        delay_for(
            &c.backoff,
            kind,
            pending,
            c.verify_interval,
            mem.failures,
            jitter,
        )
    });
    mem.retry_at = Some(now + delay);
    mem.last_error = Some(error.to_owned());
}
