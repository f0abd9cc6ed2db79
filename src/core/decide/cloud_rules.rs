//! The claim-protocol rows (eligible, EC2 mode): the fence, the subnet's marks and
//! who holds the VIP at EC2 decide what we may do. One named rule per row of
//! docs/decision-table.md.

use super::local_rules::{eligible_kernel_only, remove_unless_absent};
use super::{CloudPolicy, Fenced, Memory, Policy, Settled};
use crate::core::claim::Claim;
use crate::core::observation::{
    CloudView, HolderPg, KernelView, MarkView, Observation, PeerAnswer, Tick,
};
use crate::core::plan::{Step, Verdict};

/// Does `claim` (another ENI's, or a mark) forbid `ours` from holding the VIP? A
/// claim of the same database system (or of an unknown one) with a higher timeline
/// (our own node's too: PostgreSQL came back on an older timeline), or, when
/// `equal_fences`, with the same timeline from another node: two promotions from one
/// timeline diverged and the other one took the VIP from a node that held it here.
/// Equal claims never fence a node that did not hold the VIP at this timeline (it
/// may take only after the bound, `take_from`), nor the node EC2 shows holding it
/// (the other side is fenced when it sees us hold): the cluster is never left
/// without a VIP by a tie, nor given two.
pub(super) fn forbids(claim: &Claim, ours: &Claim, equal_fences: bool) -> bool {
    !claim.is_foreign_to(ours.system_id)
        && (claim.timeline > ours.timeline
            || (equal_fences && claim.timeline == ours.timeline && claim.node_id != ours.node_id))
}

/// What a rule decides: the steps and the verdict.
type Decided = (Vec<Step>, Verdict);

