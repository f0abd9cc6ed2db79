//! The pure core: what a pass saw (`observation`), what it decided (`plan`), the
//! claim tag's format (`claim`), backoff arithmetic (`backoff`) and the decision
//! itself with its policy and memory (`decide`). No I/O, no clock, no AWS strings:
//! everything here is table- and property-tested.

pub mod backoff;
pub mod claim;
pub mod decide;
pub mod observation;
pub mod plan;
#[cfg(any(test, feature = "fuzz-checks"))]
pub(crate) mod test_support;
