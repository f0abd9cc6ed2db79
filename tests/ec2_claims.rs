//! The claim protocol against moto's EC2 (behind tests/ec2_emulator/launcher.py, on
//! loopback): one test per row of the table in docs/decision-table.md, with the real
//! EC2 adapter and real SDK requests; PostgreSQL and the kernel are fakes here (the
//! namespace tests use the real ones). The emulator's call log proves the request
//! shaping (filters, AllowReassignment) and the API budget.

mod support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::bed::Bed;
use support::fakes::{self, Fake, Shared};
use support::testbed::sdk_client;
use vip_arbiter::adapters::ec2::Ec2;
use vip_arbiter::core::backoff::Backoff;
use vip_arbiter::core::claim::{self, Claim};
use vip_arbiter::core::decide::{CloudPolicy, Memory, Policy};
use vip_arbiter::core::observation::{ClaimTag, CloudView};
use vip_arbiter::health::metrics::Metrics;
use vip_arbiter::pass::journal::{Kept, Nowhere};
use vip_arbiter::pass::observe::CloudSource;
use vip_arbiter::pass::reconcile::{self, Limits, PassReport, World};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);

/// The emulator on loopback with ENIs for n1 (`me`) and n2 (`other`); no namespaces.
fn bed() -> Bed {
    Bed::builder().nodes(0).ec2_on_loopback().build()
}

/// What this file asks of the bed: the real EC2 adapter, a hand assignment, the
/// actions the emulator logged.
impl Bed {
    /// Our ENI (n1's).
    fn me(&self) -> String {
        self.eni(1).to_owned()
    }

    /// The other node's ENI (n2's).
    fn other(&self) -> String {
        self.eni(2).to_owned()
    }

    fn adapter(&self, eni: &str, metrics: Arc<Metrics>) -> Ec2 {
        Ec2::new(
            sdk_client(&self.emu().url),
            VIP,
            eni.to_owned(),
            self.subnet().to_owned(),
            metrics,
        )
    }

    /// What our adapter (on our ENI, with fresh metrics) sees at EC2 now.
    fn observe_mine(&self) -> CloudView {
        self.rt().block_on(
            self.adapter(&self.me(), Arc::new(Metrics::default()))
                .observe(),
        )
    }

    /// Put the VIP on `eni` by hand (as other tooling would), optionally with a claim tag.
    fn hand_assign(&self, eni: &str, claim: Option<Claim>) {
        let c = sdk_client(&self.emu().url);
        self.rt().block_on(async {
            c.assign_private_ip_addresses()
                .network_interface_id(eni)
                .private_ip_addresses(VIP.to_string())
                .allow_reassignment(true)
                .send()
                .await
                .expect("hand assign");
            if let Some(cl) = claim {
                c.create_tags()
                    .resources(eni)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key(claim::tag_key(VIP))
                            .value(cl.to_string())
                            .build(),
                    )
                    .send()
                    .await
                    .expect("hand tag");
            }
        });
        self.emu().control("DELETE", "/_va/calls", None);
    }

    /// Actions the daemon made, in order (the control API is not in the log).
    fn actions(&self) -> Vec<String> {
        self.emu()
            .calls()
            .iter()
            .filter_map(|c| c["action"].as_str().map(str::to_owned))
            .collect()
    }
}

/// A claim without a system id.
fn claim_by(timeline: u32, node_id: i32) -> Claim {
    Claim {
        timeline,
        node_id,
        system_id: None,
    }
}

struct Node {
    world: World<Fake, Fake, Ec2, Fake>,
    mem: Memory,
    now: Duration,
    state: Shared,
    metrics: Arc<Metrics>,
}

fn policy() -> Policy {
    Policy {
        node_id: 1,
        prefix_len: 32,
        pg_unknown_hold: Duration::from_secs(10),
        cloud: Some(CloudPolicy {
            verify_interval: Duration::from_secs(30),
            cloud_unknown_hold: Duration::from_secs(300),
            // Short, so the waits it causes fit in a test (each pass here is 1 s).
            consistency_bound: Duration::from_secs(3),
            backoff: Backoff::default(),
            fence_configured: true,
        }),
    }
}

impl Node {
    fn new(bed: &Bed, timeline: u32) -> Node {
        let state = fakes::shared();
        state.lock().expect("lock").pg = Some(fakes::primary(timeline));
        let f = Fake(state.clone());
        let metrics = Arc::new(Metrics::default());
        Node {
            world: World {
                pg: f.clone(),
                kernel: f.clone(),
                cloud: bed.adapter(&bed.me(), metrics.clone()),
                fencer: f,
            },
            mem: Memory::default(),
            now: Duration::ZERO,
            state,
            metrics,
        }
    }

