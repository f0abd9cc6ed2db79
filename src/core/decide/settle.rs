//! Fold what the steps did into memory, after acting.

use std::time::Duration;

use super::absorb::note_cloud_failure;
use super::{Memory, Policy, Settled};
use crate::core::observation::{FailureKind, Tick};
use crate::core::plan::Step;

/// The outcome of carrying out one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub step: Step,
    pub error: Option<String>,
    /// A failure after which the step may still have been carried out: no answer came
    /// (a timeout, a lost connection) or the service failed on its side. `settle`
    /// counts such a claim or assign as made for whatever makes this node wait or look
    /// again, and never as a success.
    pub maybe_done: bool,
    /// What the failure means (its backoff): transient unless the adapter said more.
    pub kind: FailureKind,
}

impl StepOutcome {
    /// The step was carried out.
    pub fn done(step: Step) -> Self {
        StepOutcome {
            step,
            error: None,
            maybe_done: false,
            kind: FailureKind::Transient,
        }
    }

    /// The step failed; `maybe_done` when it may have been carried out all the same.
    pub fn failed(step: Step, error: impl Into<String>, maybe_done: bool) -> Self {
        StepOutcome {
            step,
            error: Some(error.into()),
            maybe_done,
            kind: FailureKind::Transient,
        }
    }

    /// This failure, of `kind`.
    #[must_use]
    pub fn of_kind(self, kind: FailureKind) -> Self {
        StepOutcome { kind, ..self }
    }
}

/// A claim or assign that was (or may have been) carried out: remember it for every
/// wait it makes.
fn remember_made(next: &mut Memory, step: &Step, now: Tick, timeline: Option<u32>) {
    match step {
        Step::WriteClaim(c) => next.cloud.claimed_at = Some(*c),
        Step::AssignCloud => {
            next.cloud.took_at = Some(now);
            next.cloud.took_timeline = timeline;
            next.cloud.held_max = next.cloud.held_max.max(timeline);
            next.cloud.left_primary = false;
            next.cloud.reverify = 0;
            next.cloud.other_since = None;
        }
        _ => {}
    }
}

/// The write-ahead intent of a plan: memory as if its claim and assign were carried
/// out (as an unanswered one counts). The loop journals it before the EC2 steps run,
/// so a daemon killed in the middle of a takeover starts again knowing it may have
/// taken the VIP.
pub fn intend(mem: &Memory, steps: &[Step], now: Tick, timeline: Option<u32>) -> Memory {
    let mut next = mem.clone();
    for s in steps {
        remember_made(&mut next, s, now, timeline);
    }
    next
}

/// After a failed prune of old marks (a policy without DeleteTags, throttling), the
/// holder tries again no sooner than this: it is housekeeping, never urgent.
pub const PRUNE_RETRY: Duration = Duration::from_secs(3600);

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
    if outcomes
        .iter()
        .any(|o| matches!(o.step, Step::PruneMarks(_)) && o.error.is_some())
    {
        next.cloud.prune_after = Some(now + PRUNE_RETRY);
    }
    // A claim or an assign that EC2 accepted counts even when a later step failed (a
    // verify whose read lags): remember the claim's timeline, and start the re-verify
    // schedule (1, 2, 4 … s, reading the marks) from the assign. One that timed out
    // may have gone through, and counts the same: the claim makes a holder that took
    // the VIP from us wait the bound, the assign makes "nobody" and the old holder,
    // read within the bound after it, wait too (they may be reads from before it).
    for o in outcomes
        .iter()
        .filter(|o| o.error.is_none() || o.maybe_done)
    {
        remember_made(&mut next, &o.step, now, timeline);
    }
    let is_cloud = |s: &Step| {
        matches!(
            s,
            Step::WriteClaim(_) | Step::AssignCloud | Step::VerifyCloud | Step::ReleaseCloud
        )
    };
    let takeover = |s: &Step| {
        matches!(
            s,
            Step::WriteClaim(_) | Step::AssignCloud | Step::VerifyCloud
        )
    };
    if let Some(failed) = outcomes
        .iter()
        .find(|o| is_cloud(&o.step) && o.error.is_some())
    {
        // A failing takeover backs off by its cause and keeps backing off through the
        // good describes between its tries.
        next.cloud.settled = None;
        next.cloud.failing_takeover = takeover(&failed.step);
        let msg = failed.error.clone().unwrap_or_default();
        let pending = takeover(&failed.step);
        note_cloud_failure(
            &mut next.cloud,
            &msg,
            failed.kind,
            pending,
            now,
            policy,
            jitter,
        );
        return next;
    }
    if outcomes.iter().any(|o| takeover(&o.step)) {
        next.cloud.failures = 0;
        next.cloud.failing_takeover = false;
        next.cloud.last_error = None;
    }
    let Some(tl) = timeline else {
        return next;
    };
    if outcomes.iter().any(|o| o.step == Step::VerifyCloud) {
        // A verified takeover: re-check after 1, 2, 4 … s (a wrong move that lagging
        // reads allowed shows within seconds), reading the marks meanwhile.
        next.cloud.me_at = Some(now);
        next.cloud.checked_at = Some(now);
        next.cloud.settled = Some((tl, Settled::Me));
        next.cloud.held_at = Some(tl);
        next.cloud.held_max = next.cloud.held_max.max(Some(tl));
        next.cloud.left_primary = false;
    } else if outcomes.iter().any(|o| o.step == Step::ReleaseCloud) {
        next.cloud.held_at = None;
        next.cloud.me_at = None;
    } else if outcomes
        .iter()
        .any(|o| matches!(o.step, Step::WriteClaim(_)))
    {
        next.cloud.settled = Some((tl, Settled::Me));
    }
    next
}
