//! The monitoring the package ships, checked against the real tools and the real daemon:
//!
//! * `rules_pass_promtool_check`: `promtool check rules` on etc/prometheus/vip-arbiter.rules.yml;
//!   every alert has a severity, a summary, a description and a runbook_url that is a
//!   heading of docs/operations.md.
//! * `rules_unit_tests_pass`: `promtool test rules tests/alert_rules/*.test.yml`, and every
//!   alert is tested both firing and quiet there.
//! * `dashboard_is_valid`: etc/grafana/vip-arbiter-dashboard.json parses, has its
//!   `__inputs` Prometheus datasource, and every panel uses it.
//! * `real_daemon_feeds_the_rules_and_dashboard`: two real kernel-only daemons (primary and
//!   standby, real PostgreSQL + repmgr, network namespaces), their /metrics passes
//!   `promtool check metrics`, the real collector script (systemd/vip-arbiter-metrics-textfile)
//!   writes their textfiles, the real node_exporter serves them without a textfile error;
//!   every `vip_arbiter_*` name (and verdict label value) the rules and the dashboard use is
//!   one the daemon or the collector exports; the rules evaluated by promtool over those
//!   real series raise nothing for the healthy pair, and VipArbiterDown and
//!   VipArbiterNoHolder once the primary's daemon is stopped.
//!
//! Needs promtool (Debian's `prometheus`), `prometheus-node-exporter`, curl, root,
//! PostgreSQL and repmgr (scripts/install-deps installs them); a missing one FAILS.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::bed::Bed;
use support::pg_cluster::PgNode;
use support::reaper::Reaper;
use support::testbed::{Arbiter, wait_until};

const RULES: &str = "etc/prometheus/vip-arbiter.rules.yml";
const DASHBOARD: &str = "etc/grafana/vip-arbiter-dashboard.json";
const COLLECTOR: &str = "systemd/vip-arbiter-metrics-textfile";
const VIP: &str = "10.77.0.100";
/// Verdict kinds being added to `Verdict::KINDS` in parallel: the rules are written for
/// them (and tests/alert_rules/*.test.yml feeds them) before the daemon exports them.
const PENDING_KINDS: [&str; 3] = ["writable-not-eligible", "foreign-claim", "ec2-settling"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A tool that must be installed: a missing one fails the test, naming its package.
fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    assert!(
        found,
        "{program} not found: install Debian's `{package}` (scripts/install-deps does)"
    );
}

fn tool(program: &str, package: &str) -> Command {
    require(program, package);
    let mut c = Command::new(program);
    c.current_dir(repo());
    c
}

fn promtool(args: &[&str]) -> Output {
    tool("promtool", "prometheus")
        .args(args)
        .output()
        .expect("run promtool")
}

/// `(alert name, its block of the rules file)`, in order.
fn alerts() -> Vec<(String, String)> {
    let rules = read(RULES);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in rules.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert: ") {
            out.push((name.trim().to_owned(), String::new()));
        } else if let Some((_, block)) = out.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    out
}

/// GitHub's anchors for the headings of a markdown file (outside code blocks).
fn anchors(md: &str) -> BTreeSet<String> {
    let mut fenced = false;
    md.lines()
        .filter(|l| {
            if l.starts_with("```") {
                fenced = !fenced;
            }
            !fenced && l.starts_with('#')
        })
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn rules_pass_promtool_check() {
    let o = promtool(&["check", "rules", RULES]);
    assert!(
        o.status.success(),
        "promtool check rules {RULES}:\n{}",
        text(&o)
    );
    let alerts = alerts();
    assert!(
        text(&o).contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "every rule is an alert:\n{}",
        text(&o)
    );
    let ops = anchors(&read("docs/operations.md"));
    for (name, block) in &alerts {
        assert!(
            block.contains("severity: critical")
                || block.contains("severity: warning")
                || block.contains("}}critical{{ else }}warning{{"),
            "{name}: no severity label"
        );
        for key in ["summary:", "description:"] {
            assert!(block.contains(key), "{name}: no {key} annotation");
        }
        let url = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("runbook_url: "))
            .unwrap_or_else(|| panic!("{name}: no runbook_url"))
            .trim_matches('"');
        let anchor = url
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| panic!("{name}: runbook_url {url} is not docs/operations.md#…"));
        assert_eq!(anchor, name.to_lowercase(), "{name}: runbook anchor");
        assert!(
            ops.contains(anchor),
            "{name}: docs/operations.md has no heading for #{anchor}"
        );
    }
}

