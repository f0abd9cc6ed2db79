//! `retire-claim --node N`: the operator retires a node's claim for the VIP, its mark
//! on the subnet (`vip-arbiter:<VIP>/node-<N>`) and every ENI claim tag
//! (`vip-arbiter:<VIP>`) whose value names node N. For two promotions that reached
//! the same timeline once the operator chose which history to keep (the other's
//! equal mark fences a node that held the VIP at that timeline), or a decommissioned
//! node (its mark uses one of the subnet's 50 tags). A dry run unless
//! `--apply`; refused while that node's ENI holds the VIP at EC2, or for this node
//! itself, unless `--force`. What to delete and when to refuse are pure functions
//! (`to_retire`, `refusal`); `run` reads EC2 and deletes.

use std::fmt;
use std::net::Ipv4Addr;

use crate::adapters::ec2::{self, Ec2Error};
use crate::config::{ConfigErrors, Settings};
use crate::core::claim;
use crate::core::observation::{ClaimTag, CloudView};
use crate::pass::act::StepError;

/// Refused, or EC2 failed: nothing (more) was deleted.
pub const EXIT_REFUSED: i32 = 1;

/// One tag to delete, with the value it was read with (DeleteTags is given that value,
/// so a tag rewritten since stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub place: Place,
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The node's high-water mark on the subnet.
    Mark { subnet: String },
    /// A claim tag naming the node on an ENI.
    Claim { eni: String },
}

impl Doomed {
    /// The resource the tag is on.
    pub fn resource(&self) -> &str {
        match &self.place {
            Place::Mark { subnet } => subnet,
            Place::Claim { eni } => eni,
        }
    }
}

impl fmt::Display for Doomed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, kind) = match &self.place {
            Place::Mark { subnet } => (format!("subnet {subnet}"), "mark"),
            Place::Claim { eni } => (format!("ENI {eni}"), "claim"),
        };
        write!(f, "{what} {kind} tag {} = {:?}", self.key, self.value)
    }
}

/// `--node` as given: repmgr's node ids start at 1.
pub fn node_id(given: i64) -> Result<i32, String> {
    i32::try_from(given)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("no node {given}: node ids are 1 or more (repmgr's node_id)"))
}

/// What retiring `node`'s claim deletes: its mark among `subnet_tags` (whatever its
/// value: the key is that node's alone), then, by ENI id, each ENI claim in
/// `eni_claims` (ENI id, tag value) whose value is a valid claim of `node`. An
/// unreadable claim names no node, so it is left alone.
pub fn to_retire(
    vip: Ipv4Addr,
    node: i32,
    subnet: &str,
    subnet_tags: &[(String, String)],
    eni_claims: &[(String, String)],
) -> Vec<Doomed> {
    let mark = claim::mark_key(vip, node);
    let marks = subnet_tags
        .iter()
        .filter(|(k, _)| *k == mark)
        .map(|(k, v)| Doomed {
            place: Place::Mark {
                subnet: subnet.to_owned(),
            },
            key: k.clone(),
            value: v.clone(),
        });
    let mut claims: Vec<Doomed> = eni_claims
        .iter()
        .filter(|(_, v)| claim::parse(v).valid().is_some_and(|c| c.node_id == node))
        .map(|(eni, v)| Doomed {
            place: Place::Claim { eni: eni.clone() },
            key: claim::tag_key(vip),
            value: v.clone(),
        })
        .collect();
    claims.sort_by(|a, b| a.resource().cmp(b.resource()));
    claims.dedup();
    marks.chain(claims).collect()
}

/// Why retiring `node`'s claim is refused without `--force`, if it is: it is this
/// node's own (`this_node`), or node `node`'s ENI holds the VIP at EC2 now (`holder`,
/// as `ec2::holder_of` saw it with our ENI `own_eni`): its ENI is one `doomed` names,
/// its claim names `node`, or it is our ENI and `node` is us; or EC2 shows the VIP on
/// several ENIs, so who holds it is not known.
pub fn refusal(
    node: i32,
    this_node: i32,
    own_eni: &str,
    doomed: &[Doomed],
    holder: &CloudView,
) -> Option<String> {
    if node == this_node {
        return Some(own_claim(node));
    }
    let (eni, tag) = match holder {
        CloudView::Me { claim } => (own_eni, claim),
        CloudView::Other { eni, claim } => (eni.as_str(), claim),
        CloudView::Unknown { reason, .. } => {
            return Some(format!(
                "cannot tell who holds the VIP at EC2 ({reason}); --force to retire anyway"
            ));
        }
        CloudView::Nobody | CloudView::Disabled | CloudView::NotChecked => return None,
    };
    let named = matches!(tag, ClaimTag::Valid(c) if c.node_id == node);
    let listed = doomed
        .iter()
        .any(|d| matches!(&d.place, Place::Claim { eni: e } if e == eni));
    (named || listed).then(|| {
        format!(
            "node {node}'s ENI {eni} holds the VIP at EC2 now ({}): it is live, and without its \
             claim a node with a lower timeline could take the VIP from it; --force to retire anyway",
            claim_text(tag)
        )
    })
}

