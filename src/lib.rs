//! vip-arbiter keeps a PostgreSQL virtual IP on the current repmgr primary: as an
//! EC2 secondary private IP on the primary's ENI and as an address on its NIC.
//!
//! Every pass observes (`observe`), decides (`decide`, pure) and acts (`act`).
//! See docs/architecture.md for the module map.

pub mod act;
pub mod adapters;
pub mod backoff;
pub mod claim;
pub mod cli;
pub mod client_socket;
pub mod cloud_setup;
pub mod config;
pub mod conninfo;
pub mod daemon;
pub mod decide;
pub mod fuzz_checks;
pub mod health;
pub mod health_client;
pub mod health_socket;
pub mod host_check;
pub mod http_request;
pub mod imds;
pub mod logging;
pub mod metrics;
pub mod observation;
pub mod observe;
pub mod pgpass;
pub mod plan;
pub mod plan_report;
pub mod reconcile;
pub mod repmgr_conf;
pub mod run_loop;
pub mod secret;
pub mod settings;
pub mod shutdown;
pub mod small_file;
pub mod socket_access;
pub mod systemd_notify;