fn test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/alert_rules"))
        .expect("tests/alert_rules")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn rules_unit_tests_pass() {
    let files = test_files();
    assert!(files.len() >= 3, "{files:?}");
    let args: Vec<&str> = ["test", "rules"]
        .into_iter()
        .chain(files.iter().map(|p| p.to_str().unwrap()))
        .collect();
    let o = promtool(&args);
    eprintln!("{}", text(&o));
    assert!(o.status.success(), "promtool test rules:\n{}", text(&o));
    assert_eq!(
        text(&o).matches("SUCCESS").count(),
        files.len(),
        "{}",
        text(&o)
    );
    // Every alert is tested firing and quiet.
    let tests: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for (name, _) in alerts() {
        let next: Vec<&str> = lines
            .windows(2)
            .filter(|w| w[0] == format!("alertname: {name}"))
            .map(|w| w[1])
            .collect();
        assert!(
            next.contains(&"exp_alerts: []"),
            "{name} is never tested quiet"
        );
        assert!(
            next.contains(&"exp_alerts:"),
            "{name} is never tested firing"
        );
    }
}

/// Every `vip_arbiter_*` series name in `text` (comment lines skipped).
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(i) = rest.find("vip_arbiter_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    names
}

/// Every verdict label value in `text` (`verdict="x"`, `verdict=~"x|y"`).
fn verdicts_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in text.split("verdict=").skip(1) {
        let part = part.trim_start_matches('~');
        let Some(v) = part.strip_prefix("\\\"").or_else(|| part.strip_prefix('"')) else {
            continue;
        };
        let end = v.find(['"', '\\']).unwrap_or(v.len());
        out.extend(v[..end].split('|').map(str::to_owned));
    }
    out
}

/// The series names an exposition declares (`# TYPE` lines, with the suffixes of
/// summaries and histograms), and its verdict label values.
fn exported(exposition: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    for l in exposition.lines() {
        let Some(t) = l.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = t.split_once(' ').unwrap();
        names.insert(name.to_owned());
        let suffixes: &[&str] = match kind {
            "summary" => &["_sum", "_count"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    let verdicts = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("vip_arbiter_verdict{verdict=\""))
        .map(|l| l.split('"').next().unwrap().to_owned())
        .collect();
    (names, verdicts)
}

/// Every `expr` and templating `query` in the dashboard.
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) if s.contains("vip_arbiter_") => {
                        out.push(s.clone())
                    }
                    ("query", Value::Object(q)) => {
                        if let Some(Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

#[test]
fn dashboard_is_valid() {
    let d = dashboard();
    let inputs = d["__inputs"].as_array().expect("__inputs");
    let ds = inputs
        .iter()
        .find(|i| i["type"] == "datasource" && i["pluginId"] == "prometheus")
        .expect("a Prometheus datasource input");
    let var = format!("${{{}}}", ds["name"].as_str().unwrap());
    assert!(
        d["title"]
            .as_str()
            .is_some_and(|t| t.contains("vip-arbiter"))
    );
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{} panels", panels.len());
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or("?");
        assert_eq!(p["datasource"]["uid"], var.as_str(), "panel {title}");
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: targets"));
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert!(
                t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("vip_arbiter_")),
                "{title}: {t}"
            );
        }
    }
    let mut exprs = Vec::new();
    dashboard_exprs(&d, &mut exprs);
    for needed in [
        "vip_arbiter_verdict",
        "vip_arbiter_passes_total",
        "vip_arbiter_ec2_calls_total",
        "vip_arbiter_actions_total",
        "vip_arbiter_pass_duration_seconds_sum",
        "vip_arbiter_convergence_duration_seconds_bucket",
    ] {
        assert!(
            exprs.iter().any(|e| names_in(e).contains(needed)),
            "the dashboard does not show {needed}"
        );
    }
}

