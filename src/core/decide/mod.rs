//! THE decision: a pure function from what one pass saw (plus what earlier passes
//! remember) to the steps that make "the VIP lives where the primary is" true.
//!
//! No async, no I/O, no clock reads, no logging: time comes in as `Observation::now`
//! and randomness as `jitter`. docs/decision-table.md is the human-readable form of
//! this file and `tests.rs` checks it row by row.

use std::time::Duration;

use crate::core::backoff::Backoff;
use crate::core::claim::Claim;
use crate::core::observation::{
    CloudView, KernelView, MarkView, Observation, PgRole, PgView, RepmgrSays, Tick,
};
use crate::core::plan::{Event, Plan, Step, Verdict};

/// The configured rules `decide()` applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub node_id: i32,
    pub prefix_len: u8,
    /// How long to keep the kernel address while PostgreSQL is unknown (0 = release at
    /// once). Kernel-only mode releases after it; EC2 mode keeps the address while EC2
    /// shows no other holder and only turns CRITICAL after it.
    pub pg_unknown_hold: Duration,
    /// `None` = kernel-only mode.
    pub cloud: Option<CloudPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudPolicy {
    /// A converged node re-checks EC2 this often.
    pub verify_interval: Duration,
    /// How long EC2 may be unknown before a holder's verdict turns CRITICAL (the
    /// address is kept: in EC2 mode the VPC delivers by the ENI mapping).
    pub cloud_unknown_hold: Duration,
    pub backoff: Backoff,
    pub fence_configured: bool,
    /// How long EC2's reads may lag its writes (tags and address moves): a holder
    /// whose claim may not be visible yet is not taken from before it has been seen
    /// holding for this long.
    pub consistency_bound: Duration,
}

/// Whether this node may hold the VIP, from PostgreSQL and repmgr alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    Eligible { timeline: u32 },
    NotEligible(String),
    Unknown(String),
}

/// Eligible = reachable AND not in recovery AND repmgr.nodes names this node an
/// active primary (and no other active primary).
pub fn eligibility(pg: &PgView) -> Eligibility {
    match pg {
        PgView::Unknown(reason) => Eligibility::Unknown(reason.clone()),
        PgView::Known {
            role: PgRole::Standby,
            ..
        } => Eligibility::NotEligible("in recovery".into()),
        PgView::Known {
            role: PgRole::Primary { timeline },
            repmgr,
        } => match repmgr {
            RepmgrSays::SelfPrimary => Eligibility::Eligible {
                timeline: *timeline,
            },
            RepmgrSays::SelfNotPrimary => {
                Eligibility::NotEligible("not in recovery but repmgr says standby".into())
            }
            RepmgrSays::SelfInactive => {
                Eligibility::NotEligible("repmgr marks this primary inactive".into())
            }
            RepmgrSays::OtherPrimary(id) => {
                Eligibility::NotEligible(format!("repmgr names node {id} an active primary too"))
            }
            RepmgrSays::NotRegistered => {
                Eligibility::NotEligible("this node is not registered in repmgr.nodes".into())
            }
            RepmgrSays::NoMetadata => {
                Eligibility::NotEligible("repmgr.nodes does not exist".into())
            }
        },
    }
}

/// A conclusive cloud answer, remembered so a converged node need not ask again
/// until its next look is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Me,
    Stale {
        holder: String,
        holder_timeline: u32,
    },
    /// Another ENI holds the VIP without a visible claim that forbids a takeover, but
    /// it has not been seen holding for the consistency bound yet: look again every
    /// `SETTLING_LOOK`, take over at `until` at the earliest.
    Settling {
        holder: String,
        until: Tick,
    },
}

