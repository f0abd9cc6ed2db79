//! `vip-arbiter retire-claim --node N` against the EC2 emulator on loopback (no
//! namespaces; the config names the ENI and subnet, so neither IMDS nor the interface
//! is asked): the dry run prints the plan and changes nothing, `--apply` deletes the
//! node's subnet mark and its ENI claim and nothing else, the live holder's claim is
//! refused without `--force` and removed with it, an EC2 error is one line with its AWS
//! code, an unknown node has nothing to retire, and the refusals that need no EC2.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_ec2::types::{Filter, Tag};
use support::Ran;
use support::bed::{Bed, VIP};
use support::testbed::{arbiter_bin, aws_env, sdk_client};

/// The emulator on loopback with ENIs for n1 (this node, node 1) and n2; no namespaces.
fn bed() -> Bed {
    Bed::builder().nodes(0).ec2_on_loopback().build()
}

fn claim(timeline: u32, node: u32) -> String {
    format!("timeline={timeline};node={node}")
}

fn mark_key(node: u32) -> String {
    format!("vip-arbiter:{VIP}/node-{node}")
}

fn claim_key() -> String {
    format!("vip-arbiter:{VIP}")
}

/// What this file asks of the bed: claims written as a node writes them, the VIP put
/// by hand, tags read back, the verb run as node 1.
impl Bed {
    /// Node `node`'s claim as the daemon writes it: one CreateTags putting the claim
    /// key and the node's mark key on its ENI and on the subnet.
    fn write_claim(&self, node: u32, timeline: u32) {
        let value = claim(timeline, node);
        let c = sdk_client(&self.emu().url);
        self.rt()
            .block_on(
                c.create_tags()
                    .resources(self.eni(node))
                    .resources(self.subnet())
                    .tags(Tag::builder().key(claim_key()).value(&value).build())
                    .tags(Tag::builder().key(mark_key(node)).value(&value).build())
                    .send(),
            )
            .expect("write a claim");
    }

    /// Put the VIP on node `node`'s ENI by hand.
    fn hand_assign(&self, node: u32) {
        let c = sdk_client(&self.emu().url);
        self.rt()
            .block_on(
                c.assign_private_ip_addresses()
                    .network_interface_id(self.eni(node))
                    .private_ip_addresses(VIP)
                    .allow_reassignment(true)
                    .send(),
            )
            .expect("hand assign");
    }

    /// A resource's tags, as DescribeTags shows them now.
    fn tags(&self, rid: &str) -> BTreeMap<String, String> {
        let c = sdk_client(&self.emu().url);
        let out = self
            .rt()
            .block_on(
                c.describe_tags()
                    .filters(Filter::builder().name("resource-id").values(rid).build())
                    .send(),
            )
            .expect("describe tags");
        out.tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect()
    }

    /// Every tag of the subnet and both ENIs: the whole state a retirement may change.
    fn all_tags(&self) -> Vec<BTreeMap<String, String>> {
        [self.subnet(), self.eni(1), self.eni(2)]
            .iter()
            .map(|r| self.tags(r))
            .collect()
    }

    /// The DeleteTags calls the emulator logged: their parameters.
    fn deletes(&self) -> Vec<serde_json::Value> {
        self.emu()
            .calls()
            .into_iter()
            .filter(|c| c["action"] == "DeleteTags")
            .map(|c| c["params"].clone())
            .collect()
    }

    /// `vip-arbiter retire-claim ARGS` as node 1 (n1's ENI, the bed's subnet), with
    /// `aws` as the config's [aws] section's `enabled`.
    fn retire_with(&self, aws: bool, args: &[&str]) -> Ran {
        let cfg = self.dir().join("va.toml");
        std::fs::write(
            &cfg,
            format!(
                "vip = \"{VIP}\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"host=/nonexistent user=repmgr\"\n\
                 [aws]\nenabled = {aws}\nregion = \"us-east-1\"\neni_id = \"{}\"\nsubnet_id = \"{}\"\n",
                self.eni(1),
                self.subnet()
            ),
        )
        .expect("write config");
        Command::new(arbiter_bin())
            .arg("--config")
            .arg(&cfg)
            .arg("retire-claim")
            .args(args)
            .envs(aws_env(&self.emu().url))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run vip-arbiter retire-claim")
            .into()
    }