// ---- the real daemon ------------------------------------------------------------

fn config(node: &PgNode) -> String {
    format!(
        "vip = \"{VIP}\"\ninterface = \"ens5\"\nrepmgr_config = {:?}\ninterval = \"500ms\"\n",
        node.repmgr_conf().display().to_string()
    )
}

fn curl_metrics(a: &Arbiter) -> String {
    let o = tool("curl", "curl")
        .args(["-sf", "--max-time", "5", "--unix-socket"])
        .arg(&a.socket)
        .arg("http://localhost/metrics")
        .output()
        .expect("curl");
    assert!(o.status.success(), "GET /metrics: {}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// The shipped collector script, as vip-arbiter-metrics.service runs it.
fn collect(socket: &Path, dir: &Path) -> String {
    let o = tool("sh", "dash")
        .arg(COLLECTOR)
        .arg(socket)
        .arg(dir)
        .output()
        .expect("run the collector");
    assert!(o.status.success(), "{COLLECTOR}: {}", text(&o));
    let file = dir.join("vip-arbiter.prom");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "vip-arbiter.prom")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Samples by series (labels sorted, as node_exporter prints them) → value.
fn samples(exposition: &str) -> std::collections::BTreeMap<String, f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let series = match series.split_once('{') {
                Some((name, labels)) => {
                    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                    labels.sort_unstable();
                    format!("{name}{{{}}}", labels.join(","))
                }
                None => series.to_owned(),
            };
            (series, value.parse().unwrap())
        })
        .collect()
}

/// node_exporter (textfile collector only) inside namespace `ns`, reading `dir`.
struct NodeExporter {
    /// Owns node_exporter.
    _reaper: Reaper,
    ns: String,
}

impl NodeExporter {
    fn start(ns: &str, dir: &Path) -> NodeExporter {
        let bin = "prometheus-node-exporter";
        require(bin, "prometheus-node-exporter");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, bin])
            .args([
                "--web.listen-address=127.0.0.1:9100",
                "--collector.disable-defaults",
                "--collector.textfile",
            ])
            .arg(format!("--collector.textfile.directory={}", dir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter");
        let mut reaper = Reaper::new();
        reaper.own(child);
        let ne = NodeExporter {
            _reaper: reaper,
            ns: ns.to_owned(),
        };
        wait_until(Duration::from_secs(10), "node_exporter", || {
            ne.try_scrape().is_some()
        });
        ne
    }

    fn try_scrape(&self) -> Option<String> {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-sf", "--max-time", "2"])
            .arg("http://127.0.0.1:9100/metrics")
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One node's textfile, just collected, as promtool input series (each sample held for
/// 10 minutes), with the labels node_exporter's target would add. promtool's clock
/// starts at 0: the last pass timestamp keeps the age it had at collection.
fn series(textfile: &str, instance: &str) -> String {
    let now = unix_now();
    let mut out = String::new();
    for l in textfile.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = l.rsplit_once(' ').unwrap();
        let value = if name == "vip_arbiter_last_pass_timestamp_seconds" {
            let ts: f64 = value.parse().unwrap();
            format!("{}+15", ts - now)
        } else {
            value.to_owned()
        };
        let target = format!("instance=\"{instance}\", job=\"node\"");
        let series = match name.strip_suffix('}') {
            Some(head) => format!("{head},{target}}}"),
            None => format!("{name}{{{target}}}"),
        };
        let series = series.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str(&format!(
            "      - series: \"{series}\"\n        values: '{value}x40'\n"
        ));
    }
    out
}

/// `key: "value"` and folded `key: >-` annotations of an alert block.
fn annotations(block: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = block.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "annotations:")
        .expect("annotations");
    let indent = |l: &str| l.len() - l.trim_start().len();
    let key_indent = indent(lines[start + 1]);
    let mut out: Vec<(String, String)> = Vec::new();
    for l in &lines[start + 1..] {
        if l.trim().is_empty() || indent(l) < key_indent {
            break;
        }
        if indent(l) == key_indent {
            let (k, v) = l.trim().split_once(": ").unwrap();
            let v = v.trim();
            let v = if v == ">-" { "" } else { v.trim_matches('"') };
            out.push((k.to_owned(), v.to_owned()));
        } else {
            let last = &mut out.last_mut().unwrap().1;
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(l.trim());
        }
    }
    out
}

