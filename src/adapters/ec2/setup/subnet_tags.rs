//! The subnet's tags as the self-test judges them (`check-config --online`): the
//! headroom for the marks (EC2 allows 50 tags a resource) and the cluster tag the
//! shipped IAM policy conditions every write on.

use std::net::Ipv4Addr;

use crate::adapters::ec2::CLUSTER_TAG;

/// EC2 allows this many tags on a resource.
pub const TAG_LIMIT: usize = 50;

/// The subnet's tag headroom: every node's mark is one of its tags, and a node whose
/// mark cannot be written cannot take the VIP (`TagLimitExceeded`). A FAIL when a new
/// node's mark would not fit.
pub fn tag_headroom(subnet_tags: &[(String, String)], vip: Ipv4Addr) -> (bool, String) {
    let marks = subnet_tags
        .iter()
        .filter(|(k, _)| crate::core::claim::mark_node(vip, k).is_some())
        .count();
    let used = subnet_tags.len();
    let free = TAG_LIMIT.saturating_sub(used);
    let line = format!(
        "the subnet has {used} of {TAG_LIMIT} tags ({marks} vip-arbiter marks for {vip}), {free} free"
    );
    if free == 0 {
        (
            false,
            format!(
                "{line}: a node with no mark yet cannot claim; retire old marks (vip-arbiter retire-claim --node N)"
            ),
        )
    } else {
        (true, line)
    }
}

/// The subnet's `vip-arbiter-cluster` tag: without it the shipped policy refuses every
/// claim (CreateTags on the subnet), so no node can take the VIP; a holder says
/// `holding-untagged`.
pub fn cluster_tag(subnet_tags: &[(String, String)], subnet: &str) -> (bool, String) {
    match subnet_tags.iter().find(|(k, _)| k == CLUSTER_TAG) {
        Some((_, v)) => (true, format!("the subnet carries {CLUSTER_TAG}={v}")),
        None => (
            false,
            format!(
                "the subnet has no {CLUSTER_TAG} tag: the shipped policy allows claims only on tagged resources, so no takeover can succeed; tag it: aws ec2 create-tags --resources {subnet} --tags Key={CLUSTER_TAG},Value=<cluster>"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subnet_tag_headroom_is_reported_and_fails_when_full() {
        let vip: Ipv4Addr = "10.0.0.5".parse().unwrap();
        let mut tags: Vec<(String, String)> = (1..=3)
            .map(|n| {
                (
                    crate::core::claim::mark_key(vip, n),
                    "timeline=1;node=1".into(),
                )
            })
            .collect();
        tags.push(("Name".into(), "db".into()));
        let (ok, line) = tag_headroom(&tags, vip);
        assert!(ok);
        assert_eq!(
            line,
            "the subnet has 4 of 50 tags (3 vip-arbiter marks for 10.0.0.5), 46 free"
        );
        tags.extend((0..46).map(|i| (format!("k{i}"), String::new())));
        let (ok, line) = tag_headroom(&tags, vip);
        assert!(!ok, "{line}");
        assert!(line.contains("retire-claim"), "{line}");
    }

    #[test]
    fn a_subnet_without_the_cluster_tag_fails_with_the_command_that_fixes_it() {
        let (ok, line) = cluster_tag(
            &[("vip-arbiter-cluster".into(), "pg-prod".into())],
            "subnet-1",
        );
        assert!(ok);
        assert_eq!(line, "the subnet carries vip-arbiter-cluster=pg-prod");
        let (ok, line) = cluster_tag(&[("Name".into(), "db".into())], "subnet-1");
        assert!(!ok);
        assert!(
            line.contains(
                "aws ec2 create-tags --resources subnet-1 --tags Key=vip-arbiter-cluster"
            ),
            "{line}"
        );
    }
}
