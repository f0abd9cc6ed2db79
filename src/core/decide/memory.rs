//! What `decide()` carries from one pass to the next.

use crate::core::claim::Claim;
use crate::core::observation::Tick;

/// A conclusive cloud answer, remembered so a converged node need not ask again
/// until its next look is due.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// A claim of another database system blocks us (row 12/16): looked at again once
    /// per `verify_interval`, like any settled state. `me`: our ENI holds the VIP.
    Foreign {
        place: String,
        claim: Claim,
        me: bool,
    },
}

/// What the cloud side remembers between passes.
///
/// Everything a safety or liveness rule reads is journaled (`Memory::journaled`) and
/// survives a restart; the times are on a clock that survives one too (the loop's
/// `Tick` is boot time, and the journal adapter carries them across a reboot).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CloudMemory {
    /// Last time EC2 confirmed that our ENI holds the VIP.
    pub me_at: Option<Tick>,
    /// Last time EC2 answered at all.
    pub checked_at: Option<Tick>,
    /// The last conclusive answer and the timeline it was for.
    pub settled: Option<(u32, Settled)>,
    /// Consecutive passes with a failed cloud call, and when the next one is allowed.
    /// A good describe resets the count only when the failures were describes: a
    /// takeover that keeps failing keeps backing off (`absorb`, `settle`).
    pub failures: u32,
    /// The failures counted are of a takeover step (claim, assign, verify).
    pub failing_takeover: bool,
    pub retry_at: Option<Tick>,
    pub last_error: Option<String>,
    /// The timeline at which EC2 last confirmed this node as the holder.
    pub held_at: Option<u32>,
    /// The highest timeline at which this node ever held the VIP (EC2 confirmed it,
    /// or it assigned it, answered or not). Never cleared: another node's equal claim
    /// fences a node that held at that timeline (a diverged promotion took it).
    pub held_max: Option<u32>,
    /// Not eligible (a known standby) since `held_max` was last set: a promotion since
    /// then did not hold the VIP in place at an older timeline.
    pub left_primary: bool,
    /// The other ENI that held the VIP in the last answers, and since when.
    pub other_since: Option<(String, Tick)>,
    /// When this node last assigned the VIP to itself (verified or not: the verify's
    /// read may lag the assign) …
    pub took_at: Option<Tick>,
    /// … and at which timeline. A claim alone is not a takeover: an assign EC2
    /// refused never held the VIP here.
    pub took_timeline: Option<u32>,
    /// The last time a read showed another ENI holding the VIP (while eligible): for
    /// the bound after it a "nobody" may be a read from before that holder's newer
    /// claim, so nobody is not free yet.
    pub other_seen_at: Option<Tick>,
    /// "Me" confirmations since then: the re-verify schedule (1, 2, 4 … s).
    pub reverify: u32,
    /// This node's last claim that EC2 accepted (whether or not the takeover it began
    /// was verified): it counts as our own mark does, before the mark is visible.
    pub claimed_at: Option<Claim>,
    /// A prune of old marks failed: not tried again before then (`PRUNE_RETRY`).
    pub prune_after: Option<Tick>,
    /// The last read of the subnet's tags showed no `vip-arbiter-cluster` tag.
    pub untagged: bool,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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
    /// Started without a readable journal (`Memory::careful`, `Memory::fresh`): until
    /// then no takeover (for `fresh`, only while the subnet shows a mark of this node:
    /// it took the VIP before and its memory of when is lost).
    pub careful_until: Option<Tick>,
    /// The careful start does not end early when no mark of this node is visible
    /// (`Memory::careful`, not `Memory::fresh`).
    pub careful_strict: bool,
    /// The claim an operator cleared this node's fence from (`vip-arbiter unfence`):
    /// that claim no longer fences this node (a higher one does, as a new incident).
    pub overridden: Option<Claim>,
}

impl Memory {
    /// What the journal keeps: everything but the answers a fresh look replaces (the
    /// settled answer, the backoff, the last error, when EC2 last answered).
    pub fn journaled(&self) -> Memory {
        Memory {
            cloud: CloudMemory {
                checked_at: None,
                settled: None,
                failures: 0,
                failing_takeover: false,
                retry_at: None,
                last_error: None,
                prune_after: None,
                ..self.cloud.clone()
            },
            ..self.clone()
        }
    }

    /// The operator cleared the fence (`vip-arbiter unfence`): the claim that fenced
    /// this node fences it no more (a higher one does, as a new incident), the next
    /// pass looks at EC2 afresh, and our own remembered claim is forgotten (it would
    /// fence again at once; our visible mark still counts). Returns the cleared fence.
    pub fn unfence(&mut self) -> Option<Fenced> {
        self.cloud.settled = None;
        self.cloud.claimed_at = None;
        let f = self.fenced.take()?;
        self.overridden = Some(f.by);
        Some(f)
    }

    /// Every time this memory holds, moved by `f` (the journal carries them across a
    /// reboot, where the boot clock starts again).
    #[must_use]
    pub fn map_ticks(&self, f: impl Fn(Tick) -> Tick) -> Memory {
        let mut m = self.clone();
        let opt = |t: &mut Option<Tick>| *t = t.map(&f);
        opt(&mut m.pg_unknown_since);
        opt(&mut m.promotion_seen_at);
        opt(&mut m.careful_until);
        let c = &mut m.cloud;
        opt(&mut c.me_at);
        opt(&mut c.checked_at);
        opt(&mut c.retry_at);
        opt(&mut c.took_at);
        opt(&mut c.other_seen_at);
        opt(&mut c.prune_after);
        if let Some((_, since)) = &mut c.other_since {
            *since = f(*since);
        }
        if let Some((_, Settled::Settling { until, .. })) = &mut c.settled {
            *until = f(*until);
        }
        m
    }

    /// The memory of a daemon whose journal exists but cannot be read (corrupt, or
    /// only the fence of an older version): no takeover until the bound has passed
    /// since the start, whatever the marks show (a mark of this node younger than the
    /// bound may not be visible yet).
    pub fn careful(now: Tick, policy: &super::Policy) -> Memory {
        let Some(cp) = &policy.cloud else {
            return Memory::default();
        };
        Memory {
            careful_until: Some(now + cp.consistency_bound),
            careful_strict: true,
            // As if it had assigned the VIP to itself just before the start (it may
            // have): "nobody", and a holder seen within the bound, may be reads from
            // before that assign.
            cloud: CloudMemory {
                took_at: Some(now),
                ..CloudMemory::default()
            },
            ..Memory::default()
        }
    }

    /// The memory of a daemon with no journal yet (a first start, or the file
    /// deleted): careful only if the subnet shows a mark of this node (it claimed
    /// before, so its memory of when it held is gone); none, and it never claimed.
    pub fn fresh(now: Tick, policy: &super::Policy) -> Memory {
        Memory {
            careful_strict: false,
            ..Memory::careful(now, policy)
        }
    }
}
