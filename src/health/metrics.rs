//! Counters shared by the loop and the adapters, rendered as Prometheus text and
//! as part of the health JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::core::plan::Verdict;

/// Upper bounds (seconds) of `vip_arbiter_convergence_duration_seconds`: a takeover
/// is about a pass or two; EC2 backoff and holds run to minutes.
pub const CONVERGENCE_BUCKETS: [f64; 9] = [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone)]
pub struct Inner {
    pub passes: u64,
    pub pass_seconds_sum: f64,
    pub pass_seconds_last: f64,
    /// Wall clock (Unix seconds) at the end of the last completed pass.
    pub last_pass_unix_seconds: f64,
    /// The configured interval in force for the last pass.
    pub interval_seconds: f64,
    /// (step kind, "ok" | "noop" | "error") → count
    pub actions: BTreeMap<(String, String), u64>,
    /// observer ("pg" | "kernel" | "cloud") → count of Unknown results
    pub observer_failures: BTreeMap<String, u64>,
    /// (EC2 action, "ok" | error code) → count
    pub ec2_calls: BTreeMap<(String, String), u64>,
    pub verdict: String,
    /// `Severity` of the last verdict: 0 ok, 1 warning, 2 critical.
    pub severity: u8,
    pub converged: bool,
    /// Start of the first pass of the current unconverged stretch, if any.
    pub unconverged_since: Option<Instant>,
    /// Unconverged stretches that ended, by `CONVERGENCE_BUCKETS` (not cumulative).
    pub convergence_buckets: [u64; CONVERGENCE_BUCKETS.len()],
    pub convergence_over: u64,
    pub convergence_seconds_sum: f64,
    pub info: Option<Info>,
}

/// Static facts for `vip_arbiter_info`, so dashboards and alerts can name the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub node_id: i32,
    pub vip: String,
    pub interface: String,
    /// "ec2" | "kernel-only"
    pub mode: &'static str,
}

