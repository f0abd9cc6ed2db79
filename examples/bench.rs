//! `scripts/bench`: measured figures, written to a JSON file (never asserted).
//!
//! bench convergence <mode> <promotions> <out.json>
//!     Alternating switchovers on the repmgrd testbed (EC2 mode). For each promotion:
//!     time from the new primary leaving recovery to (a) the VIP on its ENI at EC2,
//!     (b) the VIP in its kernel, (c) the VIP gone from the old primary's kernel.
//!     Modes: `poll` (default 1 s interval, no events), `kick` (1 s + repmgr's
//!     event_notification_command), `fastest` (100 ms, no events).
//! bench footprint <seconds> <out.json>
//!     One primary and one standby arbiter (EC2 mode) in steady state: RSS (VmHWM,
//!     VmRSS), CPU seconds, threads and open fds of the primary's arbiter at start
//!     and end; EC2 calls per node from the emulator's log, scaled to an hour.
//! bench startup <runs> <out.json>
//!     exec → READY=1 (NOTIFY_SOCKET), kernel-only and EC2 mode.
//!
//! The daemon binary is VA_TEST_ARBITER_BIN (scripts/bench builds it in release).

#[path = "../tests/support/mod.rs"]
mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::repmgrd_bed::{ArbiterConf, BedOptions, KICK_ARBITER, RepmgrdBed, VIP};
use support::sampler::{Role, Samples};
use support::testbed::{kernel_has, wait_until};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let out = match arg(1).as_str() {
        "convergence" => convergence(&arg(2), arg(3).parse().unwrap_or(20)),
        "footprint" => footprint(arg(2).parse().unwrap_or(600)),
        "startup" => startup(arg(2).parse().unwrap_or(10)),
        _ => {
            eprintln!(
                "usage: bench convergence poll|kick|fastest N OUT | footprint SECONDS OUT | startup RUNS OUT"
            );
            std::process::exit(2);
        }
    };
    let path = args.last().cloned().unwrap_or_default();
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&out).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("write {path}: {e}"));
    println!(
        "{}",
        serde_json::to_string_pretty(&out["summary"]).unwrap_or_default()
    );
}

fn stats(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    json!({"n": v.len(), "min": v[0], "p50": pct(0.5), "p95": pct(0.95), "max": v[v.len() - 1]})
}

fn convergence(mode: &str, promotions: usize) -> Value {
    let (interval, kick) = match mode {
        "poll" => ("1s", false),
        "kick" => ("1s", true),
        "fastest" => ("100ms", false),
        other => panic!("unknown mode {other}"),
    };
    let bed = RepmgrdBed::start(BedOptions {
        ssh: true,
        event_notification_command: kick.then(|| KICK_ARBITER.into()),
        ..BedOptions::default()
    });
    let ec2 = bed.start_ec2();
    let conf = ArbiterConf {
        interval,
        ec2: Some(&ec2),
        ..ArbiterConf::default()
    };
    let _a = [bed.start_arbiter(1, &conf), bed.start_arbiter(2, &conf)];
    wait_until(Duration::from_secs(20), "VIP on n1", || {
        ec2.holders() == [ec2.eni(1).to_owned()] && kernel_has(bed.ns(1), VIP)
    });
    let mut raw = Vec::new();
    let (mut to_ec2, mut to_kernel, mut old_gone) = (Vec::new(), Vec::new(), Vec::new());
    let mut takeover_calls = Vec::new();
    for i in 0..promotions {
        let (new, old) = if i % 2 == 0 { (2, 1) } else { (1, 2) };
        let sampler = bed.sampler(Some(&ec2), Duration::from_secs(120));
        ec2.emu.control("DELETE", "/_va/calls", None);
        bed.switchover_to(new);
        wait_until(
            Duration::from_secs(30),
            "VIP on the new primary only",
            || {
                ec2.holders() == [ec2.eni(new).to_owned()]
                    && kernel_has(bed.ns(new), VIP)
                    && !kernel_has(bed.ns(old), VIP)
            },
        );
        // Let the sampler record the converged state before stopping it.
        std::thread::sleep(Duration::from_millis(400));
        let rec = sampler.stop();
        // EC2 calls the new primary made for its takeover (from the emulator's log).
        let calls_new = ec2
            .emu
            .calls()
            .iter()
            .filter(|c| c["source"] == bed.addr(new))
            .count();
        takeover_calls.push(calls_new as f64);
        let (n, o) = ((new - 1) as usize, (old - 1) as usize);
        let promoted = rec.first_time(|s| s.role[n] == Role::Primary && s.role[o] != Role::Primary);
        let sample = promoted.map(|p| {
            let ms = |d: Option<Duration>| d.map(|d| d.saturating_sub(p).as_secs_f64() * 1000.0);
            let e = ms(rec.first_time_after(p, |s| s.ec2_is(&[ec2.eni(new)])));
            let k = ms(rec.first_time_after(p, |s| s.kernel[n]));
            let g = ms(rec.first_time_after(p, |s| !s.kernel[o]));
            (e, k, g)
        });
        if let Some((Some(e), Some(k), Some(g))) = sample {
            to_ec2.push(e);
            to_kernel.push(k);
            old_gone.push(g);
        }
        raw.push(
            json!({"promotion": i + 1, "new_primary": new, "ec2_calls_by_new_primary": calls_new,
            "ms": sample.map(|(e, k, g)| json!({"ec2": e, "kernel": k, "old_kernel_gone": g}))}),
        );
        eprintln!("promotion {}: {:?}", i + 1, sample);
    }
    json!({
        "kind": "convergence", "mode": mode, "interval": interval, "kick": kick, "sampler_resolution_ms": 100,
        "summary": {"mode": mode, "ec2_ms": stats(to_ec2), "kernel_ms": stats(to_kernel), "old_kernel_gone_ms": stats(old_gone), "ec2_calls_per_takeover": stats(takeover_calls)},
        "samples": raw,
    })
}

