//! Builders the unit tests share (test builds only): the common PostgreSQL views
//! and the one place that builds an `Observation` (its fields grow).

use std::time::Duration;

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
