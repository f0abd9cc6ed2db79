//! Unit tests of `plan`'s report: the text of a takeover exactly, releases, unknowns, a
//! fence, and the JSON shape (every key, always present).
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::core::decide::eligibility;
use crate::core::observation::FailureKind;
use crate::core::test_support::{observation, primary, primary_saying, standby};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn ctx(ec2: bool) -> PlanContext {
    PlanContext {
        node_id: 2,
        vip: VIP,
        interface: "ens5".into(),
        prefix_len: 24,
        ec2: ec2.then(|| Ec2Place {
            eni: "eni-0a1".into(),
            subnet: "subnet-0b2".into(),
        }),
        fence_command: Some("/usr/local/bin/fence-old-primary".into()),
        repmgr_primary: Some(2),
    }
}

fn obs(pg: PgView, kernel: KernelView, cloud: CloudView) -> Observation {
    observation(Duration::ZERO, pg, kernel, cloud)
}

/// The VIP on the interface with `prefix_len`.
fn on(prefix_len: u8) -> KernelView {
    KernelView::Present { prefix_len }
}

fn plan(steps: Vec<Step>, verdict: Verdict) -> Plan {
    Plan {
        steps,
        verdict,
        events: Vec::new(),
        look_again_soon: false,
    }
}

fn report(c: &PlanContext, o: &Observation, p: &Plan) -> PlanReport {
    PlanReport::new(c, o, &eligibility(&o.pg), p)
}

/// The report's JSON, parsed.
fn json_of(r: &PlanReport) -> Value {
    serde_json::from_str(&r.to_json()).expect("json")
}

