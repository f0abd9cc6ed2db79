//! What a fault campaign's record says (docs/reliability.md, "Fault campaign"): the
//! audit's rules, each pass or FAIL with its violations as evidence, the unserved
//! time per fault kind, and the JSON report.
//!
//! Times are sampler times. Sources: the sampler's record (EC2's true holders, each
//! kernel, each data node's role and a primary's timeline, every 100 ms nominal), the
//! client's write attempts through the VIP (each successful one names the server's
//! data directory and its timeline, as the server itself reports them), and the
//! emulator's call log (every successful `AssignPrivateIpAddresses`, with its source
//! address: a node's arbiter, or the hub when the campaign moved the VIP by hand).
//!
//! * **newest primary** in a sample: a data node out of recovery whose timeline is the
//!   highest among the data nodes out of recovery in that sample.
//! * `no-takeback`: for every change of the single EC2 holder from node A to node B
//!   seen by the sampler (not one the campaign made by hand: the latest successful
//!   assign to B's ENI at or before the change came from the hub), B's timeline as
//!   last seen as a primary (up to `SLACK` after the change) must not be lower than
//!   A's as last seen as a primary before the change. A node never seen as a primary
//!   is not judged here (the next rule is).
//! * `moves-to-newest-primary`: every successful `AssignPrivateIpAddresses` an arbiter
//!   made (source a node's address) must name the ENI of a node X that was the newest
//!   primary in some sample within [call − W, call + `SLACK`]: W = `VIEW_AGE` (a pass,
//!   the kick, the claim's calls) normally, and W = `consistency_bound` for a call made
//!   while a lag rule was in force or up to `consistency_bound` after it was cleared
//!   (the arbiter may have acted on an EC2 view that old; it is judged against the
//!   truth at that time).
//! * `no-stale-write`: a write the client got through the VIP, served on timeline T,
//!   fails the audit if before the write began a node on a higher timeline was seen
//!   as the newest primary AND the single EC2 holder in the same sample; "before" by
//!   the time that sample's EC2 answer came back (`Sample::ec2_t`: EC2 is read last,
//!   so the sample's own `t` may precede the move it shows by the time the kernels
//!   and roles took; seed 913859869 step 7 was such a write, begun 57 ms after `t`
//!   and before the move).
//! * `ec2-double`: no sample with the VIP on two ENIs at EC2 (the soak's target).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::campaign::{CampaignRecord, FAULTS, Fault};
use super::sampler::{Role, Sample};
use super::soak_report::{log_summary, secs, stats};

/// How old the view behind an arbiter's move may be without a lag fault.
pub const VIEW_AGE: Duration = Duration::from_secs(3);
/// Sampling slack after an event (a sample period, stretched under load).
pub const SLACK: Duration = Duration::from_secs(1);
/// Violations kept per rule in the report.
const KEEP: usize = 20;

pub struct Rule {
    pub name: &'static str,
    pub pass: bool,
    pub checked: usize,
    pub violations: Vec<Value>,
}

pub struct Audit {
    pub rules: Vec<Rule>,
    pub json: Value,
    pub text: String,
}

impl Audit {
    pub fn passed(&self) -> bool {
        self.rules.iter().all(|r| r.pass)
    }

    pub fn rule(&self, name: &str) -> &Rule {
        self.rules
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no rule {name}"))
    }
}

struct View<'a> {
    rec: &'a CampaignRecord,
}

