//! Table tests (one per row of docs/decision-table.md) and an exhaustive sweep over
//! every combination of the input enums that checks the safety invariants.

use std::time::Duration;

use super::*;
use crate::core::claim::Claim;
use crate::core::observation::{ClaimTag, FailureKind, MarkView};
use crate::core::observation::{CloudView, KernelView, Observation, PgRole, PgView, RepmgrSays};
use crate::core::plan::{Event, Plan, Severity, Step, Verdict};
use crate::core::test_support::{
    claim_of, eligible_timeline, observation, primary, primary_saying, standby, with_marks,
};
pub(super) use crate::core::test_support::{kernel_only, with_cloud};

const S: fn(u64) -> Duration = Duration::from_secs;

const PRESENT: KernelView = KernelView::Present { prefix_len: 32 };

pub(super) fn claim(tl: u32, node: i32) -> ClaimTag {
    ClaimTag::Valid(claim_of(tl, node))
}

fn other(tag: ClaimTag) -> CloudView {
    CloudView::Other {
        eni: "eni-0other".into(),
        claim: tag,
    }
}

fn obs(now: u64, pg: PgView, kernel: KernelView, cloud: CloudView) -> Observation {
    observation(S(now), pg, kernel, cloud)
}

fn run(o: &Observation, mem: &Memory, policy: &Policy) -> (Plan, Memory) {
    decide(o, mem, policy, u32::MAX / 2)
}

/// `run` from a fresh memory.
fn fresh(o: &Observation, policy: &Policy) -> (Plan, Memory) {
    run(o, &Memory::default(), policy)
}

fn takeover(kernel_add: bool, tl: u32) -> Vec<Step> {
    let mut v = vec![
        Step::WriteClaim(claim_of(tl, 1)),
        Step::AssignCloud,
        Step::VerifyCloud,
    ];
    if kernel_add {
        v.push(Step::AddKernel { prefix_len: 32 });
    }
    v
}

// ---- kernel-only rows -------------------------------------------------------

#[test]
fn row_eligible_absent_adds() {
    let (p, _) = fresh(
        &obs(0, primary(1), KernelView::Absent, CloudView::Disabled),
        &kernel_only(),
    );
    assert_eq!(p.steps, vec![Step::AddKernel { prefix_len: 32 }]);
    assert_eq!(p.verdict, Verdict::Acquiring);
}

#[test]
fn row_eligible_present_holds() {
    let (p, _) = fresh(
        &obs(0, primary(1), PRESENT, CloudView::Disabled),
        &kernel_only(),
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.verdict, Verdict::Holding);
}

#[test]
fn row_eligible_wrong_prefix_readds() {
    let k = KernelView::Present { prefix_len: 24 };
    let (p, _) = fresh(&obs(0, primary(1), k, CloudView::Disabled), &kernel_only());
    assert_eq!(p.steps, vec![Step::AddKernel { prefix_len: 32 }]);
}

/// Row 2b: repmgr's witness runs a writable PostgreSQL with a `witness` row. It is
/// its own eligibility: never a VIP, never an EC2 look, and OK (never the CRITICAL of
/// a writable node repmgr does not make primary), in both modes.
#[test]
fn row_witness_is_ok_and_never_holds() {
    let witness = primary_saying(1, RepmgrSays::SelfWitness);
    for policy in [kernel_only(), with_cloud()] {
        let elig = eligibility(&witness);
        assert!(matches!(elig, Eligibility::NotEligible(_)), "{elig:?}");
        assert!(!cloud_due(
            &elig,
            &PRESENT,
            &Memory::default(),
            S(0),
            &policy
        ));
        let (p, mem) = fresh(
            &obs(
                0,
                witness.clone(),
                KernelView::Absent,
                CloudView::NotChecked,
            ),
            &policy,
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.verdict, Verdict::Witness);
        assert_eq!(p.verdict.severity(), Severity::Ok);
        assert!(!p.look_again_soon);
        // Long after: still OK (no promotion window that runs out).
        let (p, _) = run(
            &obs(
                60,
                witness.clone(),
                KernelView::Absent,
                CloudView::NotChecked,
            ),
            &mem,
            &policy,
        );
        assert_eq!(p.verdict, Verdict::Witness);
        // An address found on a witness goes.
        let (p, _) = fresh(
            &obs(0, witness.clone(), PRESENT, CloudView::NotChecked),
            &policy,
        );
        assert_eq!(p.steps, vec![Step::RemoveKernel]);
        assert_eq!(p.verdict.kind(), "releasing");
    }
}

#[test]
fn row_not_eligible_reasons_remove() {
    let cases = [
        (standby(), "in recovery"),
        (
            primary_saying(2, RepmgrSays::SelfNotPrimary),
            "repmgr says standby",
        ),
        (primary_saying(2, RepmgrSays::SelfInactive), "inactive"),
        (primary_saying(2, RepmgrSays::OtherPrimary(2)), "node 2"),
        (
            primary_saying(2, RepmgrSays::NotRegistered),
            "not registered",
        ),
        (primary_saying(2, RepmgrSays::NoMetadata), "does not exist"),
    ];
    for (pg, why) in cases {
        // A writable PostgreSQL that is not eligible is a split brain or broken
        // metadata: CRITICAL, never an OK standby (a promotion repmgr has not recorded
        // yet is WARNING for PROMOTION_FOLLOW, then CRITICAL too).
        let writable = !matches!(
            pg,
            PgView::Known {
                role: PgRole::Standby,
                ..
            }
        );
        for policy in [kernel_only(), with_cloud()] {
            let (p, _) = fresh(&obs(0, pg.clone(), PRESENT, CloudView::NotChecked), &policy);
            assert_eq!(p.steps, vec![Step::RemoveKernel], "{why}");
            if writable {
                assert!(
                    matches!(&p.verdict, Verdict::WritableNotEligible { reason, .. } if reason.contains(why)),
                    "{:?}",
                    p.verdict
                );
            } else {
                assert!(
                    matches!(&p.verdict, Verdict::Releasing { reason } if reason.contains(why)),
                    "{:?}",
                    p.verdict
                );
            }
            let (p, mem) = fresh(
                &obs(0, pg.clone(), KernelView::Absent, CloudView::NotChecked),
                &policy,
            );
            assert!(p.steps.is_empty());
            let pending = matches!(
                pg,
                PgView::Known {
                    repmgr: RepmgrSays::SelfNotPrimary,
                    ..
                }
            );
            let want = match (writable, pending) {
                (false, _) => Severity::Ok,
                (true, true) => Severity::Warning,
                (true, false) => Severity::Critical,
            };
            assert_eq!(p.verdict.severity(), want, "{why}: {:?}", p.verdict);
            // Past the promotion window, still writable and not eligible: CRITICAL.
            let (p, _) = run(
                &obs(11, pg.clone(), KernelView::Absent, CloudView::NotChecked),
                &mem,
                &policy,
            );
            let want = if writable {
                Severity::Critical
            } else {
                Severity::Ok
            };
            assert_eq!(p.verdict.severity(), want, "{why}: {:?}", p.verdict);
        }
    }
}

