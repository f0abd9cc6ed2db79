//! End-to-end scenario 1, failover: two PostgreSQL nodes in their own namespaces with
//! repmgrd on both, vip-arbiter on both; the primary crashes (`pg_ctl stop -m
//! immediate`) and repmgrd promotes the standby by itself. A sampler records EC2, both
//! kernels and both roles every 100 ms; the assertions are made on that record.
//!
//! repmgr's `event_notification_command` kicks the arbiters, as in production. The VIP
//! can follow only once repmgr has updated `repmgr.nodes`, which `repmgr standby
//! promote` does up to `promote_check_interval` (1 s, its minimum) after the server
//! left recovery: of the 2 s budget, about 1 s is repmgr's.

mod support;

use std::time::Duration;

use support::repmgrd_bed::{ArbiterConf, BedOptions, RepmgrdBed};
use support::sampler::{Role, Sample, Samples};
use support::testbed::{kernel_has, wait_until};

/// How long after an event the VIP must have followed it.
const FOLLOW: Duration = Duration::from_secs(2);
/// Bound on the whole failover as observed (repmgrd: 3 × 2 s of reconnects, then promote).
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);

/// After n1's crash: repmgrd on n2 says it promoted n2; when the record first saw n1
/// down and n2 primary.
fn promoted_by_repmgrd(bed: &RepmgrdBed, rec: &[Sample], table: &str) -> (Duration, Duration) {
    assert!(
        bed.repmgrd_log(2).contains("promoting standby to primary"),
        "repmgrd promoted n2:\n{}",
        bed.logs()
    );
    let down = rec
        .first_time(|s| s.role[0] == Role::Down)
        .unwrap_or_else(|| panic!("n1 never seen down\n{table}"));
    let promoted = rec
        .first_time(|s| s.role[1] == Role::Primary)
        .unwrap_or_else(|| panic!("n2 never seen primary\n{table}"));
    (down, promoted)
}

#[test]
fn failover_by_repmgrd_moves_the_vip_at_ec2_and_in_the_kernels() {
    // repmgr's events kick the arbiters (as postgres, through their sockets).
    let bed = RepmgrdBed::start(BedOptions::kicking());
    let ec2 = bed.start_ec2();
    // The hold (2 s) runs out well before repmgrd promotes (3 × 2 s of reconnects), as
    // with production's defaults (10 s against a minute): the crashed node keeps its
    // address past the hold, and must still give it up within FOLLOW of the EC2 move,
    // with verify_interval at its default (30 s).
    let conf = ArbiterConf {
        ec2: Some(&ec2),
        pg_unknown_hold: "2s",
        ..ArbiterConf::default()
    };
    let a1 = bed.start_arbiter(1, &conf);
    let a2 = bed.start_arbiter(2, &conf);
    let (eni1, eni2) = (ec2.eni(1).to_owned(), ec2.eni(2).to_owned());
    wait_until(
        Duration::from_secs(15),
        "VIP on n1 at EC2 and in its kernel",
        || ec2.holders() == [eni1.clone()] && kernel_has(bed.ns(1), support::repmgrd_bed::VIP),
    );
    wait_until(Duration::from_secs(5), "a1 holding, a2 standby", || {
        a1.verdict() == "holding" && a2.verdict() == "standby"
    });

    let sampler = bed.sampler(Some(&ec2), Duration::from_secs(90));
    bed.node(1).stop_immediate();
    // repmgrd on n2 promotes it; nobody promotes by hand.
    bed.wait_primary(2, FAILOVER_LIMIT);
    wait_until(
        Duration::from_secs(15),
        "VIP on n2 at EC2 and in its kernel, gone from n1's",
        || {
            ec2.holders() == [eni2.clone()]
                && kernel_has(bed.ns(2), support::repmgrd_bed::VIP)
                && !kernel_has(bed.ns(1), support::repmgrd_bed::VIP)
        },
    );
    // A few more samples of the settled state.
    std::thread::sleep(Duration::from_secs(2));
    let rec = sampler.stop();
    let table = rec.timeline();

    let (down, promoted) = promoted_by_repmgrd(&bed, &rec, &table);
    assert_eq!(rec.ec2_unanswered(), 0, "every sample asked EC2\n{table}");
    assert!(
        rec.double_ec2_samples().is_empty(),
        "VIP on two ENIs at EC2:\n{table}"
    );
    let on_n2 = rec
        .first_time_after(promoted, |s| s.ec2_is(&[&eni2]) && s.kernel[1])
        .unwrap_or_else(|| panic!("VIP never on n2 after its promotion\n{table}"));
    assert!(
        on_n2 - promoted <= FOLLOW,
        "VIP on n2 (EC2 + kernel) {:?} after it left recovery, more than {FOLLOW:?}\n{table}",
        on_n2 - promoted
    );
    let moves = rec.moves_at_ec2();
    assert_eq!(
        moves.iter().map(|m| m.1.clone()).collect::<Vec<_>>(),
        vec![vec![eni2.clone()]],
        "exactly one move at EC2, to n2\n{table}"
    );
    let moved = moves[0].0;
    let gone_n1 = rec
        .first_time_after(moved, |s| !s.kernel[0])
        .unwrap_or_else(|| panic!("VIP never left n1's kernel\n{table}"));
    assert!(
        gone_n1 - moved <= FOLLOW,
        "VIP left n1's kernel {:?} after the EC2 move, more than {FOLLOW:?}\n{table}",
        gone_n1 - moved
    );
    for span in rec.double_kernel_spans() {
        assert!(span <= FOLLOW, "VIP in both kernels for {span:?}\n{table}");
    }
    wait_until(Duration::from_secs(5), "a2 holding", || {
        a2.verdict() == "holding"
    });
    // repmgr's standby_promote event reached a2 as a kick (a pass triggered by it).
    assert!(
        a2.log_text().contains("trigger=\"kick\"") || a2.log_text().contains("trigger=kick"),
        "a2 was never kicked:\n{}",
        a2.log_text()
    );
    eprintln!(
        "bed up in {:?}; n1 down at {down:?}, n2 primary at {promoted:?} (+{:?}), VIP on n2 at \
         {on_n2:?} (+{:?}), gone from n1 at {gone_n1:?} (+{:?} after the EC2 move); double-kernel spans {:?}\n{table}",
        bed.times.total,
        promoted - down,
        on_n2 - promoted,
        gone_n1 - moved,
        rec.double_kernel_spans()
    );
}