/// (VmHWM kB, VmRSS kB, threads, utime+stime seconds, open fds) of a process.
fn proc_figures(pid: u32) -> Value {
    let field = support::testbed::proc_status(pid);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    json!({
        "vm_hwm_kib": field("VmHWM:"), "vm_rss_kib": field("VmRSS:"),
        // What the resident set is made of: heap and stacks, pages of the binary.
        "rss_anon_kib": field("RssAnon:"), "rss_file_kib": field("RssFile:"),
        "threads": field("Threads:"), "cpu_seconds": cpu, "fds": fds,
    })
}

/// The footprint's EC2 budget counts from this long into its window: twice the default
/// consistency bound (the marks are read on every look for that long after a
/// takeover), and 30 s more.
const POST_TAKEOVER: Duration = Duration::from_secs(150);

fn footprint(seconds: u64) -> Value {
    let bed = RepmgrdBed::start(BedOptions::default());
    let ec2 = bed.start_ec2();
    let conf = ArbiterConf {
        interval: "1s",
        ec2: Some(&ec2),
        ..ArbiterConf::default()
    };
    let a1 = bed.start_arbiter(1, &conf);
    let a2 = bed.start_arbiter(2, &conf);
    wait_until(Duration::from_secs(20), "converged", || {
        a1.verdict() == "holding" && a2.verdict() == "standby"
    });
    std::thread::sleep(Duration::from_secs(5));
    let pid = a1.pid().expect("arbiter pid");
    ec2.emu.control("DELETE", "/_va/calls", None);
    let start = proc_figures(pid);
    let t0 = Instant::now();
    let t0_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    let mut series = Vec::new();
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(10));
        series.push(json!({"t": t0.elapsed().as_secs(), "proc": proc_figures(pid)}));
    }
    let end = proc_figures(pid);
    let secs = t0.elapsed().as_secs_f64();
    let hours = secs / 3600.0;
    let calls = ec2.emu.calls();
    let per_hour = |src: &str| calls.iter().filter(|c| c["source"] == src).count() as f64 / hours;
    // For twice the consistency bound after its takeover (which ended just before t0)
    // the holder re-checks after 1, 2, 4 … s and reads the marks on every look
    // (docs/decision-table.md): the steady state is what comes after that.
    let after = POST_TAKEOVER.as_secs_f64();
    let steady_per_hour = |src: &str| {
        let n = calls
            .iter()
            .filter(|c| {
                c["source"] == src && c["t"].as_f64().is_some_and(|t| t >= t0_epoch + after)
            })
            .count();
        n as f64 / ((secs - after).max(1.0) / 3600.0)
    };
    let cpu =
        end["cpu_seconds"].as_f64().unwrap_or(0.0) - start["cpu_seconds"].as_f64().unwrap_or(0.0);
    json!({
        "kind": "footprint", "seconds": secs, "interval": "1s", "binary": support::testbed::arbiter_bin(),
        "summary": {
            "steady_rss_kib": end["vm_rss_kib"], "steady_rss_anon_kib": end["rss_anon_kib"], "steady_rss_file_kib": end["rss_file_kib"], "peak_rss_kib": end["vm_hwm_kib"], "threads": end["threads"], "fds": end["fds"],
            "cpu_seconds_per_hour": cpu / secs * 3600.0, "cpu_percent_of_one_core": cpu / secs * 100.0,
            "ec2_calls_per_hour_primary": per_hour(bed.addr(1)), "ec2_calls_per_hour_standby": per_hour(bed.addr(2)),
            "ec2_calls_per_hour_primary_steady": steady_per_hour(bed.addr(1)), "ec2_calls_per_hour_standby_steady": steady_per_hour(bed.addr(2)),
            "steady_from_s": after,
        },
        "start": start, "end": end, "series": series,
    })
}

/// exec → READY=1, via a notify socket we own.
fn ready_after_exec(bed: &RepmgrdBed, conf: &ArbiterConf, dir: &std::path::Path) -> f64 {
    let path = dir.join(format!("notify-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let env_path = path.display().to_string();
    let t0 = Instant::now();
    let a = bed.start_arbiter_with_env(1, conf, &[("NOTIFY_SOCKET", &env_path)]);
    let mut buf = [0u8; 4096];
    let took = loop {
        let n = sock.recv(&mut buf).expect("READY within 20 s");
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            break t0.elapsed();
        }
    };
    drop(a);
    took.as_secs_f64() * 1000.0
}

fn startup(runs: usize) -> Value {
    let bed = RepmgrdBed::start(BedOptions::default());
    let ec2 = bed.start_ec2();
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel_only = ArbiterConf::default();
    let with_ec2 = ArbiterConf {
        ec2: Some(&ec2),
        ..ArbiterConf::default()
    };
    let a: Vec<f64> = (0..runs)
        .map(|_| ready_after_exec(&bed, &kernel_only, dir.path()))
        .collect();
    let b: Vec<f64> = (0..runs)
        .map(|_| ready_after_exec(&bed, &with_ec2, dir.path()))
        .collect();
    json!({
        "kind": "startup", "note": "exec of `ip netns exec … vip-arbiter run` to READY=1 (first completed pass), includes the namespace switch",
        "summary": {"kernel_only_ms": stats(a.clone()), "ec2_ms": stats(b.clone())},
        "kernel_only_ms": a, "ec2_ms": b,
    })
}