    fn retire(&self, args: &[&str]) -> Ran {
        self.retire_with(true, args)
    }

    /// Two promotions reached timeline 3: node 1 holds the VIP, node 2 (gone) left its
    /// claim on its ENI and its mark on the subnet.
    fn diverged(&self) {
        self.write_claim(1, 3);
        self.write_claim(2, 3);
        self.hand_assign(1);
    }

    /// The lines the verb prints for node 2's mark and ENI claim at `timeline`.
    fn node2_lines(&self, verb: &str, timeline: u32) -> [String; 2] {
        [
            format!(
                "{verb} subnet {} mark tag {} = \"{}\"",
                self.subnet(),
                mark_key(2),
                claim(timeline, 2)
            ),
            format!(
                "{verb} ENI {} claim tag {} = \"{}\"",
                self.eni(2),
                claim_key(),
                claim(timeline, 2)
            ),
        ]
    }
}

impl Ran {
    /// stdout's lines that name a tag (dry run or done), in order.
    fn tag_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("would delete ") || l.starts_with("deleted "))
            .collect()
    }
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let bed = bed();
    bed.diverged();
    let before = bed.all_tags();
    let r = bed.retire(&["--node", "2"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        r.tag_lines(),
        bed.node2_lines("would delete", 3),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.lines().next().is_some_and(|l| l.starts_with(&format!(
            "# vip-arbiter retire-claim: node 2, VIP {VIP}, subnet {}; the VIP is held by this node's ENI {} (claim timeline=3;node=1)",
            bed.subnet(),
            bed.eni(1)
        ))),
        "{}",
        r.all()
    );
    assert!(
        r.stdout
            .contains("dry run: nothing was changed; --apply deletes 2 tag(s)"),
        "{}",
        r.all()
    );
    assert_eq!(bed.all_tags(), before);
    assert!(bed.deletes().is_empty(), "{:?}", bed.deletes());
}