/// What the loop records after each completed pass.
#[derive(Debug, Clone, Copy)]
pub struct PassRecord<'a> {
    pub started: Instant,
    pub took: Duration,
    pub verdict: &'a Verdict,
    pub converged: bool,
    pub interval: Duration,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update; counters stay usable.
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn pass(&self, p: PassRecord<'_>) {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.with(|m| {
            m.passes += 1;
            m.pass_seconds_sum += p.took.as_secs_f64();
            m.pass_seconds_last = p.took.as_secs_f64();
            m.last_pass_unix_seconds = wall;
            m.interval_seconds = p.interval.as_secs_f64();
            m.verdict = p.verdict.kind().to_owned();
            m.severity = p.verdict.severity() as u8;
            m.converged = p.converged;
            match (p.converged, m.unconverged_since) {
                (true, Some(since)) => {
                    m.unconverged_since = None;
                    let secs = (p.started + p.took)
                        .saturating_duration_since(since)
                        .as_secs_f64();
                    m.convergence_seconds_sum += secs;
                    match CONVERGENCE_BUCKETS.iter().position(|le| secs <= *le) {
                        Some(i) => m.convergence_buckets[i] += 1,
                        None => m.convergence_over += 1,
                    }
                }
                (false, None) => m.unconverged_since = Some(p.started),
                _ => {}
            }
        });
    }

    pub fn info(&self, info: Info) {
        self.with(|m| m.info = Some(info));
    }

    pub fn action(&self, kind: &str, result: &str) {
        self.with(|m| *m.actions.entry((kind.into(), result.into())).or_default() += 1);
    }

    pub fn observer_failure(&self, observer: &str) {
        self.with(|m| *m.observer_failures.entry(observer.into()).or_default() += 1);
    }

    pub fn ec2_call(&self, action: &str, result: &str) {
        self.with(|m| {
            *m.ec2_calls
                .entry((action.into(), result.into()))
                .or_default() += 1
        });
    }

    pub fn snapshot(&self) -> Inner {
        self.with(|m| m.clone())
    }

    /// Counters as JSON objects keyed "a/b", for the health snapshot.
    pub fn json(&self) -> serde_json::Value {
        let m = self.snapshot();
        let flat = |map: &BTreeMap<(String, String), u64>| {
            map.iter()
                .map(|((a, b), n)| (format!("{a}/{b}"), serde_json::Value::from(*n)))
                .collect::<serde_json::Map<_, _>>()
        };
        serde_json::json!({
            "passes": m.passes,
            "actions": flat(&m.actions),
            "observer_failures": m.observer_failures,
            "ec2_calls": flat(&m.ec2_calls),
        })
    }

    /// Prometheus text exposition format 0.0.4, each family's HELP and TYPE right
    /// before its samples. Per-pass gauges are absent until the first pass completed.
    pub fn prometheus(&self) -> String {
        let m = self.snapshot();
        let mut out = String::new();
        let o = &mut out;
        let ran = m.passes > 0;

        family(
            o,
            "vip_arbiter_passes_total",
            "counter",
            "Completed observe-decide-act passes.",
        );
        let _ = writeln!(o, "vip_arbiter_passes_total {}", m.passes);
        family(
            o,
            "vip_arbiter_pass_duration_seconds",
            "summary",
            "Duration of passes.",
        );
        let _ = writeln!(
            o,
            "vip_arbiter_pass_duration_seconds_sum {}\nvip_arbiter_pass_duration_seconds_count {}",
            m.pass_seconds_sum, m.passes
        );
        family(
            o,
            "vip_arbiter_last_pass_duration_seconds",
            "gauge",
            "Duration of the last pass.",
        );
        let _ = writeln!(
            o,
            "vip_arbiter_last_pass_duration_seconds {}",
            m.pass_seconds_last
        );
        gauge_once_ran(
            o,
            ran,
            "vip_arbiter_last_pass_timestamp_seconds",
            "Unix time at which the last pass completed.",
            m.last_pass_unix_seconds,
        );
        gauge_once_ran(
            o,
            ran,
            "vip_arbiter_interval_seconds",
            "The configured interval between passes.",
            m.interval_seconds,
        );
        family(
            o,
            "vip_arbiter_actions_total",
            "counter",
            "Steps carried out, by kind and result.",
        );
        for ((kind, result), n) in &m.actions {
            let _ = writeln!(
                o,
                "vip_arbiter_actions_total{{kind=\"{kind}\",result=\"{result}\"}} {n}"
            );
        }
        family(
            o,
            "vip_arbiter_observer_failures_total",
            "counter",
            "Observations that came back unknown.",
        );
        for observer in ["pg", "kernel", "cloud"] {
            let n = m.observer_failures.get(observer).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "vip_arbiter_observer_failures_total{{observer=\"{observer}\"}} {n}"
            );
        }
        family(
            o,
            "vip_arbiter_ec2_calls_total",
            "counter",
            "EC2 API calls, by action and result.",
        );
        for ((action, result), n) in &m.ec2_calls {
            let _ = writeln!(
                o,
                "vip_arbiter_ec2_calls_total{{action=\"{action}\",result=\"{result}\"}} {n}"
            );
        }
        family(
            o,
            "vip_arbiter_verdict",
            "gauge",
            "1 for the current verdict, 0 for the others.",
        );
        for kind in Verdict::KINDS {
            let v = u8::from(m.verdict == kind);
            let _ = writeln!(o, "vip_arbiter_verdict{{verdict=\"{kind}\"}} {v}");
        }
        gauge_once_ran(
            o,
            ran,
            "vip_arbiter_verdict_severity",
            "Severity of the current verdict: 0 ok, 1 warning, 2 critical (as `check`).",
            m.severity,
        );
        gauge_once_ran(
            o,
            ran,
            "vip_arbiter_converged",
            "1 if the last pass found nothing to do and its verdict is ok.",
            u8::from(m.converged),
        );
        family(
            o,
            "vip_arbiter_convergence_duration_seconds",
            "histogram",
            "Unconverged stretches that ended: first unconverged pass start to converged pass end.",
        );
        let mut cumulative = 0;
        for (le, n) in CONVERGENCE_BUCKETS.iter().zip(m.convergence_buckets) {
            cumulative += n;
            let _ = writeln!(
                o,
                "vip_arbiter_convergence_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = cumulative + m.convergence_over;
        let _ = writeln!(
            o,
            "vip_arbiter_convergence_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nvip_arbiter_convergence_duration_seconds_sum {}\nvip_arbiter_convergence_duration_seconds_count {count}",
            m.convergence_seconds_sum
        );
        family(
            o,
            "vip_arbiter_info",
            "gauge",
            "Always 1; the node id, VIP, interface and mode (ec2 or kernel-only) as labels.",
        );
        if let Some(i) = &m.info {
            let _ = writeln!(
                o,
                "vip_arbiter_info{{node_id=\"{}\",vip=\"{}\",interface=\"{}\",mode=\"{}\"}} 1",
                i.node_id,
                label(&i.vip),
                label(&i.interface),
                i.mode
            );
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A gauge family whose sample appears only once a pass has completed (a daemon still
/// starting reports no value rather than a misleading one).
fn gauge_once_ran(
    out: &mut String,
    ran: bool,
    name: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    family(out, name, "gauge", help);
    if ran {
        let _ = writeln!(out, "{name} {value}");
    }
}

/// A label value as the text format wants it.
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(m: &Metrics, started: Instant, ms: u64, verdict: &Verdict, converged: bool) {
        m.pass(PassRecord {
            started,
            took: Duration::from_millis(ms),
            verdict,
            converged,
            interval: Duration::from_secs(1),
        });
    }

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn per_pass_gauges_appear_after_the_first_pass() {
        let m = Metrics::default();
        let t = m.prometheus();
        for name in [
            "vip_arbiter_last_pass_timestamp_seconds",
            "vip_arbiter_interval_seconds",
            "vip_arbiter_verdict_severity",
            "vip_arbiter_converged",
        ] {
            assert!(t.contains(&format!("# TYPE {name} gauge\n")), "{t}");
            assert_eq!(sample(&t, name), None, "{t}");
        }
        assert!(!t.contains("vip_arbiter_info{"), "{t}");
        record(&m, Instant::now(), 100, &Verdict::Acquiring, false);
        let t = m.prometheus();
        assert_eq!(sample(&t, "vip_arbiter_verdict_severity"), Some("1"));
        assert_eq!(sample(&t, "vip_arbiter_converged"), Some("0"));
        assert_eq!(sample(&t, "vip_arbiter_interval_seconds"), Some("1"));
        let ts: f64 = sample(&t, "vip_arbiter_last_pass_timestamp_seconds")
            .unwrap()
            .parse()
            .unwrap();
        assert!(ts > 1.6e9, "{ts}");
    }

    #[test]
    fn an_unconverged_stretch_is_one_histogram_observation() {
        let m = Metrics::default();
        let t0 = Instant::now();
        let h = "vip_arbiter_convergence_duration_seconds";
        // Converged from the start: no stretch.
        record(&m, t0, 100, &Verdict::Holding, true);
        // Unconverged for two passes, converged at 3.0 s after the first started.
        record(
            &m,
            t0 + Duration::from_secs(1),
            100,
            &Verdict::Acquiring,
            false,
        );
        record(
            &m,
            t0 + Duration::from_secs(2),
            100,
            &Verdict::Acquiring,
            false,
        );
        let t = m.prometheus();
        assert_eq!(sample(&t, &format!("{h}_count")), Some("0"), "{t}");
        record(
            &m,
            t0 + Duration::from_millis(3900),
            100,
            &Verdict::Holding,
            true,
        );
        let t = m.prometheus();
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"2\"}}")), Some("0"));
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"5\"}}")), Some("1"));
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"1800\"}}")), Some("1"));
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"+Inf\"}}")), Some("1"));
        assert_eq!(sample(&t, &format!("{h}_sum")), Some("3"));
        assert_eq!(sample(&t, &format!("{h}_count")), Some("1"));
        assert_eq!(sample(&t, "vip_arbiter_verdict_severity"), Some("0"));
        // A stretch longer than the last bucket counts only in +Inf.
        record(
            &m,
            t0 + Duration::from_secs(10),
            0,
            &Verdict::Acquiring,
            false,
        );
        record(
            &m,
            t0 + Duration::from_secs(4000),
            0,
            &Verdict::Holding,
            true,
        );
        let t = m.prometheus();
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"1800\"}}")), Some("1"));
        assert_eq!(sample(&t, &format!("{h}_bucket{{le=\"+Inf\"}}")), Some("2"));
        assert_eq!(sample(&t, &format!("{h}_count")), Some("2"));
    }

    #[test]
    fn info_labels_are_escaped() {
        let m = Metrics::default();
        m.info(Info {
            node_id: 2,
            vip: "10.0.1.100".into(),
            interface: "en\"s\\5".into(),
            mode: "ec2",
        });
        assert!(m.prometheus().lines().any(|l| l
            == r#"vip_arbiter_info{node_id="2",vip="10.0.1.100",interface="en\"s\\5",mode="ec2"} 1"#));
    }
}