#[test]
fn row_pg_unknown_holds_then_releases_and_logs_once() {
    let policy = kernel_only();
    let unknown = PgView::Unknown("connection refused".into());
    let (p, m) = fresh(
        &obs(100, unknown.clone(), PRESENT, CloudView::Disabled),
        &policy,
    );
    assert!(p.steps.is_empty());
    assert!(matches!(p.verdict, Verdict::PgUnknownHolding { .. }));
    assert_eq!(
        p.events,
        vec![Event::PgUnknownHoldStarted { hold_ms: 10_000 }]
    );
    let (p, m) = run(
        &obs(109, unknown.clone(), PRESENT, CloudView::Disabled),
        &m,
        &policy,
    );
    assert!(p.steps.is_empty() && p.events.is_empty());
    let (p, m) = run(
        &obs(110, unknown.clone(), PRESENT, CloudView::Disabled),
        &m,
        &policy,
    );
    assert_eq!(p.steps, vec![Step::RemoveKernel]);
    assert_eq!(p.events, vec![Event::PgUnknownHoldEnded { released: true }]);
    // The address is gone: no more events, no steps, verdict stays pg-unknown.
    let (p, m) = run(
        &obs(111, unknown, KernelView::Absent, CloudView::Disabled),
        &m,
        &policy,
    );
    assert!(p.steps.is_empty() && p.events.is_empty());
    assert!(matches!(p.verdict, Verdict::PgUnknown { .. }));
    // PostgreSQL back: memory cleared, no second "ended" event.
    let (p, m) = run(
        &obs(112, primary(1), KernelView::Absent, CloudView::Disabled),
        &m,
        &policy,
    );
    assert!(p.events.is_empty());
    assert_eq!(m.pg_unknown_since, None);
}

#[test]
fn row_pg_unknown_recovered_within_hold_logs_end() {
    let unknown = PgView::Unknown("timeout".into());
    let (_, m) = fresh(
        &obs(0, unknown, PRESENT, CloudView::Disabled),
        &kernel_only(),
    );
    let (p, m) = run(
        &obs(3, primary(1), PRESENT, CloudView::Disabled),
        &m,
        &kernel_only(),
    );
    assert_eq!(
        p.events,
        vec![Event::PgUnknownHoldEnded { released: false }]
    );
    assert!(p.steps.is_empty());
    assert_eq!(m, Memory::default());
}

#[test]
fn row_pg_unknown_zero_hold_releases_at_once() {
    let policy = Policy {
        pg_unknown_hold: Duration::ZERO,
        ..kernel_only()
    };
    let (p, _) = fresh(
        &obs(0, PgView::Unknown("x".into()), PRESENT, CloudView::Disabled),
        &policy,
    );
    assert_eq!(p.steps, vec![Step::RemoveKernel]);
}

#[test]
fn row_pg_unknown_released_early_when_ec2_moved() {
    let (p, _) = fresh(
        &obs(0, PgView::Unknown("x".into()), PRESENT, other(claim(2, 2))),
        &with_cloud(),
    );
    assert_eq!(p.steps, vec![Step::RemoveKernel]);
}

// ---- claim-protocol rows ----------------------------------------------------

#[test]
fn row_me_ensures_kernel_and_refreshes_claim() {
    let p = with_cloud();
    let (plan, m) = fresh(
        &obs(
            0,
            primary(3),
            KernelView::Absent,
            CloudView::Me { claim: claim(3, 1) },
        ),
        &p,
    );
    assert_eq!(plan.steps, vec![Step::AddKernel { prefix_len: 32 }]);
    assert_eq!(m.cloud.settled, Some((3, Settled::Me)));
    let (plan, _) = fresh(
        &obs(0, primary(4), PRESENT, CloudView::Me { claim: claim(3, 1) }),
        &p,
    );
    assert_eq!(plan.steps, vec![Step::WriteClaim(claim_of(4, 1))]);
    let (plan, _) = fresh(
        &obs(
            0,
            primary(4),
            PRESENT,
            CloudView::Me {
                claim: ClaimTag::Absent,
            },
        ),
        &p,
    );
    assert_eq!(plan.steps, vec![Step::WriteClaim(claim_of(4, 1))]);
    let (plan, _) = fresh(
        &obs(0, primary(4), PRESENT, CloudView::Me { claim: claim(4, 1) }),
        &p,
    );
    assert!(plan.steps.is_empty());
    assert_eq!(plan.verdict, Verdict::Holding);
}

fn marks(list: &[(u32, i32)]) -> MarkView {
    MarkView::Read {
        marks: list.iter().map(|&(tl, node)| claim_of(tl, node)).collect(),
    }
}

/// Memory of a node that EC2 confirmed as the holder at `tl` (last answer "me" at `at`).
fn held(tl: u32, at: u64) -> Memory {
    Memory {
        cloud: CloudMemory {
            me_at: Some(S(at)),
            checked_at: Some(S(at)),
            held_at: Some(tl),
            settled: Some((tl, Settled::Me)),
            reverify: 10,
            ..CloudMemory::default()
        },
        ..Memory::default()
    }
}

#[test]
fn row_nobody_or_lower_claim_takes_over_at_once() {
    for cloud in [CloudView::Nobody, other(claim(2, 2))] {
        let (p, _) = fresh(
            &obs(0, primary(3), KernelView::Absent, cloud.clone()),
            &with_cloud(),
        );
        assert_eq!(p.steps, takeover(true, 3), "{cloud:?}");
        assert_eq!(p.verdict, Verdict::Acquiring);
    }
}

#[test]
fn row_unclaimed_holder_waits_the_consistency_bound() {
    // No claim (or an unreadable one) on the holder: its claim may not be visible yet.
    // No takeover before the holder has been seen for the bound; then, as before.
    for tag in [ClaimTag::Absent, ClaimTag::Invalid("garbage".into())] {
        let p = with_cloud();
        let (p0, m0) = fresh(
            &obs(100, primary(3), KernelView::Absent, other(tag.clone())),
            &p,
        );
        assert!(p0.steps.is_empty(), "{p0:?}");
        assert_eq!(p0.verdict.kind(), "ec2-settling");
        assert_eq!(m0.cloud.other_since, Some(("eni-0other".into(), S(100))));
        // Looks again every SETTLING_LOOK meanwhile, not every pass.
        let elig = Eligibility::Eligible { timeline: 3 };
        assert!(!cloud_due(&elig, &KernelView::Absent, &m0, S(104), &p));
        assert!(cloud_due(&elig, &KernelView::Absent, &m0, S(105), &p));
        let (p1, m1) = run(
            &obs(159, primary(3), KernelView::Absent, other(tag.clone())),
            &m0,
            &p,
        );
        assert!(p1.steps.is_empty() && p1.verdict.kind() == "ec2-settling");
        let (p2, _) = run(
            &obs(160, primary(3), KernelView::Absent, other(tag.clone())),
            &m1,
            &p,
        );
        assert_eq!(p2.steps, takeover(true, 3), "{p2:?}");
        // A different holder starts the wait over.
        let moved = CloudView::Other {
            eni: "eni-0third".into(),
            claim: tag,
        };
        let (p3, _) = run(&obs(160, primary(3), KernelView::Absent, moved), &m1, &p);
        assert_eq!(p3.verdict.kind(), "ec2-settling");
    }
}

