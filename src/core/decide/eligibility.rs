//! Whether this node may hold the VIP, from PostgreSQL and repmgr alone.

use crate::core::observation::{PgRole, PgView, RepmgrSays};

/// Whether this node may hold the VIP, from PostgreSQL and repmgr alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    Eligible { timeline: u32 },
    NotEligible(String),
    Unknown(String),
}

/// The reason a witness is not eligible (its verdict is `witness`, OK).
pub const WITNESS: &str = "repmgr's witness never holds the VIP";

/// Eligible = reachable AND not in recovery AND repmgr.nodes names this node an
/// active primary (and no other active primary).
pub fn eligibility(pg: &PgView) -> Eligibility {
    match pg {
        PgView::Unknown(reason) => Eligibility::Unknown(reason.clone()),
        PgView::Known {
            role: PgRole::Standby,
            ..
        } => Eligibility::NotEligible("in recovery".into()),
        PgView::Known {
            role: PgRole::Primary { timeline },
            repmgr,
        } => match repmgr {
            RepmgrSays::SelfPrimary => Eligibility::Eligible {
                timeline: *timeline,
            },
            RepmgrSays::SelfNotPrimary => {
                Eligibility::NotEligible("not in recovery but repmgr says standby".into())
            }
            RepmgrSays::SelfWitness => Eligibility::NotEligible(WITNESS.into()),
            RepmgrSays::SelfInactive => {
                Eligibility::NotEligible("repmgr marks this primary inactive".into())
            }
            RepmgrSays::OtherPrimary(id) => {
                Eligibility::NotEligible(format!("repmgr names node {id} an active primary too"))
            }
            RepmgrSays::NotRegistered => {
                Eligibility::NotEligible("this node is not registered in repmgr.nodes".into())
            }
            RepmgrSays::NoMetadata => {
                Eligibility::NotEligible("repmgr.nodes does not exist".into())
            }
        },
    }
}

/// Out of recovery while this node's `repmgr.nodes` still calls it a standby.
pub(super) fn promotion_pending(pg: &PgView) -> bool {
    matches!(
        pg,
        PgView::Known {
            role: PgRole::Primary { .. },
            repmgr: RepmgrSays::SelfNotPrimary,
        }
    )
}
