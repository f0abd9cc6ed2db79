//! The fault campaign (docs/reliability.md, "Fault campaign") in short, for CI: the
//! same core as `scripts/campaign` (tests/support/campaign.rs) with a fixed seed and
//! nine steps, which the shuffled bag makes one of each fault kind: a crash of the
//! primary, a stale old primary restarted, a switchover, a partition, an EC2 error
//! window, a read lag, an arbiter SIGKILLed, kernel drift and EC2 drift, on the
//! three-node + witness bed with the sampler and a client writing through the VIP
//! throughout. Asserts the audit passes (no takeback, every arbiter move to the
//! newest primary, no write served by a stale primary, never two ENIs at EC2) and that
//! every step ran.

mod support;

use std::time::Duration;

use support::campaign::{CampaignPlan, FAULTS, run};
use support::campaign_audit::{audit, kinds_run};

const SEED: u64 = 7;

#[test]
fn campaign_short_every_fault_kind_once_and_the_audit_passes() {
    let rec = run(CampaignPlan {
        seed: SEED,
        steps: FAULTS.len(),
        wall: Duration::from_secs(150),
        max_window: Duration::from_secs(10),
    });
    let a = audit(&rec);
    eprintln!("{}", a.text);
    for r in &a.rules {
        assert!(
            r.pass,
            "audit rule {} failed ({} violations):\n{:#}\n{}",
            r.name,
            r.violations.len(),
            serde_json::Value::from(r.violations.clone()),
            a.text
        );
    }
    assert!(
        rec.stopped_early.is_none(),
        "the campaign stopped early: {:?}\n{}",
        rec.stopped_early,
        a.text
    );
    assert_eq!(
        kinds_run(&rec).len(),
        FAULTS.len(),
        "every kind ran\n{}",
        a.text
    );
}
