#![allow(dead_code)]
//! Shared by the integration tests: fakes for loop-level tests, and the real-parts
//! harnesses (PostgreSQL + repmgr clusters, network namespaces, the EC2 emulator).

pub mod fake_imds;
pub mod fakes;
pub mod netns;
pub mod pg_cluster;
pub mod repmgrd_bed;
pub mod sampler;
pub mod soak;
pub mod soak_report;
pub mod testbed;
