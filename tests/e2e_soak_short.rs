//! The soak (issue 7) in short, for CI: the same core as `scripts/soak`
//! (tests/support/soak.rs) with 5 switchovers and 1 hard failover, sampler running
//! throughout. Asserts the targets: never two ENIs at EC2, no kernel double holder
//! longer than 2 s, no arbiter exit or restart, every round converged. (RSS growth is
//! judged by the long run only: a few rounds say nothing about it.)

mod support;

use support::soak::{SoakPlan, run};
use support::soak_report::report;

#[test]
fn soak_short_switchovers_and_a_failover_keep_the_targets() {
    let rec = run(SoakPlan {
        switchovers: 5,
        failovers: 1,
    });
    let rep = report(&rec);
    eprintln!("{}", rep.text);
    for name in [
        "ec2-double",
        "kernel-double-2s",
        "restarts",
        "rounds-converged",
    ] {
        let t = rep.target(name);
        assert!(
            t.pass,
            "target {name}: {}\n{}\nrounds: {:#}",
            t.detail, rep.text, rep.json["rounds"]
        );
    }
}
