//! What a soak run's record (`soak::SoakRecord`) says: every interval with the VIP on
//! zero or two nodes at EC2 and in the kernels, per-round timings from the sampler,
//! the arbiters' memory, exits and log warnings, and the targets (pass / short).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::sampler::{PERIOD, Role, Sample};
use super::soak::{Kind, Round, SoakRecord};

/// A kernel double holder may last this long (the arbiter's 2 s follow budget).
pub const KERNEL_DOUBLE_MAX: Duration = Duration::from_secs(2);
/// RSS growth that counts as noise: the larger of 2 MiB and 10 % of the start.
pub const RSS_NOISE_KIB: u64 = 2048;
pub const RSS_NOISE_FRACTION: f64 = 0.10;

/// A run of consecutive samples in one state: from its first sample to the first sample
/// after it that is not (or its last sample, when the record ends inside it).
#[derive(Clone, Debug)]
pub struct Interval {
    /// "ec2-zero", "ec2-double", "kernel-zero" or "kernel-double".
    pub what: &'static str,
    pub start: Duration,
    pub end: Duration,
    /// The round the interval started in (None: before the first or between rounds).
    pub round: Option<usize>,
}

impl Interval {
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }
}

type Probe = fn(&Sample) -> Option<bool>;

const PROBES: [(&str, Probe); 4] = [
    // EC2 samples the emulator did not answer are skipped (counted apart).
    ("ec2-zero", |s| s.ec2.as_ref().map(Vec::is_empty)),
    ("ec2-double", |s| s.ec2.as_ref().map(|h| h.len() >= 2)),
    ("kernel-zero", |s| Some(s.kernels_holding() == 0)),
    ("kernel-double", |s| Some(s.kernels_holding() >= 2)),
];

pub fn intervals(samples: &[Sample], rounds: &[Round]) -> Vec<Interval> {
    let round_at = |t: Duration| {
        rounds
            .iter()
            .find(|r| r.start <= t && t < r.end)
            .map(|r| r.n)
    };
    let mut out = Vec::new();
    for (what, probe) in PROBES {
        let mut open: Option<Duration> = None;
        let mut last = None;
        for s in samples {
            let Some(hit) = probe(s) else { continue };
            last = Some(s.t);
            match (open, hit) {
                (None, true) => open = Some(s.t),
                (Some(start), false) => {
                    out.push(Interval {
                        what,
                        start,
                        end: s.t,
                        round: round_at(start),
                    });
                    open = None;
                }
                _ => {}
            }
        }
        if let (Some(start), Some(end)) = (open, last) {
            out.push(Interval {
                what,
                start,
                end,
                round: round_at(start),
            });
        }
    }
    out.sort_by_key(|i| i.start);
    out
}

/// From the sampler, for one round: (new primary out of recovery, VIP on exactly it at
/// EC2 and in its kernel and gone from the other kernel), both from the round's start.
fn round_times(
    samples: &[Sample],
    r: &Round,
    enis: &[String; 2],
) -> (Option<Duration>, Option<Duration>) {
    let (to, from) = (r.to as usize - 1, r.from as usize - 1);
    let within = || samples.iter().filter(|s| s.t >= r.start && s.t <= r.end);
    let promoted = within()
        .find(|s| s.role[to] == Role::Primary && s.role[from] != Role::Primary)
        .map(|s| s.t);
    let vip = promoted.and_then(|p| {
        within()
            .find(|s| s.t >= p && s.ec2_is(&[&enis[to]]) && s.kernel[to] && !s.kernel[from])
            .map(|s| s.t)
    });
    (promoted.map(|t| t - r.start), vip.map(|t| t - r.start))
}

pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

pub fn stats(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    json!({"n": v.len(), "min": v[0], "p50": pct(0.5), "p95": pct(0.95), "max": v[v.len() - 1]})
}