/// The claim-protocol rows: the first rule that applies decides; else the holder at
/// EC2 does (`by_holder`).
pub(super) fn eligible_with_cloud<'a>(
    obs: &'a Observation,
    next: &mut Memory,
    policy: &'a Policy,
    cp: &'a CloudPolicy,
    timeline: u32,
) -> Decided {
    let ours = Claim {
        timeline,
        node_id: policy.node_id,
        system_id: obs.system_id,
    };
    // Held the VIP (assigned it, answered or not, or EC2 confirmed it) at this
    // timeline or, promoted in place since, at an older one (not after a spell as a
    // known standby, `forget_unwatched_holder`); a careful start may have. A claim
    // alone (its assign refused) is not holding.
    let held_before = next.careful_until.is_some()
        || next.cloud.held_at == Some(timeline)
        || next.cloud.took_timeline == Some(timeline)
        || next
            .cloud
            .held_max
            .is_some_and(|h| h == timeline || (h < timeline && !next.cloud.left_primary));
    let me_now = match &obs.cloud {
        CloudView::Me { .. } => true,
        CloudView::NotChecked => {
            matches!(&next.cloud.settled, Some((tl, Settled::Me)) if *tl == timeline)
        }
        _ => false,
    };
    let rules = CloudRules {
        obs,
        policy,
        cp,
        ours,
        held_before,
        me_now,
        overridden: next.overridden,
    };
    let in_order: [fn(&CloudRules<'a>, &mut Memory) -> Option<Decided>; 5] = [
        CloudRules::fence_sticks,
        CloudRules::holder_claim_at_or_above_ours,
        CloudRules::foreign_mark,
        CloudRules::forbidding_mark,
        CloudRules::own_claim_above_timeline,
    ];
    in_order
        .iter()
        .find_map(|rule| rule(&rules, next))
        .unwrap_or_else(|| rules.by_holder(next))
}

/// A daemon started without a readable journal does not know whether, or when, it
/// last took the VIP. With no journal at all (`Memory::fresh`), its own mark on the
/// subnet says whether it ever claimed: none and it never held the VIP, so there is
/// nothing to be careful about. With one it could not read (`Memory::careful`), or
/// with its mark visible, it waits the bound from its start before any takeover
/// (`take_over`), then counts its mark at this timeline as having held the VIP here
/// (`held_before`), as an unanswered assign would.
pub(super) fn resolve_careful(obs: &Observation, next: &mut Memory, node: i32, tl: u32) {
    let (Some(until), MarkView::Read { marks }) = (next.careful_until, &obs.marks) else {
        return;
    };
    let own = marks
        .iter()
        .filter(|m| m.node_id == node)
        .max_by_key(|m| m.timeline);
    match own {
        // No journal and no mark: it never claimed, so it never assigned either.
        None if !next.careful_strict => {
            next.careful_until = None;
            next.cloud.took_at = None;
        }
        None if obs.now >= until => next.careful_until = None,
        None => {}
        Some(m) if obs.now >= until => {
            if m.timeline == tl {
                next.cloud.took_timeline = Some(tl);
                next.cloud.held_max = next.cloud.held_max.max(Some(tl));
            }
            next.careful_until = None;
        }
        Some(_) => {}
    }
}

/// The rules, in the order `eligible_with_cloud` tries them.
impl<'a> CloudRules<'a> {
    /// Row 11: a fenced node stays fenced whatever this pass could see.
    fn fence_sticks(&self, next: &mut Memory) -> Option<Decided> {
        let f = next.fenced.clone()?;
        Some(self.stale(next, &f))
    }

    /// Row 17: the holder's own claim, when it fences us (named by its ENI: what an
    /// operator looks for).
    fn holder_claim_at_or_above_ours(&self, next: &mut Memory) -> Option<Decided> {
        let CloudView::Other { eni, claim } = &self.obs.cloud else {
            return None;
        };
        let c = claim.valid()?;
        if !self.holder_fences(&c) {
            return None;
        }
        let f = Fenced {
            by: c,
            holder: eni.clone(),
        };
        Some(self.stale(next, &f))
    }

    /// Row 12: a mark of another database system blocks (the subnet's marks outlive
    /// every ENI).
    fn foreign_mark(&self, next: &mut Memory) -> Option<Decided> {
        let MarkView::Read { marks } = &self.obs.marks else {
            return None;
        };
        let m = marks
            .iter()
            .find(|m| m.is_foreign_to(self.ours.system_id))?;
        Some(self.foreign(next, format!("the subnet's mark of node {}", m.node_id), *m))
    }

    /// Row 13: a higher (or diverged) mark fences, whoever holds the VIP.
    fn forbidding_mark(&self, next: &mut Memory) -> Option<Decided> {
        let MarkView::Read { marks } = &self.obs.marks else {
            return None;
        };
        let equal_fences = self.held_before && !self.me_now;
        let m = marks
            .iter()
            .filter(|m| forbids(m, &self.ours, equal_fences) && Some(**m) != self.overridden)
            .max_by_key(|m| m.timeline)?;
        let f = Fenced {
            by: *m,
            holder: format!("node {} (mark on the subnet)", m.node_id),
        };
        Some(self.stale(next, &f))
    }

    /// Row 13: our own last claim, remembered, fences as our own mark does once
    /// visible (PostgreSQL came back on an older timeline than one we claimed at).
    fn own_claim_above_timeline(&self, next: &mut Memory) -> Option<Decided> {
        let c = next
            .cloud
            .claimed_at
            .filter(|c| forbids(c, &self.ours, false) && Some(*c) != self.overridden)?;
        let f = Fenced {
            by: c,
            holder: format!("node {} (this node's own claim)", c.node_id),
        };
        Some(self.stale(next, &f))
    }

    /// Rows 14-22: the holder at EC2.
    fn by_holder(&self, next: &mut Memory) -> Decided {
        let (obs, ours, timeline) = (self.obs, self.ours, self.ours.timeline);
        match &obs.cloud {
            CloudView::Disabled => eligible_kernel_only(&obs.kernel, self.policy),
            CloudView::Me { claim } => match claim.valid() {
                Some(c) if c.is_foreign_to(ours.system_id) => {
                    self.foreign(next, "our own ENI's claim".to_owned(), c)
                }
                claim => self.holding(next, claim == Some(ours)),
            },
            CloudView::Nobody => self.take_from_nobody(next),
            CloudView::Other { eni, claim } => match claim.valid() {
                Some(c) if c.is_foreign_to(ours.system_id) => {
                    self.foreign(next, format!("{eni}'s claim"), c)
                }
                Some(c) if self.holder_fences(&c) => {
                    let f = Fenced {
                        by: c,
                        holder: eni.clone(),
                    };
                    self.stale(next, &f)
                }
                // A lower claim is evidence for a takeover at once (row 18); an equal
                // one of a node that may be gone, or one the operator overrode, is not.
                evidence => {
                    self.take_from(next, eni, evidence.is_some_and(|c| c.timeline < timeline))
                }
            },
            CloudView::NotChecked => self.not_checked(next),
            CloudView::Unknown { reason, kind, .. } => {
                self.cloud_unknown(next, reason, kind.needs_operator())
            }
        }
    }

    /// Not asked this pass: a settled answer stands; else as EC2 unknown, backing off.
    fn not_checked(&self, next: &mut Memory) -> Decided {
        match next.cloud.settled.clone() {
            Some((tl, Settled::Me)) if tl == self.ours.timeline => self.holding(next, true),
            Some((tl, Settled::Settling { holder, until })) if tl == self.ours.timeline => {
                self.settling(&holder, until)
            }
            Some((tl, Settled::Foreign { place, claim, me })) if tl == self.ours.timeline => {
                self.foreign_as(next, place, claim, me)
            }
            _ => {
                let why = next
                    .cloud
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "not yet confirmed".into());
                self.cloud_unknown(next, &format!("backing off: {why}"), false)
            }
        }
    }
}