#[test]
fn a_holder_seen_only_before_a_standby_spell_is_waited_for_again() {
    // Seen holding without a claim, then this node was a standby (no looks) for long:
    // the holder may have lost the VIP and taken it again under a claim not visible
    // yet, so the wait starts over when the node is eligible again. The same after a
    // spell of unknown PostgreSQL.
    let p = with_cloud();
    let unclaimed = || other(ClaimTag::Absent);
    let (_, m0) = fresh(&obs(100, primary(3), KernelView::Absent, unclaimed()), &p);
    assert_eq!(m0.cloud.other_since, Some(("eni-0other".into(), S(100))));
    let between = [standby(), PgView::Unknown("connection refused".into())];
    for pg in between {
        let (_, m1) = run(
            &obs(130, pg, KernelView::Absent, CloudView::NotChecked),
            &m0,
            &p,
        );
        assert_eq!(m1.cloud.other_since, None, "forgotten");
        let (p2, m2) = run(
            &obs(500, primary(3), KernelView::Absent, unclaimed()),
            &m1,
            &p,
        );
        assert!(p2.steps.is_empty(), "{p2:?}");
        assert_eq!(p2.verdict.kind(), "ec2-settling");
        assert_eq!(m2.cloud.other_since, Some(("eni-0other".into(), S(500))));
    }
    // Eligible all along (looks paced, not every pass): the wait keeps its start.
    let (_, m1) = run(
        &obs(130, primary(3), KernelView::Absent, CloudView::NotChecked),
        &m0,
        &p,
    );
    assert_eq!(m1.cloud.other_since, Some(("eni-0other".into(), S(100))));
    // Fenced at timeline 3 meanwhile (its looks were for that timeline), then promoted
    // past the fence: the wait starts at the pass the fence lifts.
    let fenced = Memory {
        fenced: Some(Fenced {
            by: claim_of(4, 2),
            holder: "eni-0other".into(),
        }),
        ..m0
    };
    let (p2, m2) = run(
        &obs(500, primary(5), KernelView::Absent, unclaimed()),
        &fenced,
        &p,
    );
    assert_eq!(p2.events, vec![Event::FenceLifted { by: claim_of(4, 2) }]);
    assert!(p2.steps.is_empty(), "{p2:?}");
    assert_eq!(
        m2.cloud.settled,
        Some((
            5,
            Settled::Settling {
                holder: "eni-0other".into(),
                until: S(560)
            }
        ))
    );
}

#[test]
fn row_taken_from_us_waits_the_consistency_bound() {
    // We held the VIP at this timeline; now another ENI shows it with a lower claim
    // (its new, higher claim may not be visible yet): keep the kernel as it is, wait
    // the bound, then take back if nothing forbids it.
    let p = with_cloud();
    let (p0, m0) = run(
        &obs(100, primary(5), PRESENT, other(claim(4, 2))),
        &held(5, 90),
        &p,
    );
    assert!(p0.steps.is_empty(), "{p0:?}");
    assert_eq!(p0.verdict.kind(), "ec2-settling");
    // Its claim becomes visible within the bound: stale, and it stays so.
    let (p1, m1) = run(&obs(130, primary(5), PRESENT, other(claim(6, 2))), &m0, &p);
    assert_eq!(p1.verdict.kind(), "stale-primary");
    assert!(p1.steps.contains(&Step::RemoveKernel));
    assert!(m1.fenced.is_some());
    // Without the claim ever showing, the bound runs out and we take it back.
    let (p2, _) = run(&obs(160, primary(5), PRESENT, other(claim(4, 2))), &m0, &p);
    assert_eq!(p2.steps, takeover(false, 5), "{p2:?}");
    // The same after a restart that lost the journal: our own mark on the subnet says
    // we claimed before, so the careful start waits the bound from the start …
    let o = with_marks(
        obs(100, primary(5), PRESENT, other(claim(4, 2))),
        marks(&[(5, 1), (4, 2)]),
    );
    let (p3, m3) = run(&o, &Memory::careful(S(100), &p), &p);
    assert_eq!(p3.verdict.kind(), "ec2-settling", "{p3:?}");
    // … and after it counts that mark as having held here, as if it had assigned just
    // before its start: the wait for the holder counts from a look made the bound
    // after that (a read before may predate the assign), so the takeover comes a
    // bound later still.
    let o = with_marks(
        obs(161, primary(5), PRESENT, other(claim(4, 2))),
        marks(&[(5, 1), (4, 2)]),
    );
    let (p4, m4) = run(&o, &m3, &p);
    assert_eq!(p4.verdict.kind(), "ec2-settling", "{p4:?}");
    assert_eq!(m4.careful_until, None);
    assert_eq!(m4.cloud.took_timeline, Some(5));
    let o = Observation { now: S(221), ..o };
    let (p5, _) = run(&o, &m4, &p);
    assert_eq!(p5.steps, takeover(false, 5), "{p5:?}");
    // A claim alone is not holding: an assign EC2 refused (issue 18, sequence 4) does
    // not make the node wait the bound when the old holder's lower claim is visible.
    let refused_claim = Memory {
        cloud: CloudMemory {
            claimed_at: Some(claim_of(5, 1)),
            ..CloudMemory::default()
        },
        ..Memory::default()
    };
    let (p6, _) = run(&o, &refused_claim, &p);
    assert_eq!(p6.steps, takeover(false, 5), "{p6:?}");
}

#[test]
fn row_marks_fence_whoever_holds() {
    let p = with_cloud();
    // (marks, our timeline, fenced?)
    type Case<'a> = (&'a [(u32, i32)], u32, bool);
    let cases: [Case; 6] = [
        (&[(6, 2)], 5, true),          // higher mark of another node
        (&[(5, 2)], 5, false),         // equal, another node, and we never held here (issue 18, 5a)
        (&[(6, 1)], 5, true),          // our own node claimed higher once
        (&[(5, 1), (4, 2)], 5, false), // our own mark at our timeline, lower others
        (&[(4, 2)], 5, false),
        (&[], 5, false),
    ];
    for (list, tl, fenced) in cases {
        for cloud in [
            CloudView::Nobody,
            other(claim(1, 2)),
            other(ClaimTag::Absent),
        ] {
            let o = with_marks(obs(0, primary(tl), PRESENT, cloud.clone()), marks(list));
            let (plan, m) = fresh(&o, &p);
            let takes = plan.steps.contains(&Step::AssignCloud);
            if fenced {
                assert!(!takes, "{list:?} {cloud:?}: {plan:?}");
                assert_eq!(plan.verdict.kind(), "stale-primary", "{list:?} {cloud:?}");
                assert!(plan.steps.contains(&Step::RemoveKernel));
                assert!(m.fenced.is_some());
            } else if cloud == CloudView::Nobody || list.iter().all(|m| m.1 != 1) {
                // (our own mark at this timeline with another holder: settling)
                if cloud != other(ClaimTag::Absent) {
                    assert!(takes, "{list:?} {cloud:?}: {plan:?}");
                }
            }
        }
    }
}

#[test]
fn row_fenced_stays_fenced_until_timeline_passes() {
    let p = with_cloud();
    let (p0, m0) = fresh(
        &with_marks(
            obs(0, primary(5), PRESENT, CloudView::Nobody),
            marks(&[(6, 2)]),
        ),
        &p,
    );
    assert_eq!(p0.verdict.kind(), "stale-primary");
    assert!(p0.steps.contains(&Step::Fence {
        holder: "node 2 (mark on the subnet)".into()
    }));
    // Whatever later passes see (EC2 throttled, nobody with the mark not visible,
    // not checked), the node stays fenced; no second fence command, no new event.
    let unknown = CloudView::Unknown {
        kind: FailureKind::Throttled,
        code: Some("RequestLimitExceeded".into()),
        reason: "throttled".into(),
    };
    let mut m = m0.clone();
    for (t, cloud) in [
        (1, unknown),
        (2, CloudView::Nobody),
        (3, CloudView::NotChecked),
        (4, other(claim(1, 3))),
    ] {
        let (plan, next) = run(&obs(t, primary(5), KernelView::Absent, cloud), &m, &p);
        assert_eq!(plan.verdict.kind(), "stale-primary", "{plan:?}");
        assert!(plan.steps.is_empty() && plan.events.is_empty(), "{plan:?}");
        assert_eq!(plan.verdict.severity(), Severity::Critical);
        m = next;
    }
    // Rejoined as a standby: harmless, OK, but the fence is remembered.
    let (plan, ms) = run(
        &obs(5, standby(), KernelView::Absent, CloudView::NotChecked),
        &m,
        &p,
    );
    assert_eq!(plan.verdict.kind(), "standby");
    assert!(ms.fenced.is_some());
    // Its timeline passes the mark (promoted again, after following the new primary):
    // the fence lifts and it may take the VIP.
    let (plan, ml) = run(
        &with_marks(
            obs(6, primary(7), KernelView::Absent, other(claim(6, 2))),
            marks(&[(6, 2)]),
        ),
        &ms,
        &p,
    );
    assert_eq!(plan.events, vec![Event::FenceLifted { by: claim_of(6, 2) }]);
    assert_eq!(plan.steps, takeover(true, 7));
    assert!(ml.fenced.is_none());
}