/// WARN / ERROR (and panic) lines of an arbiter log, grouped by their text with the
/// timestamp dropped and digits replaced by `#`: (level, text) -> (count, first line).
pub fn log_summary(log: &str) -> BTreeMap<(String, String), (usize, String)> {
    let mut out: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    for line in log.lines() {
        let mut words = line.split_whitespace();
        let (_time, level) = (words.next(), words.next().unwrap_or(""));
        let level = if line.contains("panicked at") {
            "PANIC"
        } else if level == "WARN" || level == "ERROR" {
            level
        } else {
            continue;
        };
        let rest: String = words.collect::<Vec<_>>().join(" ");
        let mut key = String::new();
        for c in rest.chars().take(200) {
            if c.is_ascii_digit() {
                if !key.ends_with('#') {
                    key.push('#');
                }
            } else {
                key.push(c);
            }
        }
        let e = out
            .entry((level.to_owned(), key))
            .or_insert((0, line.to_owned()));
        e.0 += 1;
    }
    out
}

pub struct Target {
    pub name: &'static str,
    pub pass: bool,
    pub detail: String,
}

pub struct SoakReport {
    pub json: Value,
    pub targets: Vec<Target>,
    pub text: String,
}

impl SoakReport {
    pub fn target(&self, name: &str) -> &Target {
        self.targets
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no target {name}"))
    }
}