fn claim(timeline: u32, node_id: i32) -> Claim {
    match claim::parse(&format!("timeline={timeline};node={node_id}")) {
        ClaimTag::Valid(c) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_ec2_takeover_reads_as_the_calls_it_makes() {
    let c = ctx(true);
    let o = obs(
        primary(6),
        KernelView::Absent,
        CloudView::Other {
            eni: "eni-0ff".into(),
            claim: ClaimTag::Valid(claim(5, 1)),
        },
    );
    let p = plan(
        vec![
            Step::WriteClaim(claim(6, 2)),
            Step::AssignCloud,
            Step::VerifyCloud,
            Step::AddKernel { prefix_len: 24 },
        ],
        Verdict::Acquiring,
    );
    let r = report(&c, &o, &p);
    assert_eq!(
        r.render_text(),
        "\
# vip-arbiter plan: node 2, VIP 10.0.0.5/24 on ens5, ec2 (eni-0a1 in subnet-0b2); nothing was changed
postgresql:   primary (not in recovery), timeline 6
repmgr.nodes: node 2 is the active primary (active primary: node 2)
kernel:       10.0.0.5 is not on ens5
ec2:          held by eni-0ff, claim timeline=5;node=1
marks:        none on the subnet
eligibility:  eligible (timeline 6)
verdict:      acquiring: primary, taking the VIP
severity:     WARNING (check exits 1)
step 1:       CreateTags vip-arbiter:10.0.0.5=timeline=6;node=2 vip-arbiter:10.0.0.5/node-2=timeline=6;node=2 on eni-0a1 subnet-0b2  # write_claim: write our claim on our ENI and our mark on the subnet before taking the VIP
step 2:       AssignPrivateIpAddresses 10.0.0.5 to eni-0a1 AllowReassignment=true  # assign_cloud: take the VIP at EC2 (moves it from any other ENI)
step 3:       DescribeNetworkInterfaces addresses.private-ip-address=10.0.0.5 subnet-id=subnet-0b2 (must show eni-0a1)  # verify_cloud: confirm that EC2 now shows our ENI as the holder
step 4:       ip addr add 10.0.0.5/24 dev ens5  # add_kernel: add the VIP to the interface
"
    );
    let v: Value = json_of(&r);
    assert_eq!(v["format"], 1);
    assert_eq!(v["mode"], "ec2");
    assert_eq!(v["eni"], "eni-0a1");
    assert_eq!(
        v["postgres"],
        json!({"role": "primary", "timeline": 6, "reason": null,
               "text": "primary (not in recovery), timeline 6"})
    );
    assert_eq!(v["repmgr"]["says"], "self-primary");
    assert_eq!(v["repmgr"]["active_primary"], 2);
    assert_eq!(v["kernel"]["state"], "absent");
    assert_eq!(v["ec2"]["state"], "other");
    assert_eq!(v["ec2"]["holder"], "eni-0ff");
    assert_eq!(
        v["ec2"]["claim"],
        json!({"state": "valid", "value": "timeline=5;node=1", "timeline": 5,
               "node_id": 1, "reason": null})
    );
    assert_eq!(v["eligibility"]["state"], "eligible");
    assert_eq!(
        v["verdict"],
        json!({"kind": "acquiring", "severity": "warning", "check_exit": 1,
               "text": "acquiring: primary, taking the VIP"})
    );
    assert_eq!(v["converged"], false);
    let kinds: Vec<&str> = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        ["write_claim", "assign_cloud", "verify_cloud", "add_kernel"]
    );
    assert_eq!(v["steps"][0]["n"], 1);
    assert_eq!(v["steps"][0]["claim"]["value"], "timeline=6;node=2");
    assert_eq!(v["steps"][0]["acquire"], true);
    assert_eq!(v["steps"][3]["prefix_len"], 24);
    assert_eq!(
        v["steps"][1]["call"],
        "AssignPrivateIpAddresses 10.0.0.5 to eni-0a1 AllowReassignment=true"
    );
}

#[test]
fn the_json_shape_is_stable() {
    // Every key is always there, null when it does not apply: scripts can rely on it.
    let c = ctx(false);
    let o = obs(primary(3), on(20), CloudView::Disabled);
    let p = plan(vec![Step::AddKernel { prefix_len: 24 }], Verdict::Acquiring);
    let v: Value = json_of(&report(&c, &o, &p));
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&v),
        [
            "converged",
            "ec2",
            "eligibility",
            "eni",
            "format",
            "interface",
            "kernel",
            "marks",
            "mode",
            "node_id",
            "postgres",
            "prefix_len",
            "repmgr",
            "steps",
            "subnet",
            "verdict",
            "vip"
        ]
    );
    // Each object's keys.
    let objects: [(&str, &[&str]); 7] = [
        ("postgres", &["reason", "role", "text", "timeline"]),
        (
            "repmgr",
            &["active_primary", "other_primary", "says", "text"],
        ),
        ("kernel", &["prefix_len", "reason", "state", "text"]),
        ("marks", &["code", "marks", "reason", "state", "text"]),
        (
            "ec2",
            &["claim", "code", "holder", "reason", "state", "text"],
        ),
        ("eligibility", &["reason", "state", "text", "timeline"]),
        ("verdict", &["check_exit", "kind", "severity", "text"]),
    ];
    for (key, want) in objects {
        assert_eq!(keys(&v[key]), want, "{key}");
    }
    assert_eq!(
        keys(&v["steps"][0]),
        [
            "acquire",
            "call",
            "claim",
            "holder",
            "kind",
            "n",
            "prefix_len",
            "what"
        ]
    );
    assert_eq!(
        (v["mode"].as_str(), &v["eni"]),
        (Some("kernel-only"), &Value::Null)
    );
    // The address is there with another prefix: replaced, and the call says so.
    assert_eq!(
        v["steps"][0]["call"],
        "ip addr del 10.0.0.5/20 dev ens5; ip addr add 10.0.0.5/24 dev ens5"
    );
}

