//! Builders the unit tests and the fuzz checks share (test and fuzz-checks builds
//! only): the test policies, the common PostgreSQL views and the one place that
//! builds an `Observation` (its fields grow).

// The fuzz checks use only some of them.
#![cfg_attr(not(test), allow(dead_code))]

use std::time::Duration;

use crate::core::backoff::Backoff;
use crate::core::decide::{CloudPolicy, Policy};
use crate::core::observation::{
    CloudView, KernelView, MarkView, Observation, PgRole, PgView, RepmgrSays,
};

/// An eligible primary's view at `timeline`.
pub(crate) fn primary(timeline: u32) -> PgView {
    PgView::Known {
        role: PgRole::Primary { timeline },
        repmgr: RepmgrSays::SelfPrimary,
    }
}

/// A standby's view.
pub(crate) fn standby() -> PgView {
    PgView::Known {
        role: PgRole::Standby,
        repmgr: RepmgrSays::SelfNotPrimary,
    }
}

/// One pass's observation at `now`: the marks read (and none found) whenever the
/// cloud side is enabled, no `system_id`.
pub(crate) fn observation(
    now: Duration,
    pg: PgView,
    kernel: KernelView,
    cloud: CloudView,
) -> Observation {
    Observation {
        now,
        pg,
        marks: match cloud {
            CloudView::Disabled => MarkView::NotRead,
            _ => MarkView::Read { marks: vec![] },
        },
        kernel,
        cloud,
        system_id: None,
    }
}

/// The unit tests' kernel-only policy: node 1, /32, a 10 s pg-unknown hold.
pub(crate) fn kernel_only() -> Policy {
    Policy {
        node_id: 1,
        prefix_len: 32,
        pg_unknown_hold: Duration::from_secs(10),
        cloud: None,
    }
}

/// The unit tests' EC2-mode policy: verify every 30 s, CRITICAL after 300 s
/// unknown, a 60 s consistency bound, a fence command.
pub(crate) fn with_cloud() -> Policy {
    Policy {
        cloud: Some(CloudPolicy {
            verify_interval: Duration::from_secs(30),
            cloud_unknown_hold: Duration::from_secs(300),
            consistency_bound: Duration::from_secs(60),
            backoff: Backoff::default(),
            fence_configured: true,
        }),
        ..kernel_only()
    }
}