#[test]
fn row_wrong_move_is_handed_back() {
    // A takeover that lagging reads allowed: we hold at EC2, and the marks (now
    // visible) say a higher claim exists. Remove the kernel address and unassign, so
    // the rightful holder sees "nobody" and takes it at once.
    let p = with_cloud();
    let o = with_marks(
        obs(3, primary(5), PRESENT, CloudView::Me { claim: claim(5, 1) }),
        marks(&[(5, 1), (6, 2)]),
    );
    let (plan, m) = run(&o, &held(5, 2), &p);
    assert_eq!(
        plan.steps,
        vec![
            Step::RemoveKernel,
            Step::ReleaseCloud,
            Step::Fence {
                holder: "node 2 (mark on the subnet)".into()
            }
        ]
    );
    assert_eq!(plan.verdict.kind(), "stale-primary");
    assert_eq!(m.cloud.held_at, None);
    // The rightful holder, having held at timeline 6, sees nobody: takes at once.
    let o = with_marks(
        obs(4, primary(6), PRESENT, CloudView::Nobody),
        marks(&[(5, 1), (6, 2)]),
    );
    let mut p2 = with_cloud();
    p2.node_id = 2;
    let (plan, _) = run(&o, &held(6, 1), &p2);
    assert!(plan.steps.contains(&Step::AssignCloud), "{plan:?}");
}

#[test]
fn reverify_schedule_after_takeover() {
    // After a verified takeover: looks after 1, 2, 4, 8, 16 s, then every
    // verify_interval; the marks are read on every look (the holder reads the fence
    // on each verify: issue 18, sequence 3).
    let p = with_cloud();
    let elig = Eligibility::Eligible { timeline: 3 };
    let done: Vec<StepOutcome> = takeover(true, 3)
        .into_iter()
        .map(StepOutcome::done)
        .collect();
    let mut m = settle(&Memory::default(), &done, S(100), &p, 0, Some(3));
    let mut looks = vec![];
    let mut t = S(100);
    while t < S(300) {
        t += Duration::from_millis(500);
        if cloud_due(&elig, &PRESENT, &m, t, &p) {
            looks.push(((t - S(100)).as_secs_f64(), marks_due(&elig, &m, t, &p)));
            let (_, next) = run(
                &Observation {
                    now: t,
                    ..obs(0, primary(3), PRESENT, CloudView::Me { claim: claim(3, 1) })
                },
                &m,
                &p,
            );
            m = next;
        }
    }
    let at: Vec<f64> = looks.iter().map(|l| l.0).collect();
    assert_eq!(
        at,
        vec![1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0, 121.0, 151.0, 181.0]
    );
    let read: Vec<bool> = looks.iter().map(|l| l.1).collect();
    assert_eq!(read, vec![true; 10]);
}

#[test]
fn row_foreign_claim_blocks_and_is_not_overridden() {
    let p = with_cloud();
    let foreign = MarkView::Read {
        marks: vec![Claim {
            timeline: 9,
            node_id: 2,
            system_id: Some(111),
        }],
    };
    let ours = |o: Observation| Observation {
        system_id: Some(222),
        ..o
    };
    let (plan, _) = fresh(
        &ours(with_marks(
            obs(0, primary(1), PRESENT, CloudView::Nobody),
            foreign.clone(),
        )),
        &p,
    );
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(plan.verdict.kind(), "foreign-claim");
    assert_eq!(plan.verdict.severity(), Severity::Critical);
    // Holding: keeps (and adds) the kernel address EC2 confirms, writes no claim.
    let (plan, _) = fresh(
        &ours(with_marks(
            obs(
                0,
                primary(1),
                KernelView::Absent,
                CloudView::Me { claim: claim(1, 1) },
            ),
            foreign,
        )),
        &p,
    );
    assert_eq!(plan.steps, vec![Step::AddKernel { prefix_len: 32 }]);
    // The holder's own claim of another system: neither compared nor overridden.
    let o = ours(obs(
        0,
        primary(1),
        PRESENT,
        other(ClaimTag::Valid(Claim {
            timeline: 1,
            node_id: 2,
            system_id: Some(111),
        })),
    ));
    let (plan, _) = fresh(&o, &p);
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(plan.verdict.kind(), "foreign-claim");
    // A claim without a system id (older daemons) is compared by timeline.
    let o = ours(obs(0, primary(3), PRESENT, other(claim(2, 2))));
    let (plan, _) = fresh(&o, &p);
    assert!(plan.steps.contains(&Step::AssignCloud));
}

#[test]
fn row_marks_unreadable_never_take() {
    let p = with_cloud();
    let o = with_marks(
        obs(0, primary(3), KernelView::Absent, CloudView::Nobody),
        MarkView::Unknown {
            kind: FailureKind::Throttled,
            code: Some("RequestLimitExceeded".into()),
            reason: "throttled".into(),
        },
    );
    let (plan, m) = fresh(&o, &p);
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(plan.verdict.kind(), "cloud-unknown");
    assert_eq!(m.cloud.failures, 1, "backs off");
    // Not read (a holder's look skipped them): no takeover this pass, the next reads them.
    let o = with_marks(
        obs(0, primary(3), KernelView::Absent, CloudView::Nobody),
        MarkView::NotRead,
    );
    let (plan, m) = run(&o, &held(3, 0), &p);
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert!(marks_due(
        &Eligibility::Eligible { timeline: 3 },
        &m,
        S(1),
        &p
    ));
}

#[test]
fn row_equal_or_higher_claim_is_stale_primary() {
    // (the holder's claim, whether we held the VIP at our timeline 3)
    for (tl, mem) in [
        (3, held(3, 0)),
        (4, Memory::default()),
        (99, Memory::default()),
    ] {
        let mut mem = mem;
        mem.cloud.settled = None;
        let (p, m) = run(
            &obs(1, primary(3), PRESENT, other(claim(tl, 2))),
            &mem,
            &with_cloud(),
        );
        assert_eq!(
            p.steps,
            vec![
                Step::RemoveKernel,
                Step::Fence {
                    holder: "eni-0other".into()
                }
            ]
        );
        assert_eq!(p.verdict.severity(), Severity::Critical);
        assert_eq!(p.verdict.kind(), "stale-primary");
        assert_eq!(
            p.events,
            vec![Event::StaleIncidentStarted {
                holder: "eni-0other".into()
            }]
        );
        // Second pass of the same incident: no second fence, no second event.
        let (p2, m2) = run(
            &obs(1, primary(3), KernelView::Absent, other(claim(tl, 2))),
            &m,
            &with_cloud(),
        );
        assert!(p2.steps.is_empty() && p2.events.is_empty());
        // Not eligible any more: the fence is remembered (no event), the verdict is
        // the standby's.
        let (p3, m3) = run(
            &obs(2, standby(), KernelView::Absent, CloudView::NotChecked),
            &m2,
            &with_cloud(),
        );
        assert!(p3.events.is_empty());
        assert!(m3.fenced.is_some());
    }
}

#[test]
fn row_stale_without_fence_command_only_removes() {
    let mut policy = with_cloud();
    policy.cloud.as_mut().unwrap().fence_configured = false;
    let (p, _) = fresh(&obs(0, primary(3), PRESENT, other(claim(5, 2))), &policy);
    assert_eq!(p.steps, vec![Step::RemoveKernel]);
}