pub fn report(rec: &SoakRecord) -> SoakReport {
    let ivs = intervals(&rec.samples, &rec.rounds);
    let kind_of = |n: Option<usize>| n.and_then(|n| rec.rounds.get(n - 1)).map(|r| r.kind);
    let longest = |what: &str, kind: Option<Kind>| {
        ivs.iter()
            .filter(|i| i.what == what && kind_of(i.round) == kind)
            .map(Interval::duration)
            .max()
            .map(secs)
    };
    let ec2_double_samples = rec
        .samples
        .iter()
        .filter(|s| s.ec2.as_ref().is_some_and(|h| h.len() >= 2))
        .count();
    let ec2_unanswered = rec.samples.iter().filter(|s| s.ec2.is_none()).count();
    let kernel_doubles: Vec<&Interval> = ivs.iter().filter(|i| i.what == "kernel-double").collect();
    let longest_kernel_double = kernel_doubles.iter().map(|i| i.duration()).max();
    let kernel_double_over = kernel_doubles
        .iter()
        .filter(|i| i.duration() > KERNEL_DOUBLE_MAX)
        .count();
    let max_gap = super::sampler::largest_gap(&rec.samples);

    let mut rounds_json = Vec::new();
    let mut round_s: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut promo_to_vip: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in &rec.rounds {
        let (promoted, vip) = round_times(&rec.samples, r, &rec.enis);
        round_s
            .entry(r.kind.name())
            .or_default()
            .push(secs(r.end - r.start));
        if let (Some(p), Some(v)) = (promoted, vip) {
            promo_to_vip
                .entry(r.kind.name())
                .or_default()
                .push(secs(v - p));
        }
        rounds_json.push(json!({
            "round": r.n, "kind": r.kind.name(), "from": r.from, "to": r.to,
            "start_s": secs(r.start), "end_s": secs(r.end), "duration_s": secs(r.end - r.start),
            "promoted_after_s": promoted.map(secs), "vip_on_new_primary_after_s": vip.map(secs),
            "converged": r.converged, "errors": r.errors,
        }));
    }

    let mut arbiters = Vec::new();
    let (mut exits, mut pid_changes, mut drops) = (0, 0, 0);
    let mut rss_ok = true;
    let mut rss_detail = Vec::new();
    let mut logs = Vec::new();
    for a in &rec.arbiters {
        exits += a.exits.len();
        pid_changes += a.pid_changes;
        drops += a.pass_count_drops;
        let growth = match (a.before.rss_kib, a.after.rss_kib) {
            (Some(b), Some(e)) => Some(e as i64 - b as i64),
            _ => None,
        };
        let allowed = a
            .before
            .rss_kib
            .map(|b| RSS_NOISE_KIB.max((b as f64 * RSS_NOISE_FRACTION) as u64));
        let ok = matches!((growth, allowed), (Some(g), Some(l)) if g <= l as i64);
        rss_ok &= ok;
        rss_detail.push(format!(
            "a{}: VmRSS {:?} -> {:?} kB (growth {:?}, noise {:?}), VmHWM {:?} -> {:?} kB",
            a.node,
            a.before.rss_kib,
            a.after.rss_kib,
            growth,
            allowed,
            a.before.hwm_kib,
            a.after.hwm_kib
        ));
        let summary: Vec<Value> = log_summary(&a.log)
            .into_iter()
            .map(|((level, text), (count, first))| json!({"level": level, "count": count, "text": text, "first": first}))
            .collect();
        logs.push(json!({"arbiter": format!("a{}", a.node), "warn_error_lines": summary}));
        arbiters.push(json!({
            "arbiter": format!("a{}", a.node), "pid_first": a.pid_first, "pid_last": a.pid_last,
            "vm_rss_kib_before": a.before.rss_kib, "vm_rss_kib_after": a.after.rss_kib,
            "vm_hwm_kib_before": a.before.hwm_kib, "vm_hwm_kib_after": a.after.hwm_kib,
            "rss_growth_kib": growth, "rss_noise_kib": allowed,
            "exits": a.exits, "pid_changes": a.pid_changes, "pass_count_drops": a.pass_count_drops,
            "series": a.series.iter().map(|(n, m)| json!({"round": n, "vm_rss_kib": m.rss_kib, "vm_hwm_kib": m.hwm_kib})).collect::<Vec<_>>(),
        }));
    }
    let converged = rec
        .rounds
        .iter()
        .filter(|r| r.converged && r.errors.is_empty())
        .count();
    let errors: Vec<Value> = rec
        .rounds
        .iter()
        .flat_map(|r| {
            r.errors
                .iter()
                .map(move |e| json!({"round": r.n, "error": e}))
        })
        .chain(
            rec.stopped_early
                .iter()
                .map(|e| json!({"round": null, "error": e})),
        )
        .collect();

    let targets = vec![
        Target {
            name: "ec2-double",
            pass: ec2_double_samples == 0,
            detail: format!(
                "{ec2_double_samples} samples with the VIP on two ENIs at EC2 (of {}; {ec2_unanswered} unanswered)",
                rec.samples.len()
            ),
        },
        Target {
            name: "kernel-double-2s",
            pass: kernel_double_over == 0,
            detail: format!(
                "{kernel_double_over} of {} kernel double-holder intervals longer than {KERNEL_DOUBLE_MAX:?}; longest {:?}",
                kernel_doubles.len(),
                longest_kernel_double.map(secs)
            ),
        },
        Target {
            name: "rss",
            pass: rss_ok,
            detail: rss_detail.join("; "),
        },
        Target {
            name: "restarts",
            pass: exits + pid_changes + drops == 0,
            detail: format!("{exits} exits, {pid_changes} pid changes, {drops} pass_count drops"),
        },
        Target {
            name: "rounds-converged",
            pass: converged == rec.plan.rounds() && rec.stopped_early.is_none(),
            detail: format!(
                "{converged} of {} planned rounds converged ({} run){}",
                rec.plan.rounds(),
                rec.rounds.len(),
                rec.stopped_early
                    .as_ref()
                    .map(|e| format!("; stopped early: {}", e.lines().next().unwrap_or("")))
                    .unwrap_or_default()
            ),
        },
    ];

    let count = |what: &str| ivs.iter().filter(|i| i.what == what).count();
    let summary = json!({
        "planned": {"switchovers": rec.plan.switchovers, "failovers": rec.plan.failovers},
        "rounds_run": rec.rounds.len(), "rounds_converged": converged, "stopped_early": rec.stopped_early,
        "elapsed_s": secs(rec.elapsed), "bed_up_s": secs(rec.bed_up), "loadavg_start_end": rec.load,
        "samples": rec.samples.len(), "sampler_period_ms": PERIOD.as_millis() as u64,
        "sampler_max_gap_s": secs(max_gap), "ec2_unanswered_samples": ec2_unanswered,
        "ec2_double_samples": ec2_double_samples,
        "intervals": {"ec2-zero": count("ec2-zero"), "ec2-double": count("ec2-double"), "kernel-zero": count("kernel-zero"), "kernel-double": count("kernel-double")},
        "longest_kernel_double_s": longest_kernel_double.map(secs),
        "kernel_double_over_2s": kernel_double_over,
        "longest_zero_s": {
            "switchover": {"ec2": longest("ec2-zero", Some(Kind::Switchover)), "kernel": longest("kernel-zero", Some(Kind::Switchover))},
            "failover": {"ec2": longest("ec2-zero", Some(Kind::Failover)), "kernel": longest("kernel-zero", Some(Kind::Failover))},
            "outside_rounds": {"ec2": longest("ec2-zero", None), "kernel": longest("kernel-zero", None)},
        },
        "round_s": round_s.into_iter().map(|(k, v)| (k.to_owned(), stats(v))).collect::<serde_json::Map<_, _>>(),
        "promotion_to_vip_s": promo_to_vip.into_iter().map(|(k, v)| (k.to_owned(), stats(v))).collect::<serde_json::Map<_, _>>(),
        "arbiter_exits": exits, "arbiter_pid_changes": pid_changes, "pass_count_drops": drops,
        "errors": errors.len(),
        "targets": targets.iter().map(|t| json!({"target": t.name, "pass": t.pass, "detail": t.detail})).collect::<Vec<_>>(),
    });
    let json = json!({
        "kind": "soak",
        "summary": summary,
        "arbiters": arbiters,
        "logs": logs,
        "errors": errors,
        "rounds": rounds_json,
        "intervals": ivs.iter().map(|i| json!({
            "what": i.what, "start_s": secs(i.start), "end_s": secs(i.end), "duration_s": secs(i.duration()),
            "round": i.round, "round_kind": kind_of(i.round).map(Kind::name),
        })).collect::<Vec<_>>(),
    });
    let text = text(&json, &targets);
    SoakReport {
        json,
        targets,
        text,
    }
}