impl View<'_> {
    fn node_of_eni(&self, eni: &str) -> Option<u32> {
        self.rec
            .enis
            .iter()
            .position(|e| e == eni)
            .map(|i| i as u32 + 1)
    }

    /// The data node whose data directory is `dir` (what the client's write reports).
    fn node_of_dir(&self, dir: &str) -> Option<u32> {
        (1..=self.rec.data_nodes).find(|id| dir.ends_with(&format!("/node{id}/data")))
    }

    fn node_of_addr(&self, addr: &str) -> Option<u32> {
        self.rec
            .addrs
            .iter()
            .position(|a| a == addr)
            .map(|i| i as u32 + 1)
    }

    /// The sample's single EC2 holder, as a node id.
    fn holder(&self, s: &Sample) -> Option<u32> {
        match s.ec2.as_deref() {
            Some([one]) => self.node_of_eni(one),
            _ => None,
        }
    }

    /// (highest timeline among the primaries, the nodes on it) in a sample.
    fn newest(s: &Sample) -> Option<(u32, Vec<u32>)> {
        let tl = s
            .role
            .iter()
            .zip(&s.timeline)
            .filter(|(r, _)| **r == Role::Primary)
            .filter_map(|(_, t)| *t)
            .max()?;
        let nodes = s
            .role
            .iter()
            .zip(&s.timeline)
            .enumerate()
            .filter(|(_, (r, t))| **r == Role::Primary && **t == Some(tl))
            .map(|(i, _)| i as u32 + 1)
            .collect();
        Some((tl, nodes))
    }

    /// Node `id`'s timeline as last seen as a primary at or before `t`.
    fn primary_tl(&self, id: u32, t: Duration) -> Option<u32> {
        let i = id as usize - 1;
        self.rec
            .samples
            .iter()
            .rev()
            .filter(|s| s.t <= t && s.role.get(i) == Some(&Role::Primary))
            .find_map(|s| s.timeline[i])
    }

    fn at(&self, call: &Value) -> Option<Duration> {
        let t = call["t"].as_f64()? - self.rec.sampler_unix0;
        (t >= 0.0).then(|| Duration::from_secs_f64(t))
    }

    /// Successful AssignPrivateIpAddresses: (sampler time, source, target node).
    fn assigns(&self) -> Vec<(Duration, String, Option<u32>)> {
        self.rec
            .calls
            .iter()
            .filter(|c| c["action"] == "AssignPrivateIpAddresses" && c["status"] == 200)
            .filter_map(|c| {
                let t = self.at(c)?;
                let eni = c["params"]["NetworkInterfaceId"].as_str().unwrap_or("");
                Some((
                    t,
                    c["source"].as_str().unwrap_or("").to_owned(),
                    self.node_of_eni(eni),
                ))
            })
            .collect()
    }

    fn sample_text(&self, s: &Sample) -> Value {
        json!({
            "t": secs(s.t),
            "ec2": s.ec2.as_ref().map(|h| h.iter().map(|e| self.node_of_eni(e).map_or(e.clone(), |n| self.rec.shorts[n as usize - 1].clone())).collect::<Vec<_>>()),
            "kernel": s.kernel,
            "role": s.role.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>(),
            "timeline": s.timeline,
        })
    }

    fn around(&self, from: Duration, to: Duration) -> Vec<Value> {
        let mut last: Option<&Sample> = None;
        let mut out = Vec::new();
        for s in self.rec.samples.iter().filter(|s| s.t >= from && s.t <= to) {
            let same = last.is_some_and(|l| {
                l.ec2 == s.ec2
                    && l.kernel == s.kernel
                    && l.role == s.role
                    && l.timeline == s.timeline
            });
            if !same {
                out.push(self.sample_text(s));
                last = Some(s);
            }
        }
        out
    }

    fn step_at(&self, t: Duration) -> Option<usize> {
        self.rec
            .steps
            .iter()
            .find(|s| s.start <= t && t < s.end)
            .map(|s| s.n)
    }
}

fn no_takeback(v: &View) -> Rule {
    let assigns = v.assigns();
    let mut checked = 0;
    let mut violations = Vec::new();
    let mut prev: Option<(Duration, u32)> = None;
    for s in &v.rec.samples {
        let Some(h) = v.holder(s) else { continue };
        if let Some((_, a)) = prev
            && a != h
        {
            let by_hand = assigns
                .iter()
                .rfind(|(t, _, to)| *t <= s.t + SLACK && *to == Some(h))
                .is_some_and(|(_, src, _)| *src == v.rec.hub_ip);
            let (ta, tb) = (v.primary_tl(a, s.t), v.primary_tl(h, s.t + SLACK));
            if !by_hand && let (Some(ta), Some(tb)) = (ta, tb) {
                checked += 1;
                if tb < ta {
                    violations.push(json!({
                        "t": secs(s.t), "step": v.step_at(s.t),
                        "from": format!("n{a}"), "from_timeline": ta,
                        "to": format!("n{h}"), "to_timeline": tb,
                        "samples": v.around(s.t.saturating_sub(Duration::from_secs(3)), s.t + SLACK),
                    }));
                }
            }
        }
        prev = Some((s.t, h));
    }
    rule("no-takeback", checked, violations)
}