    fn pass(&mut self, bed: &Bed) -> PassReport {
        let limits = Limits {
            observe: Duration::from_secs(2),
            cloud: Duration::from_secs(8),
            step: Duration::from_secs(8),
        };
        let (r, mem) = bed.rt().block_on(reconcile::pass(
            &mut self.world,
            &self.mem,
            &policy(),
            limits,
            (self.now, u32::MAX),
            &mut Kept::new(Nowhere),
        ));
        self.mem = mem;
        self.now += Duration::from_secs(1);
        r
    }

    fn kernel(&self) -> Option<u8> {
        self.state.lock().expect("lock").kernel
    }
}

#[test]
fn row_nobody_claim_assign_verify_then_kernel_in_five_calls() {
    let bed = bed();
    let mut n = Node::new(&bed, 2);
    let r = n.pass(&bed);
    assert_eq!(r.verdict.kind(), "acquiring", "{}", r.verdict);
    assert_eq!(bed.holders(), vec![bed.me()]);
    assert_eq!(n.kernel(), Some(32));
    // The two reads run concurrently, in either order.
    let mut actions = bed.actions();
    actions[..2].sort();
    assert_eq!(
        actions,
        [
            "DescribeNetworkInterfaces",
            "DescribeTags",
            "CreateTags",
            "AssignPrivateIpAddresses",
            "DescribeNetworkInterfaces"
        ]
    );
    // Request shaping, as EC2 received it.
    let calls = bed.emu().calls();
    let at = |action: &str| {
        calls
            .iter()
            .find(|c| c["action"] == json!(action))
            .map(|c| c["params"].clone())
            .unwrap_or_else(|| panic!("no {action}"))
    };
    // One CreateTags: the claim and the node's mark, on our ENI and on the subnet.
    let tags = at("CreateTags").to_string();
    assert!(
        tags.contains(&bed.me()) && tags.contains(bed.subnet()),
        "both resources: {tags}"
    );
    assert!(
        tags.contains("vip-arbiter:10.77.0.100/node-1"),
        "the mark key: {tags}"
    );
    let marks = bed.rt().block_on(
        bed.adapter(&bed.other(), Arc::new(Metrics::default()))
            .marks(),
    );
    assert_eq!(
        marks,
        vip_arbiter::core::observation::MarkView::Read {
            marks: vec![claim_by(2, 1)]
        },
        "another node reads our mark on the subnet"
    );
    let describe = &at("DescribeNetworkInterfaces");
    let filters: Value = describe.clone();
    let text = filters.to_string();
    assert!(
        text.contains("addresses.private-ip-address") && text.contains("10.77.0.100"),
        "{text}"
    );
    assert!(
        text.contains("subnet-id") && text.contains(bed.subnet()),
        "{text}"
    );
    let assign = &at("AssignPrivateIpAddresses");
    assert_eq!(assign["AllowReassignment"], json!("true"), "{assign}");
    assert_eq!(assign["NetworkInterfaceId"], json!(bed.me()), "{assign}");
    // Our claim is on our own ENI.
    assert_eq!(
        bed.observe_mine(),
        CloudView::Me {
            claim: ClaimTag::Valid(claim_by(2, 1))
        }
    );
    let m = n.metrics.prometheus();
    assert!(
        m.contains(
            "vip_arbiter_ec2_calls_total{action=\"AssignPrivateIpAddresses\",result=\"ok\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains(
            "vip_arbiter_ec2_calls_total{action=\"DescribeNetworkInterfaces\",result=\"ok\"} 2"
        ),
        "{m}"
    );
}

#[test]
fn row_other_eni_without_claim_is_taken_over_after_the_consistency_bound() {
    let bed = bed();
    bed.hand_assign(&bed.other(), None);
    let mut n = Node::new(&bed, 1);
    // Its claim may only not be visible yet: no takeover before it has been seen
    // holding for the bound (3 s here), then taken over.
    for _ in 0..3 {
        let r = n.pass(&bed);
        assert_eq!(r.verdict.kind(), "ec2-settling", "{}", r.verdict);
        assert_eq!(bed.holders(), vec![bed.other()]);
        assert_eq!(n.kernel(), None);
    }
    n.pass(&bed);
    assert_eq!(bed.holders(), vec![bed.me()], "moved, not duplicated");
    assert_eq!(n.kernel(), Some(32));
}

#[test]
fn row_other_eni_with_lower_claim_is_taken_over() {
    let bed = bed();
    bed.hand_assign(&bed.other(), Some(claim_by(2, 2)));
    let mut n = Node::new(&bed, 3);
    n.pass(&bed);
    assert_eq!(bed.holders(), vec![bed.me()]);
}

