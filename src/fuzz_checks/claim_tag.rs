//! A claim tag value as someone may have hand-edited it: it parses or is Invalid, a
//! valid one round-trips, and in the decision it can never win: the holder's tag blocks
//! our takeover only if it is a valid claim with a timeline at least ours, and a tag on
//! our own ENI never makes us reassign or drop the VIP.

use std::time::Duration;

use crate::core::claim::{self, Claim};
use crate::core::decide::{self, Memory};
use crate::core::observation::{ClaimTag, CloudView, KernelView, MarkView, Observation};
use crate::core::plan::Step;

pub fn claim_tag(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let tag = claim::parse(value);
    if let ClaimTag::Valid(c) = &tag {
        assert!(c.timeline > 0 && c.node_id > 0, "{c:?}");
        assert_eq!(claim::parse(&c.to_string()), tag, "round trip of {value:?}");
    }
    let policy = crate::core::test_support::with_cloud();
    for ours in [1, 2, 7, u32::MAX] {
        let look = |cloud: CloudView| Observation {
            now: Duration::from_secs(100),
            pg: crate::core::test_support::primary(ours),
            kernel: KernelView::Absent,
            cloud,
            marks: MarkView::Read { marks: vec![] },
            system_id: None,
            holder_pg: Default::default(),
            known_nodes: None,
            cluster_tag: None,
        };
        let (plan, _) = decide::decide(
            &look(CloudView::Other {
                eni: "eni-0other".into(),
                claim: tag.clone(),
            }),
            &Memory::default(),
            &policy,
            0,
        );
        let takes = plan.steps.contains(&Step::AssignCloud);
        match tag.valid() {
            Some(c) if c.timeline > ours || (c.timeline == ours && c.node_id == 1) => {
                assert!(!takes, "took from {c:?} with timeline {ours}");
                assert_eq!(plan.verdict.kind(), "stale-primary");
            }
            // Another node's equal claim: a diverged promotion, waited out for the
            // bound by a node that never held the VIP here.
            Some(c) if c.timeline == ours => {
                assert!(!takes, "took from {c:?} with timeline {ours}");
                assert_eq!(plan.verdict.kind(), "ec2-settling");
            }
            // A visible lower claim (the old primary's) is taken from at once; no
            // claim, or an unreadable one, may be a claim not visible yet: wait.
            Some(_) => assert!(takes, "{tag:?} blocked a takeover at timeline {ours}"),
            None => {
                assert!(!takes, "took from {tag:?} without waiting");
                assert_eq!(plan.verdict.kind(), "ec2-settling");
            }
        }
        let mine = Claim {
            timeline: ours,
            node_id: 1,
            system_id: None,
        };
        // Our mark on the subnet is current (a missing one is written again whatever
        // the ENI's tag says): the ENI's tag alone decides whether the claim is written.
        let (plan, _) = decide::decide(
            &Observation {
                marks: MarkView::Read { marks: vec![mine] },
                ..look(CloudView::Me { claim: tag.clone() })
            },
            &Memory::default(),
            &policy,
            0,
        );
        assert!(!plan.steps.contains(&Step::AssignCloud), "{plan:?}");
        assert!(!plan.steps.contains(&Step::RemoveKernel), "{plan:?}");
        assert_eq!(
            plan.steps.contains(&Step::WriteClaim(mine)),
            tag != ClaimTag::Valid(mine),
            "{tag:?} at timeline {ours}: {plan:?}"
        );
    }
}