fn moves_to_newest(v: &View) -> Rule {
    let bound = super::campaign::CONSISTENCY_BOUND;
    let mut checked = 0;
    let mut violations = Vec::new();
    for (t, src, to) in v.assigns() {
        if src == v.rec.hub_ip {
            continue;
        }
        checked += 1;
        let lagged = v
            .rec
            .lag_windows
            .iter()
            .any(|(a, b)| *a <= t && t <= *b + bound);
        let w = if lagged { bound } else { VIEW_AGE };
        let ok = to.is_some_and(|x| {
            v.rec
                .samples
                .iter()
                .filter(|s| s.t + w >= t && s.t <= t + SLACK)
                .any(|s| View::newest(s).is_some_and(|(_, n)| n.contains(&x)))
        });
        if !ok {
            violations.push(json!({
                "t": secs(t), "step": v.step_at(t), "source": src,
                "source_node": v.node_of_addr(&src).map(|n| format!("n{n}")),
                "to": to.map(|n| format!("n{n}")), "window_s": secs(w), "lag": lagged,
                "samples": v.around(t.saturating_sub(w), t + SLACK),
            }));
        }
    }
    rule("moves-to-newest-primary", checked, violations)
}

fn no_stale_write(v: &View) -> Rule {
    // First time each timeline was seen as the newest primary holding the VIP at EC2.
    let mut held: BTreeMap<u32, Duration> = BTreeMap::new();
    for s in &v.rec.samples {
        if let (Some(h), Some((tl, nodes))) = (v.holder(s), View::newest(s))
            && nodes.contains(&h)
        {
            held.entry(tl).or_insert(s.ec2_t);
        }
    }
    let mut checked = 0;
    let mut violations = Vec::new();
    for w in &v.rec.writes {
        let Ok((dir, tl)) = &w.served else { continue };
        checked += 1;
        if let Some((newer, at)) = held.range(tl + 1..).find(|(_, at)| **at < w.t) {
            violations.push(json!({
                "t": secs(w.t), "step": v.step_at(w.t),
                "served_by": v.node_of_dir(dir).map(|n| format!("n{n}")), "data_dir": dir,
                "served_timeline": tl, "newer_timeline": newer,
                "newer_held_vip_since": secs(*at),
                "samples": v.around(w.t.saturating_sub(Duration::from_secs(2)), w.t + w.took + SLACK),
            }));
        }
    }
    rule("no-stale-write", checked, violations)
}

fn ec2_double(v: &View) -> Rule {
    let mut violations = Vec::new();
    let mut checked = 0;
    for s in &v.rec.samples {
        if s.ec2.is_some() {
            checked += 1;
        }
        if s.ec2.as_ref().is_some_and(|h| h.len() >= 2) {
            violations.push(v.sample_text(s));
        }
    }
    rule("ec2-double", checked, violations)
}

fn rule(name: &'static str, checked: usize, violations: Vec<Value>) -> Rule {
    Rule {
        name,
        pass: violations.is_empty(),
        checked,
        violations,
    }
}

