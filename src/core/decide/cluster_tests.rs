//! Table tests for the sequences that the cluster properties (props_cluster.rs:
//! two or three nodes against one EC2 whose reads lag by up to the consistency bound)
//! found. Each replays, for the one node that went wrong, what its lagged reads showed
//! it, pass by pass, with the cluster's truth in its comment; each failed before the
//! change it names.

use std::time::Duration;

use super::*;
use crate::core::observation::{ClaimTag, MarkView};
use crate::core::observation::{CloudView, KernelView};
use crate::core::plan::{Plan, Step, Verdict};
use crate::core::test_support::{claim_of, eligible_timeline, observation, primary, with_marks};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;
const PRESENT: KernelView = KernelView::Present { prefix_len: 32 };
const ABSENT: KernelView = KernelView::Absent;

/// The cluster properties' policy (bound 60 s, verify_interval 30 s) for `node`.
pub(super) fn policy(node: i32) -> Policy {
    Policy {
        node_id: node,
        ..super::tests::with_cloud()
    }
}

/// Node `node`'s ENI holds the VIP with its claim at `tl`, as the read showed it.
pub(super) fn held_by(node: i32, tl: u32) -> CloudView {
    CloudView::Other {
        eni: format!("eni-node{node}"),
        claim: ClaimTag::Valid(claim_of(tl, node)),
    }
}

pub(super) fn me(tl: u32, node: i32) -> CloudView {
    CloudView::Me {
        claim: ClaimTag::Valid(claim_of(tl, node)),
    }
}

fn read(list: &[(u32, i32)]) -> MarkView {
    MarkView::Read {
        marks: list.iter().map(|&(tl, node)| claim_of(tl, node)).collect(),
    }
}

/// One node replayed pass by pass: its policy and the memory its passes settled.
pub(super) struct Node {
    pub(super) policy: Policy,
    pub(super) mem: Memory,
    /// How a failed step fails: `false` a refusal or a failed verify (nothing done),
    /// `true` no answer (a timeout: it may have gone through).
    pub(super) fail_unanswered: bool,
}

impl Node {
    /// Node `node` from a fresh start.
    pub(super) fn new(node: i32) -> Self {
        Node {
            policy: policy(node),
            mem: Memory::default(),
            fail_unanswered: false,
        }
    }

    /// One pass as pass/reconcile.rs runs it, as a primary at `tl` whose lagged reads
    /// showed `cloud` and the `marks`: decide, carry out the steps (step `fail`, if
    /// any, fails; a failed acquire step stops the plan) and settle into `mem`.
    pub(super) fn pass(
        &mut self,
        (now, tl): (Duration, u32),
        kernel: KernelView,
        cloud: CloudView,
        marks: &[(u32, i32)],
        fail: Option<usize>,
    ) -> Plan {
        let o = with_marks(observation(now, primary(tl), kernel, cloud), read(marks));
        let p = &self.policy;
        let jitter = u32::MAX / 2;
        let (plan, next) = decide(&o, &self.mem, p, jitter);
        let mut outcomes = vec![];
        for (i, step) in plan.steps.iter().enumerate() {
            let failed = fail == Some(i);
            outcomes.push(match (failed, self.fail_unanswered) {
                (false, _) => StepOutcome::done(step.clone()),
                (true, false) => StepOutcome::failed(
                    step.clone(),
                    "verify: EC2 does not show the VIP here yet",
                    false,
                ),
                (true, true) => StepOutcome::failed(step.clone(), "timed out", true),
            });
            if failed && step.is_acquire() {
                break;
            }
        }
        let timeline = eligible_timeline(&eligibility(&o.pg));
        self.mem = settle(&next, &outcomes, o.now, p, jitter, timeline);
        plan
    }
}

pub(super) fn takes(plan: &Plan) -> bool {
    plan.steps
        .iter()
        .any(|s| matches!(s, Step::WriteClaim(_) | Step::AssignCloud))
}

pub(super) fn takeover(tl: u32, node: i32) -> Vec<Step> {
    vec![
        Step::WriteClaim(claim_of(tl, node)),
        Step::AssignCloud,
        Step::VerifyCloud,
    ]
}