/// The pieces of the claim protocol, over one pass's observation.
struct CloudRules<'a> {
    obs: &'a Observation,
    policy: &'a Policy,
    cp: &'a CloudPolicy,
    ours: Claim,
    /// This node held the VIP at this timeline or, in place, an older one: a holder
    /// seen now may have taken it from us (wait the bound), and another node's equal
    /// claim is a diverged promotion that did (it fences us).
    held_before: bool,
    /// EC2 shows our ENI holding the VIP this pass (or a settled "me" stands).
    me_now: bool,
    /// The claim an operator cleared our fence from: it fences no more.
    overridden: Option<Claim>,
}

impl CloudRules<'_> {
    /// Does the holder's own claim `c` make us a stale primary (row 17)? A higher
    /// timeline always; an equal one when it is our own node's (an old ENI of ours)
    /// or we held the VIP before at this timeline or an older one (a diverged
    /// promotion took it from us).
    fn holder_fences(&self, c: &Claim) -> bool {
        if c.is_foreign_to(self.ours.system_id) || Some(*c) == self.overridden {
            return false;
        }
        c.timeline > self.ours.timeline
            || (c.timeline == self.ours.timeline
                && (c.node_id == self.ours.node_id || self.held_before))
    }

    /// Our own mark on the subnet, when this pass read the marks.
    fn own_mark(&self) -> Option<Option<Claim>> {
        match &self.obs.marks {
            MarkView::Read { marks } => Some(
                marks
                    .iter()
                    .filter(|m| m.node_id == self.ours.node_id)
                    .max_by_key(|m| m.timeline)
                    .copied(),
            ),
            _ => None,
        }
    }

    fn kernel_ok(&self) -> bool {
        matches!(self.obs.kernel, KernelView::Present { prefix_len } if prefix_len == self.policy.prefix_len)
    }

    fn add(&self) -> Step {
        Step::AddKernel {
            prefix_len: self.policy.prefix_len,
        }
    }

    /// EC2 says (or a settled answer says) the VIP is ours: make sure of the kernel
    /// address and of our claim.
    fn holding(&self, next: &mut Memory, claim_current: bool) -> (Vec<Step>, Verdict) {
        // The holder keeps its mark: one missing (deleted by a third party, IaC) or
        // below our claim is written again with the claim.
        let mark_current = self
            .own_mark()
            .is_none_or(|m| m.is_some_and(|m| m.timeline >= self.ours.timeline));
        let claim_current = claim_current && mark_current;
        let mut steps = vec![];
        if !self.kernel_ok() {
            steps.push(self.add());
        }
        if !claim_current {
            steps.push(Step::WriteClaim(self.ours));
        } else {
            next.cloud.settled = Some((self.ours.timeline, Settled::Me));
            steps.extend(self.prune(next));
        }
        next.cloud.held_at = Some(self.ours.timeline);
        next.cloud.held_max = next.cloud.held_max.max(Some(self.ours.timeline));
        next.cloud.left_primary = false;
        if let Some(tagged) = self.obs.cluster_tag {
            next.cloud.untagged = !tagged;
        }
        let housekeeping = |s: &Step| matches!(s, Step::PruneMarks(_));
        let verdict = if steps.iter().all(housekeeping) {
            if next.cloud.untagged {
                Verdict::HoldingUntagged
            } else {
                Verdict::Holding
            }
        } else {
            Verdict::Acquiring
        };
        (steps, verdict)
    }

    /// The holder keeps the subnet's marks few (EC2 allows 50 tags a resource): with
    /// the marks read and its claim current, it prunes the marks of node ids this
    /// node's `repmgr.nodes` no longer lists that are below the highest mark (which
    /// still fences any node they would). Never its own, an equal-to-highest one, or
    /// one of another database system (those are the operator's: `retire-claim`). Not
    /// tried again for `PRUNE_RETRY` after a failure.
    fn prune(&self, next: &Memory) -> Option<Step> {
        let (MarkView::Read { marks }, Some(known)) = (&self.obs.marks, &self.obs.known_nodes)
        else {
            return None;
        };
        if !known.contains(&self.ours.node_id)
            || next.cloud.prune_after.is_some_and(|t| self.obs.now < t)
        {
            return None;
        }
        let ours = |m: &&Claim| !m.is_foreign_to(self.ours.system_id);
        let highest = marks.iter().filter(ours).map(|m| m.timeline).max()?;
        let old: Vec<Claim> = marks
            .iter()
            .filter(ours)
            .filter(|m| m.timeline < highest && !known.contains(&m.node_id))
            .copied()
            .collect();
        (!old.is_empty()).then_some(Step::PruneMarks(old))
    }

    /// Fenced: never take; the kernel address goes, and so does the EC2 assignment if
    /// EC2 shows it on our ENI (a takeover lagging reads allowed): the rightful
    /// primary then sees "nobody" and takes it at once.
    fn stale(&self, next: &mut Memory, f: &Fenced) -> (Vec<Step>, Verdict) {
        let mut steps = remove_unless_absent(&self.obs.kernel);
        if matches!(self.obs.cloud, CloudView::Me { .. }) {
            steps.push(Step::ReleaseCloud);
        }
        next.fenced.get_or_insert_with(|| f.clone());
        next.cloud.held_at = None;
        next.cloud.settled = Some((
            self.ours.timeline,
            Settled::Stale {
                holder: f.holder.clone(),
                holder_timeline: f.by.timeline,
            },
        ));
        (
            steps,
            Verdict::StalePrimary {
                holder: f.holder.clone(),
                holder_timeline: f.by.timeline,
                our_timeline: self.ours.timeline,
            },
        )
    }

    /// Another database system's claim: neither compared nor overridden. A holder
    /// keeps what it has (adding the kernel address EC2 confirms); nobody takes.
    fn foreign(&self, next: &mut Memory, place: String, claim: Claim) -> (Vec<Step>, Verdict) {
        let me = self.me_now;
        self.foreign_as(next, place, claim, me)
    }

    /// Row 12/16, settled: looked at again once per `verify_interval` (`cloud_due`),
    /// the address kept on the holder whatever a pass in between could see.
    fn foreign_as(
        &self,
        next: &mut Memory,
        place: String,
        claim: Claim,
        me: bool,
    ) -> (Vec<Step>, Verdict) {
        next.cloud.settled = Some((
            self.ours.timeline,
            Settled::Foreign {
                place: place.clone(),
                claim,
                me,
            },
        ));
        let steps = if me && !self.kernel_ok() {
            vec![self.add()]
        } else {
            vec![]
        };
        (
            steps,
            Verdict::ForeignClaim {
                place,
                claim,
                ours: self.ours.system_id,
            },
        )
    }

    /// Claim → assign → verify → add. Only with the marks read this pass: a claim is
    /// never written without knowing the highest one.
    fn take_over(&self, next: &mut Memory, holder: &str) -> (Vec<Step>, Verdict) {
        match &self.obs.marks {
            MarkView::Read { .. } => {}
            MarkView::Unknown { kind, reason, .. } => {
                return self.cloud_unknown(
                    next,
                    &format!("reading the claim marks: {reason}"),
                    kind.needs_operator(),
                );
            }
            // A holder's looks skip the marks; the next look reads them.
            MarkView::NotRead => {
                next.cloud.settled = None;
                return (
                    vec![],
                    Verdict::Ec2Settling {
                        holder: holder.to_owned(),
                        remaining_ms: 0,
                    },
                );
            }
        }
        // Started without a readable journal and this node has claimed before (its
        // mark is on the subnet, `resolve_careful`): when it last took the VIP is
        // lost, so a read may predate a takeover from it. Wait the bound from the start.
        if let Some(until) = next.careful_until
            && self.obs.now < until
        {
            next.cloud.settled = Some((
                self.ours.timeline,
                Settled::Settling {
                    holder: holder.to_owned(),
                    until,
                },
            ));
            return self.settling(holder, until);
        }
        let mut steps = vec![
            Step::WriteClaim(self.ours),
            Step::AssignCloud,
            Step::VerifyCloud,
        ];
        if !self.kernel_ok() {
            steps.push(self.add());
        }
        (steps, Verdict::Acquiring)
    }

    /// Nobody holds the VIP: take it at once, unless we assigned it to ourselves less
    /// than the consistency bound ago. Then "nobody" may be a read from before our own
    /// assign, hiding a node that has taken the VIP from us since: wait until our
    /// assign is older than the bound (a read then shows what came after it).
    fn take_from_nobody(&self, next: &mut Memory) -> (Vec<Step>, Verdict) {
        // Nobody is not free within the bound after our own assign, nor after a read
        // that showed another holder: either may be hidden by a lagging read.
        let last = [next.cloud.took_at, next.cloud.other_seen_at]
            .into_iter()
            .flatten()
            .max();
        if let Some(last) = last {
            let until = last + self.cp.consistency_bound;
            if self.obs.now < until {
                next.cloud.settled = Some((
                    self.ours.timeline,
                    Settled::Settling {
                        holder: "nobody".to_owned(),
                        until,
                    },
                ));
                return self.settling("nobody", until);
            }
        }
        self.take_over(next, "nobody")
    }

    /// Another ENI holds the VIP with no visible claim, or a lower one. Take it at once
    /// only when its claim is visible and lower AND we did not hold or claim the VIP at
    /// this timeline (the normal failover: the old primary's claim has long been
    /// visible). Otherwise its claim may simply not be visible yet: wait until it has
    /// been seen holding for the consistency bound (its claim, written before its
    /// assign, is then visible), keeping whatever the kernel has. (The wait counts from
    /// a look made the bound after our own last assign at the earliest: see
    /// `absorb_observation`.)
    fn take_from(&self, next: &mut Memory, eni: &str, lower_claim: bool) -> (Vec<Step>, Verdict) {
        let tl = self.ours.timeline;
        if (self.held_before || !lower_claim) && !self.holder_is_standby(eni) {
            let since = match &next.cloud.other_since {
                Some((held_by, at)) if held_by == eni => *at,
                _ => self.obs.now,
            };
            let until = since + self.cp.consistency_bound;
            if self.obs.now < until {
                next.cloud.settled = Some((
                    tl,
                    Settled::Settling {
                        holder: eni.to_owned(),
                        until,
                    },
                ));
                return self.settling(eni, until);
            }
        }
        self.take_over(next, eni)
    }

    /// Sequence 10: the PostgreSQL behind the holder's ENI answered this pass that it
    /// is a standby of our database system at no newer timeline than ours, and so did
    /// every other data node. A read of the holder may lag and hide a newer primary
    /// that took the VIP since; but a newer primary is one of those nodes, and none is
    /// writable, nor on a newer timeline (a demoted one not rewound). Any node that
    /// cannot be asked, or will not say its timeline, proves nothing: the wait stays.
    fn holder_is_standby(&self, eni: &str) -> bool {
        let HolderPg::Asked {
            eni: asked,
            answers,
        } = &self.obs.holder_pg
        else {
            return false;
        };
        let standby = |a: &PeerAnswer| match a {
            PeerAnswer::Answered {
                in_recovery: true,
                system_id: Some(theirs),
                timeline,
            } => {
                self.obs.system_id == Some(*theirs)
                    && timeline.is_some_and(|t| t <= self.ours.timeline)
            }
            _ => false,
        };
        asked == eni && standby(&answers.holder) && answers.others.iter().all(|(_, a)| standby(a))
    }

    fn settling(&self, holder: &str, until: Tick) -> (Vec<Step>, Verdict) {
        (
            vec![],
            Verdict::Ec2Settling {
                holder: holder.to_owned(),
                remaining_ms: u64::try_from(until.saturating_sub(self.obs.now).as_millis())
                    .unwrap_or(u64::MAX),
            },
        )
    }

    /// EC2 cannot be asked: never add a kernel address without a confirmation, and
    /// never remove one on an error: in EC2 mode the VPC delivers by the ENI mapping,
    /// so an address on this eligible node protects nobody by going and takes the
    /// database down if EC2 still delivers here (remove only on evidence: another
    /// holder we may not take from, a fence). CRITICAL after `cloud_unknown_hold`.
    fn cloud_unknown(
        &self,
        next: &Memory,
        reason: &str,
        needs_operator: bool,
    ) -> (Vec<Step>, Verdict) {
        let past_hold = next
            .cloud
            .me_at
            .is_none_or(|at| self.obs.now.saturating_sub(at) >= self.cp.cloud_unknown_hold);
        let keeping = !matches!(self.obs.kernel, KernelView::Absent);
        (
            vec![],
            Verdict::CloudUnknown {
                reason: reason.to_owned(),
                keeping,
                needs_operator,
                past_hold: keeping && past_hold,
            },
        )
    }
}