/// Unserved time (no write got through) per step: (total, longest run). Attempt i
/// covers [t_i, t_{i+1}); a failed one counts for the step it started in.
fn unserved(rec: &CampaignRecord) -> (Vec<(f64, f64)>, f64, f64) {
    let mut per = vec![(0.0, 0.0); rec.steps.len()];
    let mut run: Option<(Option<usize>, f64)> = None;
    let (mut outside, mut outside_max) = (0.0, 0.0f64);
    let ws = &rec.writes;
    for (i, w) in ws.iter().enumerate() {
        let next = ws.get(i + 1).map_or(w.t + w.took, |n| n.t);
        let span = (next - w.t).as_secs_f64();
        let step = rec.steps.iter().position(|s| s.start <= w.t && w.t < s.end);
        if w.served.is_err() {
            let r = match run {
                Some((st, acc)) if st == step => acc + span,
                _ => span,
            };
            run = Some((step, r));
            match step {
                Some(k) => {
                    per[k].0 += span;
                    per[k].1 = f64::max(per[k].1, r);
                }
                None => {
                    outside += span;
                    outside_max = outside_max.max(r);
                }
            }
        } else {
            run = None;
        }
    }
    (per, outside, outside_max)
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn audit(rec: &CampaignRecord) -> Audit {
    let v = View { rec };
    let rules = vec![
        no_takeback(&v),
        moves_to_newest(&v),
        no_stale_write(&v),
        ec2_double(&v),
    ];
    let (per, outside, outside_max) = unserved(rec);
    let steps: Vec<Value> = rec
        .steps
        .iter()
        .zip(&per)
        .map(|(s, (u, umax))| {
            json!({
                "n": s.n, "fault": s.fault.name(), "detail": s.detail, "params": s.params,
                "primary_before": format!("n{}", s.from),
                "primary_after": s.to.map(|t| format!("n{t}")),
                "start_s": secs(s.start), "fault_end_s": secs(s.fault_end), "end_s": secs(s.end),
                "duration_s": secs(s.end - s.start),
                "converge_after_fault_s": s.converged.then(|| secs(s.end.saturating_sub(s.fault_end))),
                "converged": s.converged, "repairs": s.repairs, "errors": s.errors,
                "skipped": s.skipped,
                "unserved_s": r3(*u), "longest_unserved_s": r3(*umax),
            })
        })
        .collect();
    let mut kinds = serde_json::Map::new();
    for f in FAULTS {
        let of: Vec<(&super::campaign::Step, &(f64, f64))> = rec
            .steps
            .iter()
            .zip(&per)
            .filter(|(s, _)| s.fault == f)
            .collect();
        if of.is_empty() {
            continue;
        }
        kinds.insert(
            f.name().into(),
            json!({
                "steps": of.len(),
                "converged": of.iter().filter(|(s, _)| s.converged).count(),
                "skipped": of.iter().filter(|(s, _)| s.skipped.is_some()).count(),
                "unserved_s": stats(of.iter().map(|(_, u)| r3(u.0)).collect()),
                "unserved_total_s": r3(of.iter().map(|(_, u)| u.0).sum()),
                "longest_unserved_s": r3(of.iter().map(|(_, u)| u.1).fold(0.0, f64::max)),
                "duration_s": stats(of.iter().map(|(s, _)| secs(s.end - s.start)).collect()),
            }),
        );
    }
    let ok_writes = rec.writes.iter().filter(|w| w.served.is_ok()).count();
    let mut served_by: BTreeMap<String, usize> = BTreeMap::new();
    for w in &rec.writes {
        if let Ok((dir, tl)) = &w.served {
            let n = v.node_of_dir(dir).map_or(dir.clone(), |n| format!("n{n}"));
            *served_by.entry(format!("{n} tl{tl}")).or_default() += 1;
        }
    }
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for w in &rec.writes {
        if let Err(e) = &w.served {
            let key: String = e
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .take(100)
                .collect();
            *errors.entry(key).or_default() += 1;
        }
    }
    let max_gap = super::sampler::largest_gap(&rec.samples);
    let moves: Vec<Value> = {
        let mut out = Vec::new();
        for (t, src, to) in v.assigns() {
            out.push(json!({"t": secs(t), "source": src,
                "by": if src == rec.hub_ip { "hand".to_owned() } else { v.node_of_addr(&src).map_or(src.clone(), |n| format!("a{n}")) },
                "to": to.map(|n| format!("n{n}"))}));
        }
        out
    };
    let logs: Vec<Value> = rec
        .arbiters
        .iter()
        .flat_map(|a| {
            log_summary(&a.log)
                .into_iter()
                .map(move |((level, text), (count, first))| {
                    json!({"arbiter": format!("a{}", a.node), "level": level, "text": text, "count": count, "first": first})
                })
        })
        .collect();
    let exits: usize = rec.arbiters.iter().map(|a| a.exits.len()).sum();
    let pid_changes: usize = rec.arbiters.iter().map(|a| a.pid_changes).sum();
    let drops: usize = rec.arbiters.iter().map(|a| a.pass_count_drops).sum();
    let json = json!({
        "seed": rec.plan.seed,
        "steps_planned": rec.plan.steps,
        "steps_run": rec.steps.len(),
        "steps_skipped": rec.steps.iter().filter(|s| s.skipped.is_some()).count(),
        "wall_cap_s": rec.plan.wall.as_secs(),
        "max_window_s": rec.plan.max_window.as_secs(),
        "consistency_bound_s": super::campaign::CONSISTENCY_BOUND.as_secs(),
        "stopped_early": rec.stopped_early,
        "elapsed_s": secs(rec.elapsed),
        "bed_up_s": secs(rec.bed_up),
        "load": rec.load,
        "audit": rules.iter().map(|r| json!({
            "rule": r.name, "pass": r.pass, "checked": r.checked,
            "violations": r.violations.len(),
            "evidence": r.violations.iter().take(KEEP).cloned().collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "faults": kinds,
        "unserved_outside_steps_s": r3(outside),
        "longest_unserved_outside_steps_s": r3(outside_max),
        "steps": steps,
        "writes": {"attempts": rec.writes.len(), "ok": ok_writes, "served_by": served_by, "errors": errors},
        "sampler": {"samples": rec.samples.len(), "largest_gap_s": secs(max_gap),
                    "ec2_unanswered": rec.samples.iter().filter(|s| s.ec2.is_none()).count()},
        "ec2_moves": moves,
        "arbiters": {"intended_restarts": rec.intended_restarts, "exits": exits,
                     "pid_changes": pid_changes, "pass_count_drops": drops},
        "logs": logs,
    });
    let text = text(&json, &rules);
    Audit { rules, json, text }
}

fn text(j: &Value, rules: &[Rule]) -> String {
    let mut s = format!(
        "campaign seed {} : {} of {} steps ({} skipped) in {} s{}\n",
        j["seed"],
        j["steps_run"],
        j["steps_planned"],
        j["steps_skipped"],
        j["elapsed_s"],
        j["stopped_early"]
            .as_str()
            .map_or(String::new(), |e| format!(" (stopped early: {e})"))
    );
    for st in j["steps"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "  step {:>3} {:<13} {:<60} {} -> {}  {:>6.1} s  unserved {:>5.1} s{}{}\n",
            st["n"],
            st["fault"].as_str().unwrap_or(""),
            st["detail"].as_str().unwrap_or(""),
            st["primary_before"].as_str().unwrap_or("?"),
            st["primary_after"].as_str().unwrap_or("?"),
            st["duration_s"].as_f64().unwrap_or(0.0),
            st["unserved_s"].as_f64().unwrap_or(0.0),
            st["skipped"]
                .as_str()
                .map_or(String::new(), |w| format!("  SKIPPED {w}")),
            if st["errors"].as_array().is_some_and(|e| !e.is_empty()) {
                format!("  ERRORS {}", st["errors"])
            } else {
                String::new()
            }
        ));
    }
    s.push_str("unserved time per fault kind (total / longest run):\n");
    for (k, f) in j["faults"].as_object().into_iter().flatten() {
        s.push_str(&format!(
            "  {k:<13} {} steps ({} skipped), {} s / {} s\n",
            f["steps"], f["skipped"], f["unserved_total_s"], f["longest_unserved_s"]
        ));
    }
    s.push_str(&format!(
        "writes: {} ; sampler: {} ; arbiters: {}\n",
        j["writes"]["ok"], j["sampler"], j["arbiters"]
    ));
    for r in rules {
        s.push_str(&format!(
            "audit {:<24} {} ({} checked, {} violations)\n",
            r.name,
            if r.pass { "pass" } else { "FAIL" },
            r.checked,
            r.violations.len()
        ));
    }
    s
}

/// All the kinds that ran (a skipped step does not count), for a caller that wants to
/// check coverage.
pub fn kinds_run(rec: &CampaignRecord) -> Vec<Fault> {
    let mut k: Vec<Fault> = rec
        .steps
        .iter()
        .filter(|s| s.skipped.is_none())
        .map(|s| s.fault)
        .collect();
    k.sort();
    k.dedup();
    k
}