#[test]
fn kernel_only_failover() {
    let bed = RepmgrdBed::start(BedOptions::kicking());
    // The hold (2 s) is shorter than repmgrd's detection (3 × 2 s of reconnects), so n1
    // lets go before n2 is promoted: never two kernels.
    let conf = ArbiterConf {
        pg_unknown_hold: "2s",
        ..ArbiterConf::default()
    };
    let a1 = bed.start_arbiter(1, &conf);
    let a2 = bed.start_arbiter(2, &conf);
    wait_until(Duration::from_secs(15), "VIP in n1's kernel", || {
        kernel_has(bed.ns(1), support::repmgrd_bed::VIP)
    });
    wait_until(Duration::from_secs(5), "a1 holding, a2 standby", || {
        a1.verdict() == "holding" && a2.verdict() == "standby"
    });
    assert!(!kernel_has(bed.ns(2), support::repmgrd_bed::VIP));

    let sampler = bed.sampler(None, Duration::from_secs(90));
    bed.node(1).stop_immediate();
    bed.wait_primary(2, FAILOVER_LIMIT);
    wait_until(Duration::from_secs(15), "VIP in n2's kernel only", || {
        kernel_has(bed.ns(2), support::repmgrd_bed::VIP)
            && !kernel_has(bed.ns(1), support::repmgrd_bed::VIP)
    });
    std::thread::sleep(Duration::from_secs(2));
    let rec = sampler.stop();
    let table = rec.timeline();

    let (down, promoted) = promoted_by_repmgrd(&bed, &rec, &table);
    let on_n2 = rec
        .first_time_after(promoted, |s| s.kernel[1])
        .unwrap_or_else(|| panic!("VIP never in n2's kernel\n{table}"));
    assert!(
        on_n2 - promoted <= FOLLOW,
        "VIP in n2's kernel {:?} after it left recovery, more than {FOLLOW:?}\n{table}",
        on_n2 - promoted
    );
    let gone_n1 = rec
        .first_time_after(down, |s| !s.kernel[0])
        .unwrap_or_else(|| panic!("VIP never left n1's kernel\n{table}"));
    assert!(
        gone_n1 - down <= Duration::from_secs(2) + FOLLOW,
        "VIP left n1's kernel {:?} after n1 went down: more than the 2 s hold + {FOLLOW:?}\n{table}",
        gone_n1 - down
    );
    assert!(
        rec.double_kernel_spans().is_empty(),
        "VIP in both kernels: {:?}\n{table}",
        rec.double_kernel_spans()
    );
    assert!(
        rec.iter().all(|s| s.ec2.is_none()),
        "no emulator, no EC2 column"
    );
    wait_until(Duration::from_secs(5), "a2 holding", || {
        a2.verdict() == "holding"
    });
    eprintln!(
        "bed up in {:?}; n1 down at {down:?}, n2 primary at {promoted:?} (+{:?}), VIP in n2's \
         kernel at {on_n2:?} (+{:?}), gone from n1's at {gone_n1:?} (+{:?} after n1 went down)\n{table}",
        bed.times.total,
        promoted - down,
        on_n2 - promoted,
        gone_n1 - down
    );
}
