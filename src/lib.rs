//! vip-arbiter keeps a PostgreSQL virtual IP on the current repmgr primary: as an
//! EC2 secondary private IP on the primary's ENI and as an address on its NIC.
//!
//! Every pass observes (`observe`), decides (`decide`, pure) and acts (`act`).
//! See docs/architecture.md for the module map.

pub mod act;
pub mod adapters;
pub mod backoff;
pub mod claim;
pub mod decide;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod observation;
pub mod observe;
pub mod plan;
pub mod reconcile;
pub mod run_loop;
pub mod shutdown;
pub mod systemd_notify;