fn own_claim(node: i32) -> String {
    format!(
        "node {node} is this node (node_id in the config): retiring its own claim needs --force"
    )
}

fn claim_text(tag: &ClaimTag) -> String {
    match tag {
        ClaimTag::Valid(c) => format!("claim {c}"),
        ClaimTag::Absent => "no claim".into(),
        ClaimTag::Invalid(why) => format!("unreadable claim: {why}"),
    }
}

/// Who holds the VIP, for the header line.
pub fn holder_text(holder: &CloudView, own_eni: &str) -> String {
    match holder {
        CloudView::Me { claim } => {
            format!("held by this node's ENI {own_eni} ({})", claim_text(claim))
        }
        CloudView::Other { eni, claim } => format!("held by ENI {eni} ({})", claim_text(claim)),
        CloudView::Nobody => "held by no ENI".into(),
        CloudView::Unknown { reason, .. } => format!("holder unknown: {reason}"),
        CloudView::Disabled | CloudView::NotChecked => "holder not asked".into(),
    }
}

/// The line for a failed EC2 call: the action, EC2's message and the AWS code.
fn ec2_failure(e: Ec2Error) -> String {
    StepError::from(e).detail
}

fn say_refused(why: &str) -> i32 {
    eprintln!("vip-arbiter retire-claim: refused: {why}; nothing was deleted");
    EXIT_REFUSED
}

