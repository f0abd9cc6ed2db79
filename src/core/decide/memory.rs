//! What `decide()` carries from one pass to the next.

use crate::core::claim::Claim;
use crate::core::observation::Tick;

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
    pub(super) fn last_answer_me(&self, timeline: u32) -> bool {
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
