//! The rows that need no cloud: not eligible, PostgreSQL unknown, and eligible in
//! kernel-only mode.

use super::eligibility::promotion_pending;
use super::{Memory, Policy};
use crate::core::observation::{CloudView, KernelView, Observation, PgRole, PgView, RepmgrSays};
use crate::core::plan::{Event, Step, Verdict};

pub(super) fn remove_unless_absent(kernel: &KernelView) -> Vec<Step> {
    match kernel {
        KernelView::Absent => vec![],
        _ => vec![Step::RemoveKernel],
    }
}

/// Not eligible: the address goes. A writable PostgreSQL here is a split brain or
/// broken metadata, never an OK standby.
pub(super) fn not_eligible(
    obs: &Observation,
    reason: &str,
    recording: bool,
) -> (Vec<Step>, Verdict) {
    let reason = reason.to_owned();
    let steps = remove_unless_absent(&obs.kernel);
    let witness = matches!(
        obs.pg,
        PgView::Known {
            repmgr: RepmgrSays::SelfWitness,
            ..
        }
    );
    if witness {
        // repmgr's witness is writable by design: its own state, never a split brain.
        let verdict = if steps.is_empty() {
            Verdict::Witness
        } else {
            Verdict::Releasing { reason }
        };
        return (steps, verdict);
    }
    let writable = matches!(
        obs.pg,
        PgView::Known {
            role: PgRole::Primary { .. },
            ..
        }
    );
    let verdict = match (writable, steps.is_empty()) {
        (true, _) => Verdict::WritableNotEligible {
            reason,
            recording: recording && promotion_pending(&obs.pg),
        },
        (false, true) => Verdict::Standby { reason },
        (false, false) => Verdict::Releasing { reason },
    };
    (steps, verdict)
}

/// PostgreSQL unknown. Kernel-only: keep the address for `pg_unknown_hold`, then
/// release. EC2 mode: keep it for as long as EC2 shows no other holder (the VPC
/// delivers by the ENI mapping, so releasing protects nobody), CRITICAL after the hold.
pub(super) fn pg_unknown(
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
    let taken_elsewhere = moved_elsewhere(obs, mem, policy);
    let ec2_mode = policy.cloud.is_some();
    let reason = reason.to_owned();
    if matches!(obs.kernel, KernelView::Absent) {
        return (vec![], Verdict::PgUnknown { reason });
    }
    if taken_elsewhere || (expired && !ec2_mode) {
        if !next.pg_hold_released {
            next.pg_hold_released = true;
            events.push(Event::PgUnknownHoldEnded { released: true });
        }
        return (vec![Step::RemoveKernel], Verdict::PgUnknown { reason });
    }
    (
        vec![],
        Verdict::PgUnknownHolding {
            reason,
            past_hold: expired,
        },
    )
}

/// Is this read evidence that the VIP belongs elsewhere, for a node whose PostgreSQL
/// cannot be asked? Another holder whose claim is above any timeline we held at (a
/// newer primary took it), or any other holder once our own assign is older than the
/// bound; within the bound a holder with a lower claim may be a read from before our
/// own takeover (issue 18, sequence 2).
pub(super) fn moved_elsewhere(obs: &Observation, mem: &Memory, policy: &Policy) -> bool {
    let CloudView::Other { claim, .. } = &obs.cloud else {
        return false;
    };
    let newer = claim
        .valid()
        .is_some_and(|c| mem.cloud.held_max.is_none_or(|h| c.timeline > h));
    let own_assign_recent = policy.cloud.as_ref().is_some_and(|c| {
        mem.cloud
            .took_at
            .is_some_and(|took| obs.now < took + c.consistency_bound)
    });
    newer || !own_assign_recent
}

pub(super) fn eligible_kernel_only(kernel: &KernelView, policy: &Policy) -> (Vec<Step>, Verdict) {
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