/// A promtool `exp_alerts` entry for `alert` with `labels` (besides its own), its
/// annotations rendered for templates that use only `$labels`.
fn expected(alert: &str, labels: &[(&str, &str)]) -> String {
    let (_, block) = alerts().into_iter().find(|(a, _)| a == alert).unwrap();
    let mut all: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let severity = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("severity: "))
        .unwrap();
    all.push(("severity".into(), severity.into()));
    let render = |t: &str| {
        let mut t = t.to_owned();
        for (k, v) in labels {
            t = t.replace(&format!("{{{{ $labels.{k} }}}}"), v);
        }
        assert!(
            !t.contains("{{"),
            "{alert}: template not rendered here: {t}"
        );
        t
    };
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let mut e = String::from("          - exp_labels:\n");
    for (k, v) in &all {
        e.push_str(&format!("              {k}: {}\n", q(v)));
    }
    e.push_str("            exp_annotations:\n");
    for (k, v) in annotations(&block) {
        e.push_str(&format!("              {k}: {}\n", q(&render(&v))));
    }
    e
}

/// promtool test rules over real series: at 10 minutes exactly the `firing` alerts
/// (name, labels), every other alert quiet.
fn evaluate(dir: &Path, name: &str, series: &str, firing: &[(&str, &[(&str, &str)])]) {
    let mut body = format!(
        "rule_files:\n  - {}\nevaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n{series}    alert_rule_test:\n",
        repo().join(RULES).display()
    );
    for (alert, _) in alerts() {
        body.push_str(&format!(
            "      - eval_time: 10m\n        alertname: {alert}\n"
        ));
        let mine: Vec<_> = firing.iter().filter(|(a, _)| *a == alert).collect();
        if mine.is_empty() {
            body.push_str("        exp_alerts: []\n");
        } else {
            body.push_str("        exp_alerts:\n");
            for (a, labels) in mine {
                body.push_str(&expected(a, labels));
            }
        }
    }
    let test = dir.join(format!("{name}.test.yml"));
    std::fs::write(&test, &body).unwrap();
    let o = promtool(&["test", "rules", test.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "the rules over real series ({name}):\n{}\n{body}",
        text(&o)
    );
}

#[test]
fn real_daemon_feeds_the_rules_and_dashboard() {
    let bed = Bed::builder().postgres().build();
    let (cluster, n1, n2, dir) = (bed.cluster(), bed.ns(1), bed.ns(2), bed.dir());
    let mut a1 = Arbiter::start(n1, dir, "a1", &config(cluster.node1()), &[]);
    let a2 = Arbiter::start(n2, dir, "a2", &config(cluster.node2()), &[]);
    wait_until(Duration::from_secs(20), "holding / standby", || {
        a1.verdict() == "holding" && a2.verdict() == "standby"
    });

    // The daemon's own exposition is clean by promtool's linter.
    let raw = curl_metrics(&a1);
    let mut lint = tool("promtool", "prometheus")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(lint.stdin.as_mut().unwrap(), raw.as_bytes()).unwrap();
    let o = lint.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics:\n{}\n{raw}",
        text(&o)
    );
    for line in [
        "vip_arbiter_verdict{verdict=\"holding\"} 1",
        "vip_arbiter_verdict_severity 0",
        "vip_arbiter_converged 1",
        "vip_arbiter_interval_seconds 0.5",
        "vip_arbiter_info{node_id=\"1\",vip=\"10.77.0.100\",interface=\"ens5\",mode=\"kernel-only\"} 1",
    ] {
        assert!(raw.lines().any(|l| l == line), "no `{line}` in:\n{raw}");
    }
    let ts: f64 = raw
        .lines()
        .find_map(|l| l.strip_prefix("vip_arbiter_last_pass_timestamp_seconds "))
        .expect("last pass timestamp")
        .parse()
        .unwrap();
    let now = unix_now();
    assert!(
        (now - 10.0..=now).contains(&ts),
        "last pass at {ts}, now {now}"
    );

    // The collector writes both textfiles; node_exporter serves them without error.
    let tf1 = tempfile::tempdir().unwrap();
    let tf2 = tempfile::tempdir().unwrap();
    let file1 = collect(&a1.socket, tf1.path());
    let file2 = collect(&a2.socket, tf2.path());
    for f in [&file1, &file2] {
        assert!(f.ends_with("vip_arbiter_up 1\n"), "{f}");
    }
    let ne = NodeExporter::start(&bed.hub().ns, tf1.path());
    let scraped = ne.try_scrape().expect("scrape node_exporter");
    assert!(
        scraped.lines().any(|l| l == "node_textfile_scrape_error 0"),
        "node_exporter could not read the textfile:\n{scraped}"
    );
    let mtime = format!(
        "node_textfile_mtime_seconds{{file=\"{}\"}}",
        tf1.path().join("vip-arbiter.prom").display()
    );
    assert!(
        scraped.lines().any(|l| l.starts_with(&mtime)),
        "no {mtime} (the rules match that label):\n{scraped}"
    );
    let served = samples(&scraped);
    for (series, value) in samples(&file1) {
        assert_eq!(
            served.get(&series),
            Some(&value),
            "node_exporter does not serve {series} {value}"
        );
    }
    drop(ne);

    // Every name the rules and the dashboard use is exported.
    let (names, mut verdicts) = exported(&file1);
    verdicts.extend(PENDING_KINDS.iter().map(|k| (*k).to_owned()));
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard(), &mut exprs);
    for (what, text) in [
        ("the rules", read(RULES)),
        ("the dashboard", exprs.join("\n")),
    ] {
        let used = names_in(&text);
        assert!(!used.is_empty(), "{what} use no vip_arbiter_ name");
        let missing: Vec<_> = used.difference(&names).collect();
        assert!(
            missing.is_empty(),
            "{what} use names nothing exports: {missing:?}\nexported: {names:?}"
        );
        let unknown: Vec<_> = verdicts_in(&text)
            .into_iter()
            .filter(|v| !verdicts.contains(v))
            .collect();
        assert!(unknown.is_empty(), "{what}: unknown verdicts {unknown:?}");
    }

    // The rules over the real series: a healthy pair raises nothing.
    let healthy = format!("{}{}", series(&file1, "n1:9100"), series(&file2, "n2:9100"));
    evaluate(dir, "healthy", &healthy, &[]);

    // The primary's daemon stops: the collector says so, and the rules see a VIP
    // nobody holds.
    assert_eq!(a1.stop(), Some(0));
    let down = collect(&a1.socket, tf1.path());
    let body: Vec<_> = down.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(body, ["vip_arbiter_up 0"], "{down}");
    let stopped = format!("{}{}", series(&down, "n1:9100"), series(&file2, "n2:9100"));
    evaluate(
        dir,
        "stopped",
        &stopped,
        &[
            (
                "VipArbiterDown",
                &[("instance", "n1:9100"), ("job", "node")],
            ),
            ("VipArbiterNoHolder", &[("vip", VIP)]),
        ],
    );
}