/// The verb: read the subnet's marks, the ENIs carrying a claim tag and the holder;
/// print what would be deleted (dry run) or delete it (`apply`). Exit 0 done, dry run
/// or nothing to retire; 1 refused or an EC2 error; 78 configuration error.
pub async fn run(s: &Settings, node: i32, apply: bool, force: bool) -> i32 {
    if node == s.node_id && !force {
        return say_refused(&own_claim(node));
    }
    let ec2 = match crate::daemon::cloud_once(s).await {
        Ok(Some((ec2, _))) => ec2,
        Ok(None) => {
            eprintln!(
                "vip-arbiter retire-claim: [aws] enabled = false (kernel-only mode): there are no \
                 claims at EC2 to retire"
            );
            return ConfigErrors::EXIT_CODE;
        }
        Err(e) => {
            eprintln!("vip-arbiter retire-claim: {e}");
            return e.exit_code();
        }
    };
    let (marks, claims, nics) = tokio::join!(
        ec2.read_marks(false),
        ec2.claims_on_enis(),
        ec2.describe(false)
    );
    let (marks, claims, nics) = match (marks, claims, nics) {
        (Ok(m), Ok(c), Ok(n)) => (m, c, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("vip-arbiter retire-claim: {}", ec2_failure(e));
            return EXIT_REFUSED;
        }
    };
    let (vip, subnet, own) = (s.vip, ec2.subnet_id(), ec2.eni_id());
    let holder = ec2::holder_of(&nics, vip, own);
    let doomed = to_retire(vip, node, subnet, &marks, &claims);
    if doomed.is_empty() {
        println!(
            "nothing to retire: node {node} has no mark on subnet {subnet} and no ENI there \
             carries a claim of node {node} for VIP {vip}"
        );
        return 0;
    }
    let refused = refusal(node, s.node_id, own, &doomed, &holder);
    if let (Some(why), false) = (&refused, force) {
        return say_refused(why);
    }
    println!(
        "# vip-arbiter retire-claim: node {node}, VIP {vip}, subnet {subnet}; the VIP is {}",
        holder_text(&holder, own)
    );
    if let Some(why) = &refused {
        println!("# --force: {why}");
    }
    if !apply {
        for d in &doomed {
            println!("would delete {d}");
        }
        println!(
            "dry run: nothing was changed; --apply deletes {} tag(s)",
            doomed.len()
        );
        return 0;
    }
    let mut failed = 0;
    for d in &doomed {
        match ec2.delete_tag(d.resource(), &d.key, &d.value).await {
            Ok(()) => println!("deleted {d}"),
            Err(e) => {
                eprintln!(
                    "vip-arbiter retire-claim: not deleted: {d}: {}",
                    ec2_failure(e)
                );
                failed += 1;
            }
        }
    }
    if failed == 0 { 0 } else { EXIT_REFUSED }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::claim::Claim;
    use crate::core::observation::FailureKind;

    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn valid(timeline: u32, node_id: i32) -> ClaimTag {
        ClaimTag::Valid(Claim {
            timeline,
            node_id,
            system_id: None,
        })
    }

    #[test]
    fn the_nodes_mark_and_the_eni_claims_naming_it_and_nothing_else() {
        let subnet = tags(&[
            ("vip-arbiter:10.0.0.5/node-1", "timeline=3;node=1"),
            ("vip-arbiter:10.0.0.5/node-2", "timeline=3;node=2;sysid=7"),
            ("vip-arbiter:10.0.0.5/node-22", "timeline=3;node=22"),
            ("vip-arbiter:10.0.0.50/node-2", "timeline=9;node=2"),
            ("vip-arbiter:10.0.0.5", "timeline=3;node=2"),
            ("Name", "db"),
        ]);
        let enis = tags(&[
            ("eni-b", "timeline=3;node=2;sysid=7"),
            ("eni-a", "timeline=2;node=2"),
            ("eni-c", "timeline=3;node=1"),
            ("eni-d", "timeline=3;node=22"),
            ("eni-e", "node=2"),
        ]);
        let got = to_retire(VIP, 2, "subnet-1", &subnet, &enis);
        let shown: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"subnet subnet-1 mark tag vip-arbiter:10.0.0.5/node-2 = "timeline=3;node=2;sysid=7""#,
                r#"ENI eni-a claim tag vip-arbiter:10.0.0.5 = "timeline=2;node=2""#,
                r#"ENI eni-b claim tag vip-arbiter:10.0.0.5 = "timeline=3;node=2;sysid=7""#,
            ]
        );
        assert_eq!(got[0].resource(), "subnet-1");
        assert_eq!(got[1].resource(), "eni-a");
        // A mark is that node's by its key, even with a value nobody can read.
        let odd = tags(&[("vip-arbiter:10.0.0.5/node-4", "garbage")]);
        assert_eq!(to_retire(VIP, 4, "subnet-1", &odd, &[]).len(), 1);
        // An unknown node: nothing.
        assert!(to_retire(VIP, 9, "subnet-1", &subnet, &enis).is_empty());
    }

    #[test]
    fn node_ids_start_at_one() {
        assert_eq!(node_id(1), Ok(1));
        assert_eq!(node_id(i64::from(i32::MAX)), Ok(i32::MAX));
        for bad in [0, -1, i64::from(i32::MAX) + 1] {
            let why = node_id(bad).expect_err("refused");
            assert!(why.contains(&format!("no node {bad}")), "{why}");
        }
    }

    #[test]
    fn refused_for_this_node_and_for_the_live_holder() {
        let doomed = to_retire(
            VIP,
            2,
            "subnet-1",
            &tags(&[("vip-arbiter:10.0.0.5/node-2", "timeline=3;node=2")]),
            &tags(&[("eni-2", "timeline=3;node=2")]),
        );
        let other = |eni: &str, claim: ClaimTag| CloudView::Other {
            eni: eni.into(),
            claim,
        };
        // Gone, or someone else holds it: allowed.
        for holder in [
            CloudView::Nobody,
            other("eni-3", valid(4, 3)),
            CloudView::Me { claim: valid(3, 1) },
        ] {
            assert_eq!(refusal(2, 1, "eni-1", &doomed, &holder), None, "{holder:?}");
        }
        // Node 2's ENI holds it, known by the ENI or by the holder's claim.
        for holder in [
            other("eni-2", valid(3, 2)),
            other("eni-2", ClaimTag::Absent),
            other("eni-9", valid(3, 2)),
        ] {
            let why = refusal(2, 1, "eni-1", &doomed, &holder).expect("refused");
            assert!(why.starts_with("node 2's ENI eni-"), "{why}");
            assert!(why.ends_with("--force to retire anyway"), "{why}");
        }
        // This node's own claim, whoever holds the VIP.
        let why = refusal(1, 1, "eni-1", &[], &CloudView::Nobody).expect("refused");
        assert!(why.contains("its own claim needs --force"), "{why}");
        // Two holders at once: who holds it is not known.
        let unknown = CloudView::Unknown {
            kind: FailureKind::Transient,
            code: None,
            reason: "VIP on 2 ENIs at once: eni-2, eni-3".into(),
        };
        let why = refusal(2, 1, "eni-1", &doomed, &unknown).expect("refused");
        assert!(why.contains("VIP on 2 ENIs"), "{why}");
    }

    #[test]
    fn the_holder_in_one_phrase() {
        assert_eq!(
            holder_text(
                &CloudView::Other {
                    eni: "eni-2".into(),
                    claim: valid(3, 2)
                },
                "eni-1"
            ),
            "held by ENI eni-2 (claim timeline=3;node=2)"
        );
        assert_eq!(
            holder_text(
                &CloudView::Me {
                    claim: ClaimTag::Absent
                },
                "eni-1"
            ),
            "held by this node's ENI eni-1 (no claim)"
        );
        assert_eq!(holder_text(&CloudView::Nobody, "eni-1"), "held by no ENI");
    }
}