#[test]
fn row_cloud_unknown_never_adds_keeps_holder_critical_after_hold() {
    let p = with_cloud();
    let unknown = || CloudView::Unknown {
        kind: FailureKind::Throttled,
        code: Some("RequestLimitExceeded".into()),
        reason: "throttled".into(),
    };
    let (plan, m) = fresh(&obs(0, primary(3), KernelView::Absent, unknown()), &p);
    assert!(plan.steps.is_empty());
    assert_eq!(m.cloud.failures, 1);
    assert!(
        m.cloud
            .retry_at
            .is_some_and(|t| t >= S(0) + Duration::from_millis(500))
    );
    // The last answer was "me": the address stays (EC2 delivers by the ENI mapping),
    // WARNING within cloud_unknown_hold, CRITICAL after it, never removed.
    let confirmed = held(3, 100);
    let (plan, _) = run(&obs(399, primary(3), PRESENT, unknown()), &confirmed, &p);
    assert!(plan.steps.is_empty());
    assert!(matches!(
        plan.verdict,
        Verdict::CloudUnknown {
            keeping: true,
            past_hold: false,
            ..
        }
    ));
    assert_eq!(plan.verdict.severity(), Severity::Warning);
    let (plan, _) = run(&obs(4000, primary(3), PRESENT, unknown()), &confirmed, &p);
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(plan.verdict.severity(), Severity::Critical);
    // Never confirmed at this timeline, the last answer someone else's, or no memory
    // at all (a restart during the outage, issue 18 sequence 1): an error is no
    // evidence, the address stays (and is never added).
    let (plan, _) = run(&obs(399, primary(4), PRESENT, unknown()), &confirmed, &p);
    assert!(plan.steps.is_empty(), "{plan:?}");
    let mut other_last = confirmed.clone();
    other_last.cloud.checked_at = Some(S(200));
    let (plan, _) = run(&obs(399, primary(3), PRESENT, unknown()), &other_last, &p);
    assert!(plan.steps.is_empty(), "{plan:?}");
    for mem in [Memory::default(), Memory::careful(S(10), &p)] {
        let (plan, _) = run(&obs(10, primary(3), PRESENT, unknown()), &mem, &p);
        assert!(plan.steps.is_empty(), "{plan:?}");
        assert!(matches!(
            plan.verdict,
            Verdict::CloudUnknown { keeping: true, .. }
        ));
        let (plan, _) = run(
            &obs(10, primary(3), KernelView::Absent, unknown()),
            &mem,
            &p,
        );
        assert!(
            plan.steps.is_empty(),
            "never added without a confirmation: {plan:?}"
        );
    }
}

#[test]
fn row_pg_unknown_ec2_mode_keeps_until_another_holder() {
    // EC2 mode: an unknown PostgreSQL keeps the address past pg_unknown_hold
    // (CRITICAL then) for as long as EC2 shows no other holder. It looks every pass
    // during the hold, then once per UNKNOWN_LOOK while a failover may come
    // (UNKNOWN_WATCH from the start), then once per verify_interval.
    let p = with_cloud();
    let unknown = PgView::Unknown("too many connections".into());
    let (plan, m) = run(
        &obs(
            0,
            unknown.clone(),
            PRESENT,
            CloudView::Me { claim: claim(3, 1) },
        ),
        &held(3, 0),
        &p,
    );
    assert!(plan.steps.is_empty());
    assert_eq!(plan.verdict.severity(), Severity::Warning);
    let u = Eligibility::Unknown("x".into());
    assert!(
        cloud_due(&u, &PRESENT, &m, S(5), &p),
        "every pass during the hold"
    );
    let (plan, m) = run(
        &obs(
            60,
            unknown.clone(),
            PRESENT,
            CloudView::Me { claim: claim(3, 1) },
        ),
        &m,
        &p,
    );
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(plan.verdict.kind(), "pg-unknown-holding");
    assert_eq!(plan.verdict.severity(), Severity::Critical);
    // Past the hold, inside the watch: a look a second, so a failover that comes
    // after the hold is seen at once (the soak's kernel double holder).
    assert!(!cloud_due(
        &u,
        &PRESENT,
        &m,
        Duration::from_millis(60_500),
        &p
    ));
    assert!(cloud_due(&u, &PRESENT, &m, S(61), &p));
    let (_, late) = run(
        &obs(
            UNKNOWN_WATCH.as_secs(),
            unknown.clone(),
            PRESENT,
            CloudView::Me { claim: claim(3, 1) },
        ),
        &m,
        &p,
    );
    // Past the watch: once per verify_interval (30 s here).
    let w = UNKNOWN_WATCH.as_secs();
    assert!(!cloud_due(&u, &PRESENT, &late, S(w + 29), &p));
    assert!(cloud_due(&u, &PRESENT, &late, S(w + 30), &p));
    let (plan, _) = run(&obs(61, unknown, PRESENT, other(claim(4, 2))), &m, &p);
    assert_eq!(plan.steps, vec![Step::RemoveKernel]);
}

#[test]
fn action_failed_never_lowers_the_plans_severity() {
    use crate::core::plan::Severity;
    for (floor, want) in [
        (Severity::Ok, Severity::Warning),
        (Severity::Warning, Severity::Warning),
        (Severity::Critical, Severity::Critical),
    ] {
        let v = Verdict::ActionFailed {
            step: "remove_kernel",
            error: "EPERM".into(),
            needs_operator: false,
            floor,
        };
        assert_eq!(v.severity(), want);
    }
}

// ---- API budget: when to look at EC2 ----------------------------------------

#[test]
fn budget_standby_never_looks_primary_once_per_verify_interval() {
    let p = with_cloud();
    let mem = Memory::default();
    assert!(!cloud_due(
        &Eligibility::NotEligible("x".into()),
        &PRESENT,
        &mem,
        S(0),
        &p
    ));
    assert!(!cloud_due(
        &Eligibility::Eligible { timeline: 1 },
        &PRESENT,
        &mem,
        S(0),
        &kernel_only()
    ));
    let elig = Eligibility::Eligible { timeline: 3 };
    assert!(cloud_due(&elig, &PRESENT, &mem, S(0), &p));
    let (_, m) = run(
        &obs(0, primary(3), PRESENT, CloudView::Me { claim: claim(3, 1) }),
        &mem,
        &p,
    );
    // The first looks follow the re-verify schedule (reverify_schedule_after_takeover);
    // once through it, one look per verify_interval.
    let mut m = m;
    m.cloud.reverify = 10;
    assert!(!cloud_due(&elig, &PRESENT, &m, S(29), &p));
    assert!(cloud_due(&elig, &PRESENT, &m, S(30), &p));
    // A new timeline must be confirmed at once.
    assert!(cloud_due(
        &Eligibility::Eligible { timeline: 4 },
        &PRESENT,
        &m,
        S(1),
        &p
    ));
    // While not looking, the plan relies on the settled answer.
    let (plan, _) = run(&obs(5, primary(3), PRESENT, CloudView::NotChecked), &m, &p);
    assert_eq!(plan.verdict, Verdict::Holding);
    // PostgreSQL unknown: look only while we have a kernel address to give up.
    let u = Eligibility::Unknown("x".into());
    assert!(cloud_due(&u, &PRESENT, &mem, S(0), &p));
    assert!(!cloud_due(&u, &KernelView::Absent, &mem, S(0), &p));
}