/// Another node's equal claim (a diverged promotion) is waited out for the bound by a
/// node that never held the VIP at this timeline, then taken over (issue 18, 5a).
#[test]
fn row_other_eni_with_an_equal_claim_is_taken_after_the_bound() {
    let bed = bed();
    bed.hand_assign(&bed.other(), Some(claim_by(3, 2)));
    let mut n = Node::new(&bed, 3);
    let r = n.pass(&bed);
    assert_eq!(r.verdict.kind(), "ec2-settling", "{}", r.verdict);
    assert_eq!(bed.holders(), vec![bed.other()]);
    // The bound is 3 s here; passes are a second apart.
    for _ in 0..4 {
        n.pass(&bed);
    }
    assert_eq!(bed.holders(), vec![bed.me()], "taken after the bound");
}

#[test]
fn row_other_eni_with_equal_or_higher_claim_is_stale_primary() {
    // Equal: this node held the VIP at its timeline before (a diverged promotion
    // took it from us); higher: always.
    for theirs in [3, 4] {
        let bed = bed();
        bed.hand_assign(&bed.other(), Some(claim_by(theirs, 2)));
        let mut n = Node::new(&bed, 3);
        n.mem.cloud.held_max = Some(3);
        n.state.lock().expect("lock").kernel = Some(32);
        for _ in 0..60 {
            let r = n.pass(&bed);
            assert_eq!(r.verdict.kind(), "stale-primary", "{}", r.verdict);
            assert!(
                r.verdict.to_string().contains(&bed.other()),
                "names the holder: {}",
                r.verdict
            );
        }
        assert_eq!(bed.holders(), vec![bed.other()], "zero moves in 60 passes");
        assert_eq!(n.kernel(), None, "kernel address removed");
        assert!(
            !bed.actions()
                .iter()
                .any(|a| a == "AssignPrivateIpAddresses" || a == "CreateTags")
        );
        assert_eq!(
            n.state.lock().expect("lock").fences,
            vec![bed.other()],
            "fence once"
        );
    }
}

#[test]
fn row_me_refreshes_claim_when_timeline_changes() {
    let bed = bed();
    bed.hand_assign(&bed.me(), Some(claim_by(1, 1)));
    let mut n = Node::new(&bed, 1);
    n.pass(&bed);
    let mut actions = bed.actions();
    actions.sort();
    // The claim tag is on the ENI but the subnet has no mark of ours (only the ENI was
    // tagged): the holder writes its claim again, which writes the mark (issue 18, 6).
    assert_eq!(
        actions,
        ["CreateTags", "DescribeNetworkInterfaces", "DescribeTags"],
        "the missing mark repaired"
    );
    bed.emu().control("DELETE", "/_va/calls", None);
    n.pass(&bed);
    assert!(
        bed.actions().is_empty(),
        "settled: no call until the next look"
    );
    bed.emu().control("DELETE", "/_va/calls", None);
    n.state.lock().expect("lock").pg = Some(fakes::primary(2));
    n.pass(&bed);
    let mut actions = bed.actions();
    actions[..2].sort();
    assert_eq!(
        actions,
        ["DescribeNetworkInterfaces", "DescribeTags", "CreateTags"]
    );
    assert_eq!(
        bed.observe_mine(),
        CloudView::Me {
            claim: ClaimTag::Valid(claim_by(2, 1))
        }
    );
}

