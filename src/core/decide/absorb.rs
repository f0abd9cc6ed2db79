//! Fold this pass's cloud answer into memory, before the rules run.

use std::time::Duration;

use super::{CloudMemory, Policy};
use crate::core::observation::{CloudView, MarkView, Observation, Tick};

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
            match answered {
                CloudView::Me { .. } => {
                    next.me_at = Some(now);
                    next.other_since = None;
                    next.reverify = next.reverify.saturating_add(1);
                }
                CloudView::Other { eni, .. } => {
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
            if let MarkView::Unknown { reason, .. } = &obs.marks
                && !matches!(answered, CloudView::Me { .. })
            {
                note_cloud_failure(&mut next, reason, now, policy, jitter);
            }
        }
    }
    next
}

pub(super) fn note_cloud_failure(
    mem: &mut CloudMemory,
    error: &str,
    now: Tick,
    policy: &Policy,
    jitter: u32,
) {
    mem.failures = mem.failures.saturating_add(1);
    let backoff = policy.cloud.as_ref().map(|c| c.backoff).unwrap_or_default();
    mem.retry_at = Some(now + backoff.delay(mem.failures, jitter));
    mem.last_error = Some(error.to_owned());
}
