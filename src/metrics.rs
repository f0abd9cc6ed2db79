//! Counters shared by the loop and the adapters, rendered as Prometheus text and
//! as part of the health JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::plan::Verdict;

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Inner {
    pub passes: u64,
    pub pass_seconds_sum: f64,
    pub pass_seconds_last: f64,
    /// (step kind, "ok" | "noop" | "error") → count
    pub actions: BTreeMap<(String, String), u64>,
    /// observer ("pg" | "kernel" | "cloud") → count of Unknown results
    pub observer_failures: BTreeMap<String, u64>,
    /// (EC2 action, "ok" | error code) → count
    pub ec2_calls: BTreeMap<(String, String), u64>,
    pub verdict: String,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update; counters stay usable.
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn pass(&self, took: Duration, verdict: &Verdict) {
        self.with(|m| {
            m.passes += 1;
            m.pass_seconds_sum += took.as_secs_f64();
            m.pass_seconds_last = took.as_secs_f64();
            m.verdict = verdict.kind().to_owned();
        });
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

    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus(&self) -> String {
        let m = self.snapshot();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            "vip_arbiter_passes_total",
            "counter",
            "Completed observe-decide-act passes.",
        );
        family(
            "vip_arbiter_pass_duration_seconds",
            "summary",
            "Duration of passes.",
        );
        family(
            "vip_arbiter_last_pass_duration_seconds",
            "gauge",
            "Duration of the last pass.",
        );
        family(
            "vip_arbiter_actions_total",
            "counter",
            "Steps carried out, by kind and result.",
        );
        family(
            "vip_arbiter_observer_failures_total",
            "counter",
            "Observations that came back unknown.",
        );
        family(
            "vip_arbiter_ec2_calls_total",
            "counter",
            "EC2 API calls, by action and result.",
        );
        family(
            "vip_arbiter_verdict",
            "gauge",
            "1 for the current verdict, 0 for the others.",
        );
        let _ = writeln!(out, "vip_arbiter_passes_total {}", m.passes);
        let _ = writeln!(
            out,
            "vip_arbiter_pass_duration_seconds_sum {}",
            m.pass_seconds_sum
        );
        let _ = writeln!(out, "vip_arbiter_pass_duration_seconds_count {}", m.passes);
        let _ = writeln!(
            out,
            "vip_arbiter_last_pass_duration_seconds {}",
            m.pass_seconds_last
        );
        for ((kind, result), n) in &m.actions {
            let _ = writeln!(
                out,
                "vip_arbiter_actions_total{{kind=\"{kind}\",result=\"{result}\"}} {n}"
            );
        }
        for observer in ["pg", "kernel", "cloud"] {
            let n = m.observer_failures.get(observer).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "vip_arbiter_observer_failures_total{{observer=\"{observer}\"}} {n}"
            );
        }
        for ((action, result), n) in &m.ec2_calls {
            let _ = writeln!(
                out,
                "vip_arbiter_ec2_calls_total{{action=\"{action}\",result=\"{result}\"}} {n}"
            );
        }
        for kind in Verdict::KINDS {
            let v = u8::from(m.verdict == kind);
            let _ = writeln!(out, "vip_arbiter_verdict{{verdict=\"{kind}\"}} {v}");
        }
        out
    }
}