/// Found with 3 nodes from a fresh start: at 1000.0 s n1 (timeline 1) sees nobody and
/// takes the VIP; at 1000.1 s n3, promoted to timeline 2, sees n1's claim (1) and takes
/// it at once; at 1001.0 s n1's first re-verify reads the holder as it was 60 s ago
/// (nobody: before n1's own assign) and n3's mark as it was 60 s ago (none). Before,
/// n1 claimed and assigned again: it took the VIP back from n3. Now a "nobody" read
/// less than the bound after our own assign may predate it: wait until the assign is
/// older than the bound (keeping the kernel address), then take what is really free.
#[test]
fn nobody_just_after_our_takeover_is_not_taken_again() {
    let mut n = Node::new(1);
    let p0 = n.pass((S(1000), 1), ABSENT, CloudView::Nobody, &[], None);
    assert_eq!(p0.steps[..3], takeover(1, 1)[..]);
    let elig = Eligibility::Eligible { timeline: 1 };
    assert!(cloud_due(&elig, &PRESENT, &n.mem, S(1001), &n.policy));
    let p1 = n.pass((S(1001), 1), PRESENT, CloudView::Nobody, &[(1, 1)], None);
    assert!(!takes(&p1), "{p1:?}");
    assert!(p1.steps.is_empty(), "keeps the kernel address: {p1:?}");
    assert_eq!(
        p1.verdict,
        Verdict::Ec2Settling {
            holder: "nobody".into(),
            remaining_ms: 59_000
        }
    );
    // Looked at again while waiting, still without taking.
    let p2 = n.pass((S(1030), 1), PRESENT, CloudView::Nobody, &[(1, 1)], None);
    assert!(!takes(&p2), "{p2:?}");
    // The bound after our assign, a "nobody" is news: the VIP is free, take it.
    let p3 = n.pass((S(1060), 1), PRESENT, CloudView::Nobody, &[(1, 1)], None);
    assert_eq!(p3.steps, takeover(1, 1), "{p3:?}");
}

/// Found with 2 nodes from a fresh start: at 1000 s n1 (timeline 1) takes the VIP, but
/// its verify reads EC2 60 s late and fails; n2, promoted to timeline 2, takes it from
/// n1 at once; at 1001 s n1 sees nobody (a read from before its own assign). Before,
/// only a verified takeover counted, so n1 had no record of its assign and took the
/// VIP back from n2. Now an assign EC2 accepted counts, verified or not (and starts the
/// re-verify schedule, reading the marks).
#[test]
fn an_unverified_assign_counts_as_our_takeover() {
    let mut n = Node::new(1);
    let p0 = n.pass((S(1000), 1), ABSENT, CloudView::Nobody, &[], Some(2));
    assert_eq!(p0.steps[..3], takeover(1, 1)[..]);
    assert_eq!(n.mem.cloud.took_at, Some(S(1000)));
    assert_eq!(n.mem.cloud.reverify, 0);
    assert_eq!(n.mem.cloud.claimed_at, Some(claim_of(1, 1)));
    assert_eq!(n.mem.cloud.held_at, None, "not confirmed");
    let p1 = n.pass((S(1001), 1), ABSENT, CloudView::Nobody, &[(1, 1)], None);
    assert!(!takes(&p1), "{p1:?}");
    assert_eq!(p1.verdict.kind(), "ec2-settling");
}

/// The same with the assign itself unanswered (a timeout after EC2 carried it out; the
/// cluster properties' `fail#1(timeout, applied)`): n1 cannot tell that it took the
/// VIP, n2 takes it from n1, and n1's next read shows nobody, from before its own
/// assign. Before, a failed assign left no record and n1 took the VIP back from n2.
/// Now an assign without an answer counts as made for every wait: n1 waits the bound
/// from it, then takes what is really free.
#[test]
fn an_unanswered_assign_counts_as_our_takeover() {
    let mut n = Node::new(1);
    n.fail_unanswered = true;
    let p0 = n.pass((S(1000), 1), ABSENT, CloudView::Nobody, &[], Some(1));
    assert_eq!(p0.steps[..2], takeover(1, 1)[..2]);
    assert_eq!(n.mem.cloud.took_at, Some(S(1000)));
    assert_eq!(n.mem.cloud.claimed_at, Some(claim_of(1, 1)));
    assert_eq!(n.mem.cloud.held_at, None, "not confirmed");
    assert_eq!(n.mem.cloud.failures, 1, "a failure all the same: backoff");
    let p1 = n.pass((S(1002), 1), ABSENT, CloudView::Nobody, &[(1, 1)], None);
    assert!(!takes(&p1), "{p1:?}");
    assert_eq!(p1.verdict.kind(), "ec2-settling");
    let p2 = n.pass((S(1060), 1), ABSENT, CloudView::Nobody, &[(1, 1)], None);
    assert_eq!(p2.steps[..3], takeover(1, 1)[..], "{p2:?}");
}

