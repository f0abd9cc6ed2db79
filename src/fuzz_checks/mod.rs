//! What the fuzz targets (fuzz/fuzz_targets/*.rs) check on hostile input: each
//! function takes arbitrary bytes, feeds them to one parser or handler exactly as the
//! daemon would, and asserts what must hold whatever the input (no panic, a clear
//! error, no takeover granted by a bad tag). A violated check panics, which is what
//! libFuzzer reports. `regressions` replays the seed corpus and every saved crash
//! through the same functions in the ordinary unit tests.
//!
//! Built only for the unit tests and with the `fuzz-checks` feature (which fuzz/
//! turns on), so none of it is in the shipped binary; the feature touches no
//! dependency's features, so nothing is built twice.

mod claim_tag;
mod config;
mod ec2_response;
mod http;
#[cfg(test)]
mod regressions;
mod repmgr_conf;

pub use claim_tag::claim_tag;
pub use config::config;
pub use ec2_response::{ec2_response, observe_canned};
pub use http::http;
pub use repmgr_conf::repmgr_conf;

/// One check: arbitrary bytes in, a panic if something that must hold does not.
pub type Check = fn(&[u8]);

/// Every target by name, for the replay test and scripts/fuzz.
pub const TARGETS: [(&str, Check); 5] = [
    ("config", config),
    ("repmgr_conf", repmgr_conf),
    ("http", http),
    ("claim_tag", claim_tag),
    ("ec2_response", ec2_response),
];