/// What the cloud side remembers between passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudMemory {
    /// Last time EC2 confirmed that our ENI holds the VIP.
    pub me_at: Option<Tick>,
    /// Last time EC2 answered at all.
    pub checked_at: Option<Tick>,
    /// The last conclusive answer and the timeline it was for.
    pub settled: Option<(u32, Settled)>,
    /// Consecutive failed cloud calls, and when the next one is allowed.
    pub failures: u32,
    pub retry_at: Option<Tick>,
    pub last_error: Option<String>,
    /// The timeline at which EC2 last confirmed this node as the holder.
    pub held_at: Option<u32>,
    /// The other ENI that held the VIP in the last answers, and since when.
    pub other_since: Option<(String, Tick)>,
    /// When this node last assigned the VIP to itself (verified or not: the verify's
    /// read may lag the assign).
    pub took_at: Option<Tick>,
    /// "Me" confirmations since then: the re-verify schedule (1, 2, 4 … s).
    pub reverify: u32,
    /// This node's last claim that EC2 accepted (whether or not the takeover it began
    /// was verified): it counts as our own mark does, before the mark is visible.
    pub claimed_at: Option<Claim>,
}

impl CloudMemory {
    /// Did EC2's last answer say "me" at this timeline?
    fn last_answer_me(&self, timeline: u32) -> bool {
        self.held_at == Some(timeline) && self.me_at.is_some() && self.me_at == self.checked_at
    }
}

/// The claim that fenced this node, and where it was seen. Sticky: it outlives any
/// pass that cannot see the claim (EC2 unknown, throttled, the mark momentarily
/// invisible) and a daemon restart (the loop persists it); it lifts only when this
/// node's timeline passes it, or when an operator runs `vip-arbiter unfence`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fenced {
    pub by: Claim,
    pub holder: String,
}

/// What `decide()` carries from one pass to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// When PostgreSQL became unknown (the hold runs from here).
    pub pg_unknown_since: Option<Tick>,
    /// The hold ran out (or was cut short) and the address was released.
    pub pg_hold_released: bool,
    /// The stale-primary incident in progress (the fence command ran once for it).
    pub fenced: Option<Fenced>,
    /// When this node was first seen out of recovery while repmgr still named it a
    /// standby: a promotion whose metadata has not caught up yet.
    pub promotion_seen_at: Option<Tick>,
    pub cloud: CloudMemory,
}

/// After `repmgr standby promote` the server leaves recovery about one
/// `promote_check_interval` (1 s at least) before repmgr records it as primary; only
/// then is the node eligible. For this long after first seeing that state a pass looks
/// again after `FOLLOW_INTERVAL` rather than the configured interval, so the takeover
/// starts within a fraction of a second of repmgr's write, kick or no kick. Bounded:
/// a node left in that state (repmgr never catches up) goes back to the normal pace.
pub const PROMOTION_FOLLOW: Duration = Duration::from_secs(10);
/// The pace while following a promotion (the fastest interval the config allows).
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);
/// While settling (waiting out EC2's lag before a takeover), look this often.
pub const SETTLING_LOOK: Duration = Duration::from_secs(5);

/// Out of recovery while this node's `repmgr.nodes` still calls it a standby.
fn promotion_pending(pg: &PgView) -> bool {
    matches!(
        pg,
        PgView::Known {
            role: PgRole::Primary { .. },
            repmgr: RepmgrSays::SelfNotPrimary,
        }
    )
}

/// After a takeover a holder re-checks EC2 after 1, 2, 4 … s, up to `verify_interval`:
/// a wrong move (a takeover that lagging reads allowed) is seen within seconds.
fn reverify_period(cloud: &CloudMemory, cp: &CloudPolicy) -> Duration {
    Duration::from_secs(1u64 << cloud.reverify.min(20)).min(cp.verify_interval)
}

/// Should this pass call DescribeNetworkInterfaces? Keeps a standby at zero calls and
/// a converged primary at one call per `verify_interval`.
pub fn cloud_due(
    elig: &Eligibility,
    kernel: &KernelView,
    mem: &Memory,
    now: Tick,
    policy: &Policy,
) -> bool {
    let Some(cp) = &policy.cloud else {
        return false;
    };
    if mem.cloud.retry_at.is_some_and(|at| now < at) {
        return false;
    }
    let age = mem.cloud.checked_at.map(|at| now.saturating_sub(at));
    let younger = |limit: Duration| age.is_some_and(|a| a < limit);
    match elig {
        Eligibility::NotEligible(_) => false,
        // Only to learn whether someone else took over: every pass during the hold,
        // then once per verify_interval.
        Eligibility::Unknown(_) => {
            if matches!(kernel, KernelView::Absent) {
                return false;
            }
            let long = mem
                .pg_unknown_since
                .is_some_and(|since| now.saturating_sub(since) >= policy.pg_unknown_hold);
            !(long && younger(cp.verify_interval))
        }
        Eligibility::Eligible { timeline } => {
            let fresh = match &mem.cloud.settled {
                Some((tl, settled)) if tl == timeline => match settled {
                    Settled::Me => younger(reverify_period(&mem.cloud, cp)),
                    Settled::Stale { .. } => younger(cp.verify_interval),
                    Settled::Settling { until, .. } => {
                        now < *until && younger(SETTLING_LOOK.min(cp.verify_interval))
                    }
                },
                _ => false,
            };
            !fresh
        }
    }
}