#[test]
fn apply_deletes_the_mark_and_the_eni_claim_and_nothing_else() {
    let bed = bed();
    bed.diverged();
    let r = bed.retire(&["--node", "2", "--apply"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.tag_lines(), bed.node2_lines("deleted", 3), "{}", r.all());
    let subnet = bed.tags(bed.subnet());
    assert!(!subnet.contains_key(&mark_key(2)), "{subnet:?}");
    assert_eq!(subnet.get(&mark_key(1)), Some(&claim(3, 1)), "{subnet:?}");
    let eni2 = bed.tags(bed.eni(2));
    assert!(!eni2.contains_key(&claim_key()), "{eni2:?}");
    assert_eq!(
        bed.tags(bed.eni(1)).get(&claim_key()),
        Some(&claim(3, 1)),
        "node 1's claim stays"
    );
    assert_eq!(bed.holders(), vec![bed.eni(1).to_owned()]);
    // One DeleteTags per resource, each given the value it was read with.
    let deletes = bed.deletes();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert_eq!(deletes[0]["ResourceId.1"], bed.subnet());
    assert_eq!(deletes[0]["Tag.1.Key"], mark_key(2).as_str());
    assert_eq!(deletes[0]["Tag.1.Value"], claim(3, 2).as_str());
    assert_eq!(deletes[1]["ResourceId.1"], bed.eni(2));
    assert_eq!(deletes[1]["Tag.1.Key"], claim_key().as_str());
    // Done: a second run finds nothing.
    let again = bed.retire(&["--node", "2", "--apply"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again.stdout.starts_with("nothing to retire: node 2"),
        "{}",
        again.all()
    );
}

#[test]
fn the_live_holders_claim_is_refused_without_force_and_removed_with_it() {
    let bed = bed();
    bed.write_claim(1, 3);
    bed.write_claim(2, 3);
    bed.hand_assign(2);
    let before = bed.all_tags();
    for args in [&["--node", "2"][..], &["--node", "2", "--apply"]] {
        let r = bed.retire(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.all());
        assert_eq!(r.stdout, "", "{args:?}: {}", r.all());
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {}", r.all());
        assert!(
            lines[0].starts_with(&format!(
                "vip-arbiter retire-claim: refused: node 2's ENI {} holds the VIP at EC2 now (claim timeline=3;node=2)",
                bed.eni(2)
            )) && lines[0].contains("--force to retire anyway"),
            "{}",
            r.all()
        );
    }
    assert_eq!(bed.all_tags(), before);
    assert!(bed.deletes().is_empty(), "{:?}", bed.deletes());

    let r = bed.retire(&["--node", "2", "--apply", "--force"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("# --force: node 2's ENI"), "{}", r.all());
    assert_eq!(r.tag_lines(), bed.node2_lines("deleted", 3), "{}", r.all());
    assert!(!bed.tags(bed.subnet()).contains_key(&mark_key(2)));
    assert!(!bed.tags(bed.eni(2)).contains_key(&claim_key()));
    // The VIP itself is not touched.
    assert_eq!(bed.holders(), vec![bed.eni(2).to_owned()]);
}

#[test]
fn an_ec2_error_is_one_line_with_its_aws_code_and_deletes_nothing() {
    let bed = bed();
    bed.diverged();
    let before = bed.all_tags();
    for (action, args) in [
        ("DeleteTags", &["--node", "2", "--apply"][..]),
        ("DescribeTags", &["--node", "2"]),
    ] {
        bed.emu().control(
            "POST",
            "/_va/fault",
            Some(&serde_json::json!({"kind": "unauthorized", "seconds": 60, "actions": [action]})),
        );
        let r = bed.retire(args);
        bed.emu().control("DELETE", "/_va/fault", None);
        assert_eq!(r.code, 1, "{action}: {}", r.all());
        let lines: Vec<&str> = r.stderr.lines().collect();
        let want = if action == "DeleteTags" { 2 } else { 1 };
        assert_eq!(
            lines.len(),
            want,
            "{action}: one line a failure: {}",
            r.all()
        );
        for l in lines {
            assert!(
                l.contains(&format!("not allowed: grant IAM action ec2:{action}"))
                    && l.ends_with("(UnauthorizedOperation)"),
                "{action}: {}",
                r.all()
            );
        }
        assert!(r.tag_lines().is_empty(), "{action}: {}", r.all());
    }
    assert_eq!(bed.all_tags(), before);
}

#[test]
fn an_unknown_node_has_nothing_to_retire() {
    let bed = bed();
    bed.diverged();
    let before = bed.all_tags();
    for args in [&["--node", "7"][..], &["--node", "7", "--apply"]] {
        let r = bed.retire(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.all());
        assert_eq!(
            r.stdout,
            format!(
                "nothing to retire: node 7 has no mark on subnet {} and no ENI there carries a claim of node 7 for VIP {VIP}\n",
                bed.subnet()
            ),
            "{}",
            r.all()
        );
    }
    assert_eq!(bed.all_tags(), before);
    assert!(bed.deletes().is_empty());
}

#[test]
fn refusals_that_need_no_ec2_and_kernel_only_mode() {
    let bed = bed();
    bed.diverged();
    let before = bed.all_tags();
    bed.emu().control("DELETE", "/_va/calls", None);
    for (args, why) in [
        (
            &["--node", "0", "--apply"][..],
            "no node 0: node ids are 1 or more",
        ),
        (&["--node", "-2", "--apply", "--force"], "no node -2"),
        (
            &["--node", "1", "--apply"],
            "node 1 is this node (node_id in the config): retiring its own claim needs --force",
        ),
    ] {
        let r = bed.retire(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.all());
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.all());
        assert!(
            r.stderr.starts_with("vip-arbiter retire-claim: refused: ") && r.stderr.contains(why),
            "{args:?}: {}",
            r.all()
        );
    }
    assert!(
        bed.emu().calls().is_empty(),
        "refused before asking EC2: {:?}",
        bed.emu().calls()
    );
    // With --force this node's own claim is retired like any other (a dry run here).
    let r = bed.retire(&["--node", "1", "--force"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("# --force: node 1 is this node"),
        "{}",
        r.all()
    );
    assert_eq!(r.tag_lines().len(), 2, "{}", r.all());
    // Not a number: clap's usage error.
    assert_eq!(bed.retire(&["--node", "two"]).code, 2);
    // Kernel-only mode has no claims at EC2: a configuration error.
    let r = bed.retire_with(false, &["--node", "2"]);
    assert_eq!(r.code, 78, "{}", r.all());
    assert!(r.stderr.contains("kernel-only mode"), "{}", r.all());
    assert_eq!(bed.all_tags(), before);
}