/// Issue 18, sequence 6: the holder prunes, on a verify, the marks of node ids its
/// repmgr.nodes no longer lists that are below the highest mark: one DeleteTags on the
/// subnet, by value. Its own mark and a known node's stay.
#[test]
fn the_holder_prunes_the_marks_of_retired_node_ids_by_value() {
    let bed = bed();
    let other = bed.adapter(&bed.other(), Arc::new(Metrics::default()));
    // Node 7 (retired since) claimed at 3 and node 2 at 4, long ago.
    for c in [claim_by(3, 7), claim_by(4, 2)] {
        bed.rt().block_on(other.tag(c, false)).expect("tag");
    }
    let mut n = Node::new(&bed, 5);
    n.state.lock().expect("lock").known_nodes = Some(vec![1, 2]);
    for _ in 0..6 {
        n.pass(&bed);
    }
    let marks = |bed: &Bed| {
        let mut m: Vec<String> = bed
            .rt()
            .block_on(other.read_marks(false))
            .expect("read marks")
            .into_iter()
            .filter(|(k, _)| k.contains("/node-"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        m.sort();
        m
    };
    assert_eq!(
        marks(&bed),
        [
            format!("{}={}", claim::mark_key(VIP, 1), claim_by(5, 1)),
            format!("{}={}", claim::mark_key(VIP, 2), claim_by(4, 2)),
        ]
    );
    let deletes: Vec<Value> = bed
        .emu()
        .calls()
        .into_iter()
        .filter(|c| c["action"] == "DeleteTags")
        .collect();
    assert_eq!(deletes.len(), 1, "one DeleteTags: {deletes:?}");
    assert_eq!(deletes[0]["status"], 200);
}

/// A missing cluster tag is CRITICAL (issue 18): the subnet's `vip-arbiter-cluster`
/// tag deleted (a tool that manages tags) turns the holder's verdict to
/// `holding-untagged` at its next read of the subnet's tags; the VIP stays; the tag
/// back, `holding` again.
#[test]
fn a_holder_whose_subnet_lost_the_cluster_tag_is_critical() {
    let bed = bed();
    let mut n = Node::new(&bed, 1);
    let r = n.pass(&bed);
    assert_eq!(r.verdict.kind(), "acquiring", "{:?}", r.verdict);
    let r = n.pass(&bed);
    assert_eq!(r.verdict.kind(), "holding", "{:?}", r.verdict);
    let client = sdk_client(&bed.emu().url);
    let tag = |t: &str| {
        aws_sdk_ec2::types::Tag::builder()
            .key("vip-arbiter-cluster")
            .value(t)
            .build()
    };
    bed.rt()
        .block_on(
            client
                .delete_tags()
                .resources(bed.subnet())
                .tags(tag("test"))
                .send(),
        )
        .expect("delete the cluster tag");
    // The next looks read the subnet's tags (the re-verify schedule after a takeover).
    let verdicts: Vec<&'static str> = (0..4).map(|_| n.pass(&bed).verdict.kind()).collect();
    assert!(verdicts.contains(&"holding-untagged"), "{verdicts:?}");
    assert_eq!(*verdicts.last().expect("passes"), "holding-untagged");
    assert_eq!(
        bed.observe_mine(),
        CloudView::Me {
            claim: ClaimTag::Valid(claim_by(1, 1))
        }
    );
    bed.rt()
        .block_on(
            client
                .create_tags()
                .resources(bed.subnet())
                .tags(tag("test"))
                .send(),
        )
        .expect("put it back");
    let verdicts: Vec<&'static str> = (0..8).map(|_| n.pass(&bed).verdict.kind()).collect();
    assert_eq!(*verdicts.last().expect("passes"), "holding", "{verdicts:?}");
}

#[test]
fn row_not_eligible_never_calls_ec2() {
    let bed = bed();
    let mut n = Node::new(&bed, 1);
    n.state.lock().expect("lock").pg = Some(fakes::standby());
    n.state.lock().expect("lock").kernel = Some(32);
    for _ in 0..100 {
        n.pass(&bed);
    }
    assert_eq!(n.kernel(), None);
    assert!(
        bed.actions().is_empty(),
        "standby made EC2 calls: {:?}",
        bed.actions()
    );
}

#[test]
fn row_unknown_never_adds_and_converges_after_the_fault_window() {
    let bed = bed();
    let mut n = Node::new(&bed, 2);
    bed.emu().control(
        "POST",
        "/_va/fault",
        Some(&json!({"kind": "throttle", "seconds": 3})),
    );
    let mut passes = 0;
    while bed.holders() != vec![bed.me()] {
        let r = n.pass(&bed);
        passes += 1;
        if bed.holders().is_empty() {
            assert_eq!(
                n.kernel(),
                None,
                "kernel address added without a confirmation"
            );
            assert_eq!(r.verdict.kind(), "cloud-unknown", "{}", r.verdict);
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(passes < 40, "did not converge after the fault window");
    }
    assert_eq!(n.kernel(), Some(32));
    let codes: Vec<String> = bed
        .emu()
        .calls()
        .iter()
        .filter_map(|c| c["error_code"].as_str().map(str::to_owned))
        .collect();
    assert!(
        codes.iter().all(|c| c == "RequestLimitExceeded") && !codes.is_empty(),
        "{codes:?}"
    );
}

#[test]
fn unauthorized_is_critical_and_names_the_iam_action() {
    let bed = bed();
    let mut n = Node::new(&bed, 2);
    bed.emu().control("POST", "/_va/fault", Some(&json!({"kind": "unauthorized", "seconds": 30, "actions": ["AssignPrivateIpAddresses"]})));
    let r = n.pass(&bed);
    assert_eq!(
        r.verdict.severity(),
        vip_arbiter::core::plan::Severity::Critical,
        "{}",
        r.verdict
    );
    let text = r.verdict.to_string();
    assert!(
        text.contains("ec2:AssignPrivateIpAddresses") && text.contains("UnauthorizedOperation"),
        "{text}"
    );
    assert_eq!(n.kernel(), None);
}

#[test]
fn describe_errors_keep_the_aws_code() {
    let bed = bed();
    bed.emu().control(
        "POST",
        "/_va/fault",
        Some(&json!({"kind": "http503", "seconds": 30})),
    );
    let seen = bed.observe_mine();
    match seen {
        CloudView::Unknown { code, .. } => assert!(code.is_some(), "AWS error code kept"),
        other => panic!("expected unknown, got {other:?}"),
    }
}
