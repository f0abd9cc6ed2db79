//! vip-arbiter keeps a PostgreSQL virtual IP on the current repmgr primary: as an
//! EC2 secondary private IP on the primary's ENI and as an address on its NIC.
//!
//! # Layout
//!
//! Every pass observes, decides (pure) and acts; the folders are those layers, and
//! a module only uses the ones listed before it (docs/architecture.md has the map
//! and the arrows).
//!
//! - [`core`]: the pure core. What a pass saw, the policy and the memory one pass
//!   hands to the next, `decide()` and its named rules, the plan, the claim tag
//!   and backoff. No I/O, no clock, no AWS strings.
//! - [`pass`]: one pass (`reconcile`) and the forever loop (`run_loop`), with the
//!   observer and actuator traits they drive.
//! - [`adapters`]: one module per external system behind those traits:
//!   PostgreSQL, netlink, EC2 (with its IMDS, set-up and self-test) and the
//!   operator's fence command.
//! - [`config`]: the raw config and its sources, validation into typed settings,
//!   conninfo, `.pgpass`, repmgr.conf and secrets.
//! - [`health`]: the health snapshot, the metrics, the unix-socket server and
//!   client, the one HTTP parser they share, and who may use the socket; the
//!   optional read-only TCP endpoint for load balancers and Prometheus (`[http]`).
//! - [`daemon`]: the composition root of `vip-arbiter run`, reload, shutdown,
//!   systemd and logging.
//! - [`cli`]: the command line and the verbs that are not the daemon (`plan`,
//!   `check-config`, `retire-claim`, the socket clients).
//! - [`fuzz_checks`]: what the fuzz targets (fuzz/) check, built only for the unit
//!   tests and with the `fuzz-checks` feature, never into the shipped binary.

pub mod adapters;
pub mod cli;
pub mod config;
pub mod core;
pub mod daemon;
#[cfg(any(test, feature = "fuzz-checks"))]
pub mod fuzz_checks;
pub mod health;
pub mod pass;
