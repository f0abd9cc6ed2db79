//! Builders the unit tests and the fuzz checks share (test and fuzz-checks builds
//! only): the test policies, the common PostgreSQL views and claims, and the one
//! place that builds an `Observation` (its fields grow). For the unit tests only: the
//! property tests' proptest config, fixed-seed sampling and `case_properties!`.

// The fuzz checks use only some of them.
#![cfg_attr(not(test), allow(dead_code))]

use std::time::Duration;

use crate::core::backoff::Backoff;
use crate::core::claim::Claim;
use crate::core::decide::{CloudPolicy, Eligibility, Policy};
use crate::core::observation::{
    ClaimTag, CloudView, HolderPg, KernelView, MarkView, Observation, PgRole, PgView, RepmgrSays,
};

/// An eligible primary's view at `timeline`.
pub(crate) fn primary(timeline: u32) -> PgView {
    primary_saying(timeline, RepmgrSays::SelfPrimary)
}

/// A writable PostgreSQL at `timeline` of which repmgr says `repmgr`.
pub(crate) fn primary_saying(timeline: u32, repmgr: RepmgrSays) -> PgView {
    PgView::Known {
        role: PgRole::Primary { timeline },
        repmgr,
    }
}

/// The claim of node `node_id` at `timeline` (no `system_id`).
pub(crate) fn claim_of(timeline: u32, node_id: i32) -> Claim {
    Claim {
        timeline,
        node_id,
        system_id: None,
    }
}

/// A standby's view.
pub(crate) fn standby() -> PgView {
    PgView::Known {
        role: PgRole::Standby,
        repmgr: RepmgrSays::SelfNotPrimary,
    }
}

/// One pass's observation at `now`: the marks read whenever EC2 is asked (none found, but a holder's own: its claim tag and its mark are written
/// together), no `system_id`.
pub(crate) fn observation(
    now: Duration,
    pg: PgView,
    kernel: KernelView,
    cloud: CloudView,
) -> Observation {
    Observation {
        now,
        pg,
        marks: match &cloud {
            CloudView::Disabled | CloudView::NotChecked => MarkView::NotRead,
            CloudView::Me {
                claim: ClaimTag::Valid(c),
            } => MarkView::Read { marks: vec![*c] },
            _ => MarkView::Read { marks: vec![] },
        },
        kernel,
        cloud,
        system_id: None,
        holder_pg: HolderPg::NotAsked,
        known_nodes: None,
        cluster_tag: None,
    }
}

/// `o` with the marks read as `marks` (where a test says what the marks showed).
pub(crate) fn with_marks(o: Observation, marks: MarkView) -> Observation {
    Observation { marks, ..o }
}

/// The timeline an eligible node acts at (what `settle` is given), `None` otherwise.
pub(crate) fn eligible_timeline(elig: &Eligibility) -> Option<u32> {
    match elig {
        Eligibility::Eligible { timeline } => Some(*timeline),
        _ => None,
    }
}

/// The property tests' proptest config: `default_cases` cases a property unless
/// `PROPTEST_CASES` says otherwise, failures kept in `proptest-regressions`.
#[cfg(test)]
pub(crate) fn proptest_config(default_cases: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, FileFailurePersistence};
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// A file's property tests: one `#[test]` a case strategy, each case run through
/// `$check` (returning `Result<_, TestCaseError>`), under the proptest config `$config`.
#[cfg(test)]
macro_rules! case_properties {
    ($config:expr, $check:path; $($(#[$meta:meta])* fn $name:ident(case in $strategy:expr);)+) => {
        proptest::proptest! {
            #![proptest_config($config)]
            $(
                $(#[$meta])*
                #[test]
                fn $name(case in $strategy) {
                    $check(&case)?;
                }
            )+
        }
    };
}
#[cfg(test)]
pub(crate) use case_properties;

/// `per_strategy` cases drawn from each of `strategies` in turn by one deterministic
/// runner (the fixed-seed samples the generator checks count over).
#[cfg(test)]
pub(crate) fn deterministic_sample<T: std::fmt::Debug>(
    strategies: Vec<proptest::strategy::BoxedStrategy<T>>,
    per_strategy: usize,
    mut each: impl FnMut(T),
) {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for strategy in strategies {
        for _ in 0..per_strategy {
            each(strategy.new_tree(&mut runner).unwrap().current());
        }
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
