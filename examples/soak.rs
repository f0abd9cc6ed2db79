//! `scripts/soak`: the long run of issue 7 (not part of CI; tests/e2e_soak_short.rs is
//! its short version). N switchovers then M hard failovers on the repmgrd testbed with
//! both arbiters in EC2 mode and the sampler running throughout (tests/support/soak.rs);
//! writes the raw intervals, rounds and summary to a JSON file and prints the summary
//! with each target as pass / short. Exit status 1 if a target is short.
//!
//! soak <switchovers> <failovers> <out.json>
//!
//! The daemon binary is VA_TEST_ARBITER_BIN (scripts/soak builds it).

#[path = "../tests/support/mod.rs"]
mod support;

use support::soak::{SoakPlan, run};
use support::soak_report::report;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(s), Some(f), Some(out)) = (
        args.get(1).and_then(|a| a.parse().ok()),
        args.get(2).and_then(|a| a.parse().ok()),
        args.get(3),
    ) else {
        eprintln!("usage: soak SWITCHOVERS FAILOVERS OUT.json");
        std::process::exit(2);
    };
    let started = support::soak::utc_now();
    let rec = run(SoakPlan {
        switchovers: s,
        failovers: f,
    });
    let rep = report(&rec);
    let mut json = rep.json.clone();
    json["started_utc"] = started.into();
    json["finished_utc"] = support::soak::utc_now().into();
    json["binary"] = support::testbed::arbiter_bin().into();
    json["cpus"] = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
        .into();
    std::fs::write(out, serde_json::to_string_pretty(&json).unwrap_or_default())
        .unwrap_or_else(|e| panic!("write {out}: {e}"));
    println!("{}results: {out}", rep.text);
    if rep.targets.iter().any(|t| !t.pass) {
        std::process::exit(1);
    }
}