#[test]
fn budget_failures_back_off() {
    let p = with_cloud();
    let elig = Eligibility::Eligible { timeline: 3 };
    let unknown = CloudView::Unknown {
        kind: FailureKind::Transient,
        code: None,
        reason: "503".into(),
    };
    let (_, m) = decide(
        &obs(10, primary(3), PRESENT, unknown.clone()),
        &Memory::default(),
        &p,
        u32::MAX,
    );
    assert_eq!(m.cloud.retry_at, Some(S(11)));
    assert!(!cloud_due(
        &elig,
        &PRESENT,
        &m,
        S(10) + Duration::from_millis(900),
        &p
    ));
    assert!(cloud_due(&elig, &PRESENT, &m, S(11), &p));
    let (_, m) = decide(&obs(11, primary(3), PRESENT, unknown), &m, &p, u32::MAX);
    assert_eq!(m.cloud.retry_at, Some(S(13)));
}

#[test]
fn settle_after_takeover_and_after_failure() {
    let p = with_cloud();
    let done: Vec<StepOutcome> = takeover(true, 3)
        .into_iter()
        .map(StepOutcome::done)
        .collect();
    let m = settle(&Memory::default(), &done, S(7), &p, 0, Some(3));
    assert_eq!(m.cloud.settled, Some((3, Settled::Me)));
    assert_eq!(m.cloud.me_at, Some(S(7)));
    let failed = vec![
        StepOutcome::done(Step::WriteClaim(claim_of(3, 1))),
        StepOutcome::failed(Step::AssignCloud, "RequestLimitExceeded", false),
    ];
    let m = settle(&m, &failed, S(8), &p, u32::MAX, Some(3));
    assert_eq!(m.cloud.settled, None);
    assert_eq!(m.cloud.failures, 1);
    assert_eq!(m.cloud.retry_at, Some(S(9)));
}

#[test]
fn a_timed_out_claim_or_assign_counts_as_maybe_made() {
    // No answer to the assign (a timeout, a lost connection, a 5xx): it may have gone
    // through. It is not a success (backoff, nothing settled), but it counts for what
    // makes this node wait: a "nobody" read within the bound may be from before it.
    let p = with_cloud();
    let claim = StepOutcome::done(Step::WriteClaim(claim_of(3, 1)));
    let assign = |maybe_done| StepOutcome::failed(Step::AssignCloud, "timed out", maybe_done);
    let timed_out = settle(
        &Memory::default(),
        &[claim.clone(), assign(true)],
        S(8),
        &p,
        0,
        Some(3),
    );
    assert_eq!(timed_out.cloud.took_at, Some(S(8)));
    assert_eq!(timed_out.cloud.claimed_at, Some(claim_of(3, 1)));
    assert_eq!(
        (timed_out.cloud.settled.clone(), timed_out.cloud.failures),
        (None, 1)
    );
    let refused = settle(
        &Memory::default(),
        &[claim, assign(false)],
        S(8),
        &p,
        0,
        Some(3),
    );
    assert_eq!(refused.cloud.took_at, None);
    // A claim whose CreateTags timed out counts as our claim too.
    let m = settle(
        &Memory::default(),
        &[StepOutcome::failed(
            Step::WriteClaim(claim_of(3, 1)),
            "timed out",
            true,
        )],
        S(8),
        &p,
        0,
        Some(3),
    );
    assert_eq!(m.cloud.claimed_at, Some(claim_of(3, 1)));
    // Nobody, read after the backoff: after a refusal take it; after a timeout wait
    // until the assign is older than the bound (60 s).
    let nobody = obs(10, primary(3), KernelView::Absent, CloudView::Nobody);
    let (plan, _) = run(&nobody, &refused, &p);
    assert_eq!(plan.steps, takeover(true, 3), "{plan:?}");
    let (plan, _) = run(&nobody, &timed_out, &p);
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(plan.verdict.kind(), "ec2-settling");
    let (plan, _) = run(
        &obs(68, primary(3), KernelView::Absent, CloudView::Nobody),
        &timed_out,
        &p,
    );
    assert_eq!(plan.steps, takeover(true, 3), "{plan:?}");
}

#[test]
fn follow_a_promotion_repmgr_has_not_recorded_yet() {
    let pending = primary_saying(3, RepmgrSays::SelfNotPrimary);
    for policy in [kernel_only(), with_cloud()] {
        // Out of recovery, repmgr still says standby: not eligible, nothing to do, but
        // look again soon, for PROMOTION_FOLLOW from the first such pass.
        let (p0, m0) = fresh(
            &obs(
                100,
                pending.clone(),
                KernelView::Absent,
                CloudView::NotChecked,
            ),
            &policy,
        );
        assert!(p0.steps.is_empty() && p0.look_again_soon, "{p0:?}");
        assert!(
            matches!(
                p0.verdict,
                Verdict::WritableNotEligible {
                    recording: true,
                    ..
                }
            ),
            "{:?}",
            p0.verdict
        );
        assert_eq!(p0.verdict.severity(), Severity::Warning);
        let late = 100 + PROMOTION_FOLLOW.as_secs();
        let (p1, m1) = run(
            &obs(
                late - 1,
                pending.clone(),
                KernelView::Absent,
                CloudView::NotChecked,
            ),
            &m0,
            &policy,
        );
        assert!(p1.look_again_soon, "still within the follow window");
        // repmgr never caught up: back to the configured pace.
        let (p2, m2) = run(
            &obs(
                late,
                pending.clone(),
                KernelView::Absent,
                CloudView::NotChecked,
            ),
            &m1,
            &policy,
        );
        assert!(!p2.look_again_soon && p2.steps.is_empty());
        assert_eq!(p2.verdict.severity(), Severity::Critical);
        assert_eq!(m2.promotion_seen_at, Some(S(100)));
        // repmgr recorded the promotion: eligible, acts, and the follow-up ends.
        let (p3, m3) = run(
            &obs(late + 1, primary(3), KernelView::Absent, CloudView::Nobody),
            &m1,
            &policy,
        );
        assert!(!p3.look_again_soon && !p3.steps.is_empty(), "{p3:?}");
        assert_eq!(m3.promotion_seen_at, None);
    }
    // Every other state keeps the configured pace: a standby, an unknown PostgreSQL,
    // a primary repmgr names (stale or not), an unregistered one.
    for pg in all_pg() {
        let pending_like = matches!(
            pg,
            PgView::Known {
                role: PgRole::Primary { .. },
                repmgr: RepmgrSays::SelfNotPrimary
            }
        );
        let (p, _) = fresh(
            &obs(5, pg.clone(), PRESENT, CloudView::NotChecked),
            &with_cloud(),
        );
        assert_eq!(p.look_again_soon, pending_like, "{pg:?}");
    }
}

// ---- exhaustive sweep -------------------------------------------------------

fn all_pg() -> Vec<PgView> {
    let says = [
        RepmgrSays::SelfPrimary,
        RepmgrSays::SelfNotPrimary,
        RepmgrSays::SelfInactive,
        RepmgrSays::OtherPrimary(2),
        RepmgrSays::NotRegistered,
        RepmgrSays::NoMetadata,
    ];
    let mut v = vec![PgView::Unknown("down".into())];
    for r in says {
        v.push(PgView::Known {
            role: PgRole::Standby,
            repmgr: r,
        });
        for tl in [1, 3, 5] {
            v.push(PgView::Known {
                role: PgRole::Primary { timeline: tl },
                repmgr: r,
            });
        }
    }
    v
}

fn all_kernel() -> Vec<KernelView> {
    vec![
        PRESENT,
        KernelView::Present { prefix_len: 24 },
        KernelView::Absent,
        KernelView::Unknown("EPERM".into()),
    ]
}

fn all_tags() -> Vec<ClaimTag> {
    let mut v = vec![ClaimTag::Absent, ClaimTag::Invalid("x".into())];
    for tl in [1, 3, 5] {
        v.push(claim(tl, 1));
        v.push(claim(tl, 2));
    }
    v
}

