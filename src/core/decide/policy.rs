//! The configured rules `decide()` applies.

use std::time::Duration;

use crate::core::backoff::Backoff;

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
