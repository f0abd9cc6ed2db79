#![allow(dead_code)]
//! Shared by the integration tests: fakes for loop-level tests, and the real-parts
//! harnesses (PostgreSQL + repmgr clusters, network namespaces, the EC2 emulator).

pub mod bed;
pub mod fake_imds;
pub mod fakes;
pub mod netns;
pub mod pg_cluster;
pub mod reaper;
pub mod repmgrd_bed;
pub mod sampler;
pub mod soak;
pub mod soak_report;
pub mod testbed;

/// Panics unless the test runs as root (euid 0), naming `what` needs it and why: a test
/// that needs root fails, never skips. The one root check of the suite.
pub fn require_root(what: &str) {
    let out = std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run `id -u`: {e}"));
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        uid, "0",
        "{what} needs root; euid is {uid} (run it as root via scripts/test)"
    );
}
