//! `scripts/campaign`: the seeded fault campaign (docs/reliability.md, "Fault
//! campaign"; tests/e2e_campaign_short.rs is its short version). K steps on the
//! three-node + witness repmgrd bed, each a fault drawn from the seed
//! (tests/support/campaign.rs), the sampler and a client writing through the VIP
//! throughout; then the audit (tests/support/campaign_audit.rs). Writes the JSON
//! report and prints the summary. Exit status 1 if an audit rule fails, 2 on bad
//! arguments, 3 if the campaign stopped early with the audit passing.
//!
//! campaign --seed N --steps K [--wall-secs S (K × 120)] [--max-window-secs W (30)] --out FILE
//!
//! The daemon binary is VA_TEST_ARBITER_BIN (scripts/campaign builds it).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::campaign::{CampaignPlan, run};
use support::campaign_audit::audit;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str| arg(name).and_then(|v| v.parse::<u64>().ok());
    let (Some(seed), Some(steps), Some(out)) = (num("--seed"), num("--steps"), arg("--out")) else {
        eprintln!(
            "usage: campaign --seed N --steps K [--wall-secs S] [--max-window-secs W] --out FILE"
        );
        std::process::exit(2);
    };
    let wall = num("--wall-secs").unwrap_or(steps * 120);
    let max_window = num("--max-window-secs").unwrap_or(30).clamp(5, 600);
    let started = support::soak::utc_now();
    let rec = run(CampaignPlan {
        seed,
        steps: steps as usize,
        wall: Duration::from_secs(wall),
        max_window: Duration::from_secs(max_window),
    });
    let a = audit(&rec);
    let mut json = a.json.clone();
    json["started_utc"] = started.into();
    json["finished_utc"] = support::soak::utc_now().into();
    json["binary"] = support::testbed::arbiter_bin().into();
    json["cpus"] = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
        .into();
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("write {out}: {e}"));
    println!("{}results: {out}", a.text);
    if !a.passed() {
        std::process::exit(1);
    }
    if rec.stopped_early.is_some() {
        std::process::exit(3);
    }
}