#[test]
fn releases_unknowns_fences_and_converged_plans() {
    // A standby releasing its kernel address, kernel-only.
    let o = obs(standby(), on(24), CloudView::Disabled);
    let p = plan(
        vec![Step::RemoveKernel],
        Verdict::Releasing {
            reason: "in recovery".into(),
        },
    );
    let text = report(&ctx(false), &o, &p).render_text();
    for want in [
        "postgresql:   standby (in recovery)\n",
        "repmgr.nodes: node 2 is a standby row (active primary: node 2)\n",
        "kernel:       10.0.0.5/24 is on ens5\n",
        "ec2:          disabled (kernel-only mode)\n",
        "eligibility:  not eligible: in recovery\n",
        "verdict:      releasing: in recovery\n",
        "step 1:       ip addr del 10.0.0.5/24 dev ens5  # remove_kernel",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }

    // PostgreSQL and EC2 unknown, nothing to do.
    let c = PlanContext {
        repmgr_primary: None,
        ..ctx(true)
    };
    let o = obs(
        PgView::Unknown("connection refused".into()),
        KernelView::Absent,
        CloudView::Unknown {
            kind: FailureKind::Throttled,
            code: Some("RequestLimitExceeded".into()),
            reason: "slow down".into(),
        },
    );
    let p = plan(
        Vec::new(),
        Verdict::PgUnknown {
            reason: "connection refused".into(),
        },
    );
    let r = report(&c, &o, &p);
    let text = r.render_text();
    for want in [
        "postgresql:   unknown: connection refused\n",
        "repmgr.nodes: unknown (PostgreSQL not reachable)\n",
        "ec2:          unknown: slow down (RequestLimitExceeded)\n",
        "eligibility:  unknown: connection refused\n",
        "severity:     CRITICAL (check exits 2)\n",
        // One meaning of "converged" (issue 19, item 9): nothing to do AND an OK
        // verdict, as `status` and `/health` say; a CRITICAL with no steps is not.
        "steps:        none (not converged: the verdict is CRITICAL)\n",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    let v: Value = json_of(&r);
    assert_eq!(v["ec2"]["code"], "RequestLimitExceeded");
    assert_eq!(v["repmgr"]["says"], "unknown");
    assert_eq!(v["verdict"]["severity"], "critical");
    assert_eq!(v["steps"], json!([]));
    assert_eq!(v["converged"], false);
    let held = report(
        &c,
        &obs(primary(4), on(24), CloudView::Disabled),
        &plan(Vec::new(), Verdict::Holding),
    );
    assert!(
        held.render_text()
            .contains("steps:        none (converged)\n")
    );
    assert_eq!(json_of(&held)["converged"], true);

    // A stale primary: an unreadable claim on our side, the fence with its environment.
    let o = obs(
        primary(4),
        on(24),
        CloudView::Me {
            claim: ClaimTag::Invalid("needs both timeline and node".into()),
        },
    );
    let p = plan(
        vec![
            Step::RemoveKernel,
            Step::Fence {
                holder: "eni-0ff".into(),
            },
        ],
        Verdict::StalePrimary {
            holder: "eni-0ff".into(),
            holder_timeline: 5,
            our_timeline: 4,
        },
    );
    let r = report(&ctx(true), &o, &p);
    let text = r.render_text();
    assert!(
        text.contains("ec2:          held by our ENI eni-0a1, unreadable claim tag (needs both timeline and node)\n"),
        "{text}"
    );
    assert!(
        text.contains("step 2:       /bin/sh -c \"/usr/local/bin/fence-old-primary\" with VIP_FENCE_HOLDER_ENI=eni-0ff VIP_FENCE_VIP=10.0.0.5 VIP_FENCE_NODE_ID=2  # fence"),
        "{text}"
    );
    let v: Value = json_of(&r);
    assert_eq!(v["ec2"]["claim"]["state"], "invalid");
    assert_eq!(v["verdict"]["kind"], "stale-primary");
    assert_eq!(v["verdict"]["check_exit"], 2);
    assert_eq!(v["steps"][1]["holder"], "eni-0ff");
    assert_eq!(v["steps"][1]["acquire"], false);
}

#[test]
fn every_repmgr_answer_has_its_words() {
    for (says, key, words) in [
        (RepmgrSays::SelfInactive, "self-inactive", "marked inactive"),
        (
            RepmgrSays::OtherPrimary(3),
            "other-primary",
            "node 3 is an active primary too",
        ),
        (
            RepmgrSays::NotRegistered,
            "not-registered",
            "no row for node 2",
        ),
        (RepmgrSays::NoMetadata, "no-metadata", "does not exist"),
    ] {
        let pg = primary_saying(2, says);
        let r = report(
            &ctx(false),
            &obs(pg, KernelView::Absent, CloudView::Disabled),
            &plan(Vec::new(), Verdict::Standby { reason: "x".into() }),
        );
        assert_eq!(r.repmgr.says, key);
        assert!(r.repmgr.text.contains(words), "{}", r.repmgr.text);
        assert_eq!(r.eligibility.state, "not-eligible");
    }
}
