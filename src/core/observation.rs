//! What one pass saw: plain data, no I/O.
//!
//! Every observer turns its failures into an explicit `Unknown(reason)` value, so
//! that "could not look" is never mistaken for "not primary" or "address absent".

use std::time::Duration;

use crate::core::claim::Claim;

/// Monotonic time since the daemon started. `decide()` never reads a clock;
/// the loop passes this in.
pub type Tick = Duration;

/// Local PostgreSQL as seen over the persistent connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgView {
    /// Connection failed, query timed out, or the answer made no sense.
    Unknown(String),
    Known {
        role: PgRole,
        repmgr: RepmgrSays,
    },
}

/// `pg_is_in_recovery()` and, when primary, the current timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgRole {
    Primary { timeline: u32 },
    Standby,
}

/// What this node's own `repmgr.nodes` says about this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepmgrSays {
    /// This node's row is `type = 'primary'`, `active`, and no other active primary row exists.
    SelfPrimary,
    /// This node's row exists but is a standby row.
    SelfNotPrimary,
    /// This node's row is repmgr's witness: a writable server that never holds the VIP.
    SelfWitness,
    /// This node's row is a primary row but `active = false`.
    SelfInactive,
    /// Another node's row is an active primary too (repmgr disagrees with itself).
    OtherPrimary(i32),
    /// No row for this node's `node_id`.
    NotRegistered,
    /// The `repmgr.nodes` table does not exist in the database we connect to.
    NoMetadata,
}

/// Whether the VIP is on the configured interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelView {
    Present { prefix_len: u8 },
    Absent,
    Unknown(String),
}

/// Which ENI EC2 says holds the VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudView {
    /// Kernel-only mode: there is no cloud side.
    Disabled,
    /// Not looked at this pass (API budget); `Memory` carries the last confirmation.
    NotChecked,
    /// Our own ENI holds it; `claim` is our own claim tag as EC2 has it.
    Me {
        claim: ClaimTag,
    },
    /// Another ENI of the subnet holds it.
    Other {
        eni: String,
        claim: ClaimTag,
    },
    Nobody,
    /// The call failed: `kind` is what the adapter made of it; `code` is the
    /// service's error code when there was one, for display only.
    Unknown {
        kind: FailureKind,
        code: Option<String>,
        reason: String,
    },
}

/// A claim tag as found on an ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimTag {
    Absent,
    Valid(Claim),
    /// Present but unreadable (hand-edited, truncated, hostile): treated as no claim.
    Invalid(String),
}

impl ClaimTag {
    pub fn valid(&self) -> Option<Claim> {
        match self {
            ClaimTag::Valid(c) => Some(*c),
            _ => None,
        }
    }
}

/// The high-water marks on the subnet: every node's highest claim for this VIP
/// (`claim::mark_key`). They outlive the ENIs, so a holder that vanished with its
/// instance still fences a stale primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkView {
    /// Not read this pass (`decide::marks_due` said no, or kernel-only mode).
    NotRead,
    /// Every valid mark found (an unreadable one is ignored, as an unreadable claim is).
    Read { marks: Vec<Claim> },
    /// DescribeTags failed: `kind` as for `CloudView::Unknown`; `code` (display
    /// only) is the service's error code when there was one.
    Unknown {
        kind: FailureKind,
        code: Option<String>,
        reason: String,
    },
}

/// One pass's inputs to `decide()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub now: Tick,
    pub pg: PgView,
    pub kernel: KernelView,
    pub cloud: CloudView,
    pub marks: MarkView,
    /// Local PostgreSQL's `system_identifier`, when known: claims carry it, so a
    /// claim of another database system is never compared by timeline.
    pub system_id: Option<u64>,
    /// The PostgreSQL of another holder's node, when this pass asked it (only when
    /// the answer could spare a wait: `decide::holder_to_ask`).
    pub holder_pg: HolderPg,
    /// Every node id in this node's `repmgr.nodes`, when read: the holder prunes the
    /// subnet's marks of node ids no longer in it (below the highest mark).
    pub known_nodes: Option<Vec<i32>>,
    /// Whether the subnet carries the `vip-arbiter-cluster` tag, when its tags were
    /// read this pass (with the marks).
    pub cluster_tag: Option<bool>,
}

/// What the PostgreSQL behind another holder's ENI, and every other data node, said
/// (issue 18, sequence 10): a holder whose server is provably a standby of this
/// cluster, while no other data node may be a newer primary, is taken from at once;
/// any other answer waits the bound, as before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HolderPg {
    /// Not asked this pass.
    #[default]
    NotAsked,
    /// Asked the server at the primary address of ENI `eni`, and the others.
    Asked { eni: String, answers: ClusterAnswer },
}

/// The holder's server and every other data node `repmgr.nodes` lists (not this
/// node, not the witness), each by a name for the log (`node 3 at 10.0.0.3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAnswer {
    pub holder: PeerAnswer,
    pub others: Vec<(String, PeerAnswer)>,
}

/// One answer of another node's PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAnswer {
    Answered {
        /// `pg_is_in_recovery()`.
        in_recovery: bool,
        /// Its `system_identifier`: the same database system as ours, or not.
        system_id: Option<u64>,
        /// The newest timeline it shows (its WAL receiver's, else its last
        /// checkpoint's), when it may say: a standby of a newer timeline than ours is
        /// evidence of a newer primary, not of a free VIP.
        timeline: Option<u32>,
    },
    /// No address for the ENI, no connection, no answer in time, an error.
    Unreachable(String),
}

/// What a failed call means for the decision, as the adapter that made the call
/// classified it (the core never reads a service's error codes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailureKind {
    /// Worth retrying: a timeout, a transport error, a server error, an answer that
    /// made no sense.
    #[default]
    Transient,
    /// The service asked us to slow down: retried with backoff, as transient ones are.
    Throttled,
    /// No retry will fix it: an operator must act (a missing permission, bad
    /// credentials). Verdicts with it are CRITICAL.
    NeedsOperator,
    /// The service does not show the resource (yet): a wrong id, or one that is not
    /// visible yet. Start-up waits for it; a pass treats it as needing an operator.
    NotFound,
}

impl FailureKind {
    /// Does this failure need an operator (a CRITICAL verdict)?
    pub fn needs_operator(self) -> bool {
        matches!(self, FailureKind::NeedsOperator | FailureKind::NotFound)
    }
}