fn all_cloud() -> Vec<CloudView> {
    let mut v = vec![
        CloudView::Disabled,
        CloudView::NotChecked,
        CloudView::Nobody,
        CloudView::Unknown {
            kind: FailureKind::NeedsOperator,
            code: Some("UnauthorizedOperation".into()),
            reason: "denied".into(),
        },
    ];
    for t in all_tags() {
        v.push(CloudView::Me { claim: t.clone() });
        v.push(other(t));
    }
    v
}

fn all_memory() -> Vec<Memory> {
    let settled = |s: Settled| CloudMemory {
        settled: Some((3, s)),
        checked_at: Some(S(95)),
        me_at: Some(S(95)),
        ..CloudMemory::default()
    };
    vec![
        Memory::default(),
        Memory {
            pg_unknown_since: Some(S(0)),
            ..Memory::default()
        },
        Memory {
            pg_unknown_since: Some(S(99)),
            ..Memory::default()
        },
        Memory {
            cloud: settled(Settled::Me),
            ..Memory::default()
        },
        Memory {
            cloud: settled(Settled::Stale {
                holder: "eni-0other".into(),
                holder_timeline: 5,
            }),
            fenced: Some(Fenced {
                by: claim_of(5, 2),
                holder: "eni-0other".into(),
            }),
            ..Memory::default()
        },
        Memory {
            cloud: CloudMemory {
                me_at: Some(S(99)),
                failures: 3,
                retry_at: Some(S(200)),
                ..CloudMemory::default()
            },
            ..Memory::default()
        },
    ]
}

fn all_policies() -> Vec<Policy> {
    vec![
        kernel_only(),
        with_cloud(),
        Policy {
            pg_unknown_hold: Duration::ZERO,
            ..with_cloud()
        },
    ]
}

/// Confirmation that EC2 says "me" for this timeline, this pass or settled earlier.
fn cloud_confirms(o: &Observation, m: &Memory, tl: u32) -> bool {
    match &o.cloud {
        CloudView::Me { .. } => true,
        CloudView::NotChecked => matches!(&m.cloud.settled, Some((t, Settled::Me)) if *t == tl),
        _ => false,
    }
}

/// Every policy with every PostgreSQL, kernel and EC2 view it can see (EC2 disabled
/// exactly when kernel-only), observed at 100 s.
fn all_worlds() -> Vec<(Policy, Observation)> {
    let mut worlds = vec![];
    for policy in all_policies() {
        for pg in all_pg() {
            for kernel in all_kernel() {
                for cloud in all_cloud() {
                    if policy.cloud.is_none() != matches!(cloud, CloudView::Disabled) {
                        continue;
                    }
                    let o = obs(100, pg.clone(), kernel.clone(), cloud.clone());
                    worlds.push((policy.clone(), o));
                }
            }
        }
    }
    worlds
}

#[test]
fn exhaustive_invariants() {
    let mut checked = 0u32;
    for (policy, o) in all_worlds() {
        for mem in all_memory() {
            let (plan, next) = run(&o, &mem, &policy);
            check_invariants(&o, &mem, &policy, &plan, &next);
            checked += 1;
        }
    }
    assert!(checked > 5_000, "swept {checked} combinations");
}

pub(super) fn check_invariants(
    o: &Observation,
    mem: &Memory,
    policy: &Policy,
    plan: &Plan,
    next: &Memory,
) {
    let adds = plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::AddKernel { .. }));
    let takes = plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::AssignCloud | Step::WriteClaim(_)));
    let pass = (o, mem, policy, plan);
    let elig = eligibility(&o.pg);
    check_not_eligible_or_unknown(pass, (adds, takes), &elig);
    if let Eligibility::Eligible { timeline } = elig {
        check_eligible(pass, (adds, takes), timeline);
    }
    check_any_pass(pass, (adds, takes), &elig, next);
}

/// One decided pass under `check_invariants`: what it saw (with the memory it came
/// in with), under which policy, and what it planned.
type Decided<'a> = (&'a Observation, &'a Memory, &'a Policy, &'a Plan);

fn context((o, mem, policy, plan): Decided) -> String {
    format!("{o:?}\n{mem:?}\n{policy:?}\n=> {plan:?}")
}

/// Not eligible, a standby, PostgreSQL unknown (and its hold policy).
fn check_not_eligible_or_unknown(pass: Decided, (adds, takes): (bool, bool), elig: &Eligibility) {
    let (o, mem, policy, plan) = pass;
    let ctx = || context(pass);
    // Never add or take when not eligible; a standby never adds, whatever else it sees.
    if !matches!(elig, Eligibility::Eligible { .. }) {
        assert!(!adds && !takes, "not eligible but acquiring: {}", ctx());
    }
    if let PgView::Known {
        role: PgRole::Standby,
        ..
    } = o.pg
    {
        assert!(!adds, "{}", ctx());
    }
    // Unknown PostgreSQL follows the hold policy: kernel-only releases when the hold
    // runs out; EC2 mode only when EC2 shows another holder.
    if let Eligibility::Unknown(_) = elig {
        let since = mem.pg_unknown_since.unwrap_or(o.now);
        let expired = o.now - since >= policy.pg_unknown_hold && policy.cloud.is_none();
        // Another holder is evidence when its claim is above what we held, or once our
        // own assign is older than the bound.
        let own_assign_recent = policy.cloud.as_ref().is_some_and(|cp| {
            mem.cloud
                .took_at
                .is_some_and(|t| o.now < t + cp.consistency_bound)
        });
        let newer = matches!(&o.cloud, CloudView::Other { claim: ClaimTag::Valid(c), .. }
            if mem.cloud.held_max.is_none_or(|h| c.timeline > h));
        let moved = matches!(o.cloud, CloudView::Other { .. }) && (newer || !own_assign_recent);
        let should_remove = (expired || moved) && !matches!(o.kernel, KernelView::Absent);
        assert_eq!(
            plan.steps.contains(&Step::RemoveKernel),
            should_remove,
            "{}",
            ctx()
        );
        assert_eq!(plan.steps.len(), usize::from(should_remove), "{}", ctx());
    }
}