/// The printed summary.
fn text(j: &Value, targets: &[Target]) -> String {
    let s = &j["summary"];
    let mut out = format!(
        "soak: {} of {} rounds converged in {} s (bed up in {} s); stopped early: {}\n\
         samples {} (max gap {} s, EC2 unanswered {}); EC2 double-holder samples {}\n\
         intervals {}; longest kernel double {} s\n\
         longest zero-holder {}\nround seconds {}\npromotion -> VIP seconds {}\n",
        s["rounds_converged"],
        s["rounds_run"],
        s["elapsed_s"],
        s["bed_up_s"],
        s["stopped_early"]
            .as_str()
            .and_then(|e| e.lines().next())
            .unwrap_or("no"),
        s["samples"],
        s["sampler_max_gap_s"],
        s["ec2_unanswered_samples"],
        s["ec2_double_samples"],
        s["intervals"],
        s["longest_kernel_double_s"],
        s["longest_zero_s"],
        s["round_s"],
        s["promotion_to_vip_s"],
    );
    for i in j["intervals"].as_array().into_iter().flatten() {
        if i["what"].as_str().is_some_and(|w| w.ends_with("double"))
            || i["duration_s"].as_f64().unwrap_or(0.0) > 2.0
        {
            out.push_str(&format!(
                "  {} {}..{} s ({} s) round {} {}\n",
                i["what"], i["start_s"], i["end_s"], i["duration_s"], i["round"], i["round_kind"]
            ));
        }
    }
    for l in j["logs"].as_array().into_iter().flatten() {
        for w in l["warn_error_lines"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {} {} x{}: {}\n",
                l["arbiter"], w["level"], w["count"], w["text"]
            ));
        }
    }
    for e in j["errors"].as_array().into_iter().flatten() {
        let first = e["error"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        out.push_str(&format!("  error (round {}): {first}\n", e["round"]));
    }
    for t in targets {
        out.push_str(&format!(
            "{:5} {}: {}\n",
            if t.pass { "pass" } else { "short" },
            t.name,
            t.detail
        ));
    }
    out
}