/// Found with 2 nodes, n1 holding at timeline 1 from the start: at 1000 s n2, promoted
/// to timeline 2, takes the VIP from n1, but its verify reads EC2 60 s late and fails;
/// at 1001 s n1, promoted to timeline 3, takes it from n2; then n2 reads n1's ENI tag
/// 60 s late (n1's old claim, 1) and the marks 60 s late (its own claim at 2 and n1's
/// at 3 not visible yet). Before, n2 had neither held the VIP at 2 (unverified) nor a
/// visible mark at 2, so it took at once from what looked like a lower claim: back
/// from n1. Now a claim we wrote at this timeline counts as having held here: wait
/// for the bound.
#[test]
fn a_claim_we_wrote_counts_as_holding_here() {
    let mut n = Node::new(2);
    let p0 = n.pass((S(1000), 2), ABSENT, held_by(1, 1), &[(1, 1)], Some(2));
    assert_eq!(p0.steps[..3], takeover(2, 2)[..]);
    let p1 = n.pass((S(1001), 2), ABSENT, held_by(1, 1), &[(1, 1)], None);
    assert!(!takes(&p1), "{p1:?}");
    assert_eq!(p1.verdict.kind(), "ec2-settling");
}

/// Found with 2 nodes, n1 holding at timeline 1 from the start: at 1000 s n2 (timeline
/// 2) takes the VIP from n1, verified; at 1001 s its first re-verify reads the holder
/// 60 s late: n1's ENI with n1's old claim (1), from before n2's own assign, and the
/// wait for the bound started there; n2's next look came only at 1120 s, just after n1
/// (promoted to timeline 3 meanwhile) had taken the VIP, and it read n1's tag 60 s
/// late (1 again). Before, n2 counted n1 as holding since 1001 s and took the VIP back
/// at once. Now the wait counts from a look made the bound after our own assign at the
/// earliest.
#[test]
fn the_wait_for_a_holder_starts_the_bound_after_our_own_assign() {
    let mut n = Node::new(2);
    let p0 = n.pass((S(1000), 2), ABSENT, held_by(1, 1), &[(1, 1)], None);
    assert_eq!(p0.steps[..3], takeover(2, 2)[..]);
    let both = [(1, 1), (2, 2)];
    let p1 = n.pass((S(1001), 2), PRESENT, held_by(1, 1), &both, None);
    assert!(!takes(&p1), "{p1:?}");
    assert_eq!(
        n.mem.cloud.other_since, None,
        "a read from before our assign"
    );
    let p2 = n.pass((S(1120), 2), PRESENT, held_by(1, 1), &both, None);
    assert!(!takes(&p2), "{p2:?}");
    assert_eq!(
        p2.verdict,
        Verdict::Ec2Settling {
            holder: "eni-node1".into(),
            remaining_ms: 60_000
        }
    );
    assert_eq!(n.mem.cloud.other_since, Some(("eni-node1".into(), S(1120))));
}

/// Found with 2 nodes, n1 holding at timeline 1 from the start: n2 (timeline 2) takes
/// the VIP at 1000 s; at 1012.524 s n2 is promoted to timeline 3 and, still the holder,
/// writes its claim at 3; n1, promoted to timeline 4, takes the VIP; n2's PostgreSQL
/// comes back at its old timeline 2 and n2 reads n1's tag and the marks 60 s late (n1's
/// old claim at 1, its own mark at 3 not visible yet). Before, n2 took the VIP back at
/// once. Now our own last claim, remembered, fences as our own mark does once visible.
#[test]
fn our_own_claim_above_our_timeline_fences() {
    let mut n = Node::new(2);
    let p0 = n.pass((S(1000), 2), ABSENT, held_by(1, 1), &[(1, 1)], None);
    assert_eq!(p0.steps[..3], takeover(2, 2)[..]);
    let at = S(1012) + MS(524);
    let p1 = n.pass((at, 3), PRESENT, me(2, 2), &[(1, 1), (2, 2)], None);
    assert_eq!(p1.steps, vec![Step::WriteClaim(claim_of(3, 2))]);
    let p2 = n.pass((at, 2), PRESENT, held_by(1, 1), &[(1, 1)], None);
    assert!(!takes(&p2), "{p2:?}");
    assert_eq!(
        p2.verdict,
        Verdict::StalePrimary {
            holder: "node 2 (this node's own claim)".into(),
            holder_timeline: 3,
            our_timeline: 2,
        }
    );
    assert!(p2.steps.contains(&Step::RemoveKernel), "{p2:?}");
    assert_eq!(n.mem.fenced.map(|f| f.by), Some(claim_of(3, 2)));
}