/// Eligible at `timeline`: the claim protocol's rules and a takeover's order.
fn check_eligible(pass: Decided, (adds, takes): (bool, bool), timeline: u32) {
    let (o, mem, policy, plan) = pass;
    let ctx = || context(pass);
    // Never take from a claim with an equal or higher timeline: a higher one (or an
    // equal one once we held the VIP here) makes us a stale primary; an equal one of
    // another node is waited out for the bound (issue 18, sequence 5).
    if let CloudView::Other {
        claim: ClaimTag::Valid(c),
        ..
    } = &o.cloud
        && c.timeline >= timeline
    {
        let held = held_before(mem, timeline);
        let watched = policy.cloud.as_ref().is_some_and(|cp| {
            mem.cloud
                .other_since
                .as_ref()
                .is_some_and(|(_, since)| o.now >= *since + cp.consistency_bound)
        });
        let fenced = mem
            .fenced
            .as_ref()
            .is_some_and(|f| f.by.timeline >= timeline);
        if c.timeline > timeline || held || c.node_id == policy.node_id || fenced {
            assert!(!takes && !adds, "{}", ctx());
            assert_eq!(plan.verdict.kind(), "stale-primary", "{}", ctx());
        } else if !watched {
            // Never at once: waited out first.
            assert!(!takes && !adds, "{}", ctx());
        }
    }
    // A fenced node (its timeline not past the claim that fenced it) never takes.
    if let Some(f) = &mem.fenced
        && timeline <= f.by.timeline
        && policy.cloud.is_some()
    {
        assert!(!takes, "fenced but taking: {}", ctx());
        assert_eq!(plan.verdict.kind(), "stale-primary", "{}", ctx());
    }
    // Never take against a mark that forbids it (higher, or equal and another
    // node's once we held the VIP here and EC2 does not show us holding it), whoever
    // holds the VIP.
    let held = held_before(mem, timeline);
    let me_now = matches!(o.cloud, CloudView::Me { .. });
    if let MarkView::Read { marks } = &o.marks
        && marks.iter().any(|m| {
            m.timeline > timeline
                || (m.timeline == timeline && m.node_id != policy.node_id && held && !me_now)
        })
    {
        assert!(!takes, "took against a mark: {}", ctx());
    }
    // Never take without the marks read this pass.
    if takes && plan.steps.contains(&Step::AssignCloud) {
        assert!(
            matches!(o.marks, MarkView::Read { .. }),
            "took without reading the marks: {}",
            ctx()
        );
    }
    // Never take from a holder with no visible claim before it has been seen
    // holding for the consistency bound.
    if let (
        Some(cp),
        CloudView::Other {
            eni,
            claim: ClaimTag::Absent | ClaimTag::Invalid(_),
        },
    ) = (&policy.cloud, &o.cloud)
    {
        let seen_since = match &mem.cloud.other_since {
            Some((h, at)) if h == eni => *at,
            _ => o.now,
        };
        if o.now.saturating_sub(seen_since) < cp.consistency_bound {
            assert!(!takes, "took from an unclaimed holder too soon: {}", ctx());
        }
    }
    // With EC2, the kernel address is only added after a confirmation.
    if policy.cloud.is_some() && adds {
        let verified_first = plan.steps.iter().position(|s| *s == Step::VerifyCloud)
            < plan
                .steps
                .iter()
                .position(|s| matches!(s, Step::AddKernel { .. }));
        assert!(
            cloud_confirms(o, mem, timeline) || verified_first,
            "{}",
            ctx()
        );
    }
    // Order of a takeover: claim, assign, verify, kernel.
    if plan.steps.contains(&Step::AssignCloud) {
        assert_eq!(
            &plan.steps[..3],
            &takeover(false, timeline)[..],
            "{}",
            ctx()
        );
    }
}

/// Whatever the eligibility: kernel-only, converged, add-and-remove, the pg clock.
fn check_any_pass(pass: Decided, (adds, takes): (bool, bool), elig: &Eligibility, next: &Memory) {
    let (o, _, policy, plan) = pass;
    let ctx = || context(pass);
    // Only the cloud half may be missing when kernel-only.
    if policy.cloud.is_none() {
        assert!(
            !takes && !plan.steps.contains(&Step::VerifyCloud),
            "{}",
            ctx()
        );
    }
    // Converged (no steps) with an OK verdict only where the world matches it.
    if plan.verdict == Verdict::Holding {
        assert!(
            matches!(o.kernel, KernelView::Present { prefix_len: 32 }),
            "{}",
            ctx()
        );
    }
    // A plan never both adds and removes.
    assert!(
        !(adds && plan.steps.contains(&Step::RemoveKernel)),
        "{}",
        ctx()
    );
    // The pg-unknown clock only runs while PostgreSQL is unknown.
    assert_eq!(
        next.pg_unknown_since.is_some(),
        matches!(elig, Eligibility::Unknown(_)),
        "{}",
        ctx()
    );
}

/// Apply a plan to a simulated world and decide again: nothing new to acquire
/// (the plan is idempotent) and the second pass converges.
#[test]
fn exhaustive_idempotent_after_acting() {
    for (policy, o) in all_worlds() {
        let (plan, mem) = fresh(&o, &policy);
        let (k2, c2) = apply(&plan, &o);
        let tl = eligible_timeline(&eligibility(&o.pg));
        let outcomes: Vec<StepOutcome> = plan
            .steps
            .iter()
            .map(|s| StepOutcome::done(s.clone()))
            .collect();
        let mem = settle(&mem, &outcomes, o.now, &policy, 0, tl);
        let o2 = Observation {
            now: o.now + S(1),
            kernel: k2,
            cloud: c2,
            marks: marks_after(&plan, &o.marks),
            ..o.clone()
        };
        let (plan2, _) = run(&o2, &mem, &policy);
        let acquire2 = plan2.steps.iter().any(|s| s.is_acquire());
        let unknown_world = matches!(o.kernel, KernelView::Unknown(_))
            || matches!(o.cloud, CloudView::Unknown { .. } | CloudView::NotChecked);
        if !unknown_world {
            assert!(!acquire2, "{o:?} => {plan:?} then {o2:?} => {plan2:?}");
        }
    }
}

/// Did this node hold the VIP at `tl`, or in place at an older timeline (what makes
/// another node's equal claim fence it)? The invariants' own statement of the rule.
pub(super) fn held_before(mem: &Memory, tl: u32) -> bool {
    let c = &mem.cloud;
    c.held_at == Some(tl)
        || c.took_timeline == Some(tl)
        || mem.careful_until.is_some()
        || c.held_max
            .is_some_and(|h| h == tl || (h < tl && !c.left_primary))
}

/// The marks after a plan succeeded: a claim writes this node's mark.
pub(super) fn marks_after(plan: &Plan, marks: &MarkView) -> MarkView {
    let MarkView::Read { marks } = marks else {
        return marks.clone();
    };
    let mut marks = marks.clone();
    for s in &plan.steps {
        if let Step::WriteClaim(c) = s {
            marks.retain(|m| m.node_id != c.node_id);
            marks.push(*c);
        }
    }
    MarkView::Read { marks }
}

/// What the world looks like after a plan succeeded.
pub(super) fn apply(plan: &Plan, o: &Observation) -> (KernelView, CloudView) {
    let mut kernel = match &o.kernel {
        KernelView::Unknown(_) => KernelView::Absent,
        k => k.clone(),
    };
    let mut cloud = o.cloud.clone();
    for s in &plan.steps {
        match s {
            Step::AddKernel { prefix_len } => {
                kernel = KernelView::Present {
                    prefix_len: *prefix_len,
                }
            }
            Step::RemoveKernel => kernel = KernelView::Absent,
            Step::WriteClaim(c) => {
                if let CloudView::Me { claim } = &mut cloud {
                    *claim = ClaimTag::Valid(*c);
                }
            }
            Step::AssignCloud => {
                let c = plan.steps.iter().find_map(|s| match s {
                    Step::WriteClaim(c) => Some(*c),
                    _ => None,
                });
                cloud = CloudView::Me {
                    claim: c.map_or(ClaimTag::Absent, ClaimTag::Valid),
                };
            }
            Step::ReleaseCloud => cloud = CloudView::Nobody,
            Step::VerifyCloud | Step::Fence { .. } | Step::PruneMarks(_) => {}
        }
    }
    (kernel, cloud)
}

/// Every rule and step the decision table names (its numbered rows, the column before
/// the last) is a function of `decide/`.
#[test]
fn the_table_names_rules_that_exist() {
    let table = include_str!("../../../docs/decision-table.md");
    let sources = [
        include_str!("local_rules.rs"),
        include_str!("cloud_rules.rs"),
        include_str!("after.rs"),
        include_str!("absorb.rs"),
        include_str!("settle.rs"),
    ]
    .concat();
    let mut named = 0;
    for line in table.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').collect();
        if !cells[1].trim().starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let Some(rule) = cells.len().checked_sub(3).map(|i| cells[i]) else {
            continue;
        };
        for name in rule.split('`').skip(1).step_by(2) {
            if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !name.starts_with("row_")
            {
                named += 1;
                assert!(
                    sources.contains(&format!("fn {name}("))
                        || sources.contains(&format!("fn {name}<")),
                    "no rule fn {name}"
                );
            }
        }
    }
    assert!(named >= 23, "{named} rule names found");
}