/// Should a look at EC2 also read the subnet's marks (DescribeTags)? Yes, unless this
/// node is a settled holder past its re-verify schedule and well past its takeover:
/// the steady state stays at one call per `verify_interval`.
pub fn marks_due(elig: &Eligibility, mem: &Memory, now: Tick, policy: &Policy) -> bool {
    let (Some(cp), Eligibility::Eligible { timeline }) = (&policy.cloud, elig) else {
        return false;
    };
    let steady_me = matches!(&mem.cloud.settled, Some((tl, Settled::Me)) if tl == timeline)
        && reverify_period(&mem.cloud, cp) >= cp.verify_interval
        && mem
            .cloud
            .took_at
            .is_none_or(|t| now.saturating_sub(t) >= cp.consistency_bound * 2);
    !steady_me
}

/// Decide one pass. Returns the plan and the memory for the next pass.
pub fn decide(obs: &Observation, mem: &Memory, policy: &Policy, jitter: u32) -> (Plan, Memory) {
    let mut next = mem.clone();
    let mut events = Vec::new();
    next.cloud = absorb_observation(&mem.cloud, obs, policy, jitter);
    let elig = eligibility(&obs.pg);
    next.promotion_seen_at = if promotion_pending(&obs.pg) {
        Some(mem.promotion_seen_at.unwrap_or(obs.now))
    } else {
        None
    };
    let look_again_soon = next
        .promotion_seen_at
        .is_some_and(|since| obs.now.saturating_sub(since) < PROMOTION_FOLLOW);
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

/// A fence lifts when this node's timeline passes the claim that fenced it.
fn lift_fence(elig: &Eligibility, next: &mut Memory, events: &mut Vec<Event>) -> bool {
    if let (Eligibility::Eligible { timeline }, Some(f)) = (elig, &next.fenced)
        && *timeline > f.by.timeline
    {
        events.push(Event::FenceLifted { by: f.by });
        next.fenced = None;
        return true;
    }
    false
}

/// PostgreSQL known again: the pg-unknown hold is over.
fn end_pg_hold(elig: &Eligibility, next: &mut Memory, events: &mut Vec<Event>) {
    if !matches!(elig, Eligibility::Unknown(_)) && next.pg_unknown_since.take().is_some() {
        if !next.pg_hold_released {
            events.push(Event::PgUnknownHoldEnded { released: false });
        }
        next.pg_hold_released = false;
    }
}

/// A new stale-primary incident (this pass fenced a node that was not fenced, or
/// whose old fence just lifted): log once, run the fence command once.
fn start_stale_incident(
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

fn remove_unless_absent(kernel: &KernelView) -> Vec<Step> {
    match kernel {
        KernelView::Absent => vec![],
        _ => vec![Step::RemoveKernel],
    }
}

/// Not eligible: the address goes. A writable PostgreSQL here is a split brain or
/// broken metadata, never an OK standby.
fn not_eligible(obs: &Observation, reason: &str, recording: bool) -> (Vec<Step>, Verdict) {
    let reason = reason.to_owned();
    let steps = remove_unless_absent(&obs.kernel);
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
fn pg_unknown(
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
    let taken_elsewhere = matches!(obs.cloud, CloudView::Other { .. });
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

fn eligible_kernel_only(kernel: &KernelView, policy: &Policy) -> (Vec<Step>, Verdict) {
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

/// Does `claim` (another ENI's, or a mark) forbid `ours` from holding the VIP? A
/// claim of the same database system (or of an unknown one) with a higher timeline,
/// or with the same timeline from another node (two promotions from one timeline
/// have diverged), or our own node's with a higher timeline.
fn forbids(claim: &Claim, ours: &Claim) -> bool {
    !claim.is_foreign_to(ours.system_id)
        && (claim.timeline > ours.timeline
            || (claim.timeline == ours.timeline && claim.node_id != ours.node_id))
}

/// The claim-protocol rows: the fence, the subnet's marks and who holds the VIP at
/// EC2 decide what we may do.
fn eligible_with_cloud(
    obs: &Observation,
    next: &mut Memory,
    policy: &Policy,
    cp: &CloudPolicy,
    timeline: u32,
) -> (Vec<Step>, Verdict) {
    let ours = Claim {
        timeline,
        node_id: policy.node_id,
        system_id: obs.system_id,
    };
    let rules = CloudRules {
        obs,
        policy,
        cp,
        ours,
    };
    // 1. A fenced node stays fenced whatever this pass could see.
    if let Some(f) = next.fenced.clone() {
        return rules.stale(next, &f);
    }
    // 2. The holder's own claim, when it fences us (named by its ENI: what an operator
    //    looks for); then the subnet's marks, which outlive every ENI: another
    //    database system's blocks, a higher (or diverged) one fences.
    if let CloudView::Other { eni, claim } = &obs.cloud
        && let Some(c) = claim.valid()
        && !c.is_foreign_to(ours.system_id)
        && c.timeline >= timeline
    {
        let f = Fenced {
            by: c,
            holder: eni.clone(),
        };
        return rules.stale(next, &f);
    }
    if let MarkView::Read { marks } = &obs.marks {
        if let Some(m) = marks.iter().find(|m| m.is_foreign_to(ours.system_id)) {
            return rules.foreign(next, format!("the subnet's mark of node {}", m.node_id), *m);
        }
        if let Some(m) = marks
            .iter()
            .filter(|m| forbids(m, &ours))
            .max_by_key(|m| m.timeline)
        {
            let f = Fenced {
                by: *m,
                holder: format!("node {} (mark on the subnet)", m.node_id),
            };
            return rules.stale(next, &f);
        }
    }
    // 2b. Our own last claim, remembered, fences as our own mark does once visible
    //     (PostgreSQL came back on an older timeline than one we claimed at).
    if let Some(c) = next.cloud.claimed_at
        && forbids(&c, &ours)
    {
        let f = Fenced {
            by: c,
            holder: format!("node {} (this node's own claim)", c.node_id),
        };
        return rules.stale(next, &f);
    }
    // 3. The holder at EC2.
    match &obs.cloud {
        CloudView::Disabled => eligible_kernel_only(&obs.kernel, policy),
        CloudView::Me { claim } => match claim.valid() {
            Some(c) if c.is_foreign_to(ours.system_id) => {
                rules.foreign(next, "our own ENI's claim".to_owned(), c)
            }
            claim => rules.holding(next, claim == Some(ours)),
        },
        CloudView::Nobody => rules.take_from_nobody(next),
        CloudView::Other { eni, claim } => match claim.valid() {
            Some(c) if c.is_foreign_to(ours.system_id) => {
                rules.foreign(next, format!("{eni}'s claim"), c)
            }
            Some(c) if c.timeline >= timeline => {
                let f = Fenced {
                    by: c,
                    holder: eni.clone(),
                };
                rules.stale(next, &f)
            }
            evidence => rules.take_from(next, eni, evidence.is_some()),
        },
        CloudView::NotChecked => match next.cloud.settled.clone() {
            Some((tl, Settled::Me)) if tl == timeline => rules.holding(next, true),
            Some((tl, Settled::Settling { holder, until })) if tl == timeline => {
                rules.settling(&holder, until)
            }
            _ => {
                let why = next
                    .cloud
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "not yet confirmed".into());
                rules.cloud_unknown(next, &format!("backing off: {why}"), false)
            }
        },
        CloudView::Unknown { reason, kind, .. } => {
            rules.cloud_unknown(next, reason, kind.needs_operator())
        }
    }
}

/// The pieces of the claim protocol, over one pass's observation.
struct CloudRules<'a> {
    obs: &'a Observation,
    policy: &'a Policy,
    cp: &'a CloudPolicy,
    ours: Claim,
}

impl CloudRules<'_> {
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
        let mut steps = vec![];
        if !self.kernel_ok() {
            steps.push(self.add());
        }
        if !claim_current {
            steps.push(Step::WriteClaim(self.ours));
        } else {
            next.cloud.settled = Some((self.ours.timeline, Settled::Me));
        }
        next.cloud.held_at = Some(self.ours.timeline);
        let verdict = if steps.is_empty() {
            Verdict::Holding
        } else {
            Verdict::Acquiring
        };
        (steps, verdict)
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
        let me = matches!(self.obs.cloud, CloudView::Me { .. })
            || (matches!(self.obs.cloud, CloudView::NotChecked)
                && matches!(&next.cloud.settled, Some((tl, Settled::Me)) if *tl == self.ours.timeline));
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
        if let Some(took) = next.cloud.took_at {
            let until = took + self.cp.consistency_bound;
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
        let claimed_here = match &self.obs.marks {
            MarkView::Read { marks } => marks
                .iter()
                .any(|m| m.node_id == self.ours.node_id && m.timeline == tl),
            _ => false,
        };
        let held_here = next.cloud.held_at == Some(tl)
            || next.cloud.claimed_at == Some(self.ours)
            || claimed_here;
        if held_here || !lower_claim {
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

    /// EC2 cannot be asked: never add a kernel address without a confirmation. A node
    /// whose last answer was "me" keeps its address (in EC2 mode the VPC delivers by
    /// the ENI mapping: removing it protects nobody), CRITICAL after
    /// `cloud_unknown_hold`; any other node removes it.
    fn cloud_unknown(
        &self,
        next: &Memory,
        reason: &str,
        needs_operator: bool,
    ) -> (Vec<Step>, Verdict) {
        let cloud = &next.cloud;
        let was_holder = cloud.last_answer_me(self.ours.timeline);
        let past_hold = cloud
            .me_at
            .is_none_or(|at| self.obs.now.saturating_sub(at) >= self.cp.cloud_unknown_hold);
        let reason = reason.to_owned();
        let verdict = |keeping: bool| Verdict::CloudUnknown {
            reason: reason.clone(),
            keeping,
            needs_operator,
            past_hold: keeping && past_hold,
        };
        match (&self.obs.kernel, was_holder) {
            (KernelView::Absent, _) => (vec![], verdict(false)),
            (_, true) => (vec![], verdict(true)),
            (_, false) => (vec![Step::RemoveKernel], verdict(false)),
        }
    }
}

/// Fold this pass's cloud answer into memory (backoff on failure).
fn absorb_observation(
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

fn note_cloud_failure(mem: &mut CloudMemory, error: &str, now: Tick, policy: &Policy, jitter: u32) {
    mem.failures = mem.failures.saturating_add(1);
    let backoff = policy.cloud.as_ref().map(|c| c.backoff).unwrap_or_default();
    mem.retry_at = Some(now + backoff.delay(mem.failures, jitter));
    mem.last_error = Some(error.to_owned());
}

/// The outcome of carrying out one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub step: Step,
    pub error: Option<String>,
}

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
    // A claim or an assign that EC2 accepted counts even when a later step failed (a
    // verify whose read lags): remember the claim's timeline, and start the re-verify
    // schedule (1, 2, 4 … s, reading the marks) from the assign.
    for o in outcomes.iter().filter(|o| o.error.is_none()) {
        match &o.step {
            Step::WriteClaim(c) => next.cloud.claimed_at = Some(*c),
            Step::AssignCloud => {
                next.cloud.took_at = Some(now);
                next.cloud.reverify = 0;
                next.cloud.other_since = None;
            }
            _ => {}
        }
    }
    let is_cloud = |s: &Step| {
        matches!(
            s,
            Step::WriteClaim(_) | Step::AssignCloud | Step::VerifyCloud | Step::ReleaseCloud
        )
    };
    if let Some(failed) = outcomes
        .iter()
        .find(|o| is_cloud(&o.step) && o.error.is_some())
    {
        next.cloud.settled = None;
        let msg = failed.error.clone().unwrap_or_default();
        note_cloud_failure(&mut next.cloud, &msg, now, policy, jitter);
        return next;
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;

#[cfg(test)]
mod cluster_tests;

#[cfg(test)]
mod props_cluster;
