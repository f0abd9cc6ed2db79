//! What EC2's answers mean, as pure functions of them: who holds the VIP (and at
//! which primary address), and the subnet's marks.

use std::net::Ipv4Addr;

use aws_sdk_ec2::types::{NetworkInterface, Tag};

use crate::core::claim::{self, Claim};
use crate::core::observation::{ClaimTag, CloudView, FailureKind};

/// The primary private address of each ENI that holds `vip` in a describe answer.
pub fn holder_addresses(nics: &[NetworkInterface], vip: Ipv4Addr) -> Vec<(String, Ipv4Addr)> {
    let vip_s = vip.to_string();
    nics.iter()
        .filter(|n| {
            n.private_ip_addresses()
                .iter()
                .any(|a| a.private_ip_address() == Some(vip_s.as_str()))
        })
        .filter_map(|n| {
            let id = n.network_interface_id()?.to_owned();
            let primary = n.private_ip_address()?.parse().ok()?;
            Some((id, primary))
        })
        .collect()
}

/// Who holds the VIP, from a DescribeNetworkInterfaces answer.
pub fn holder_of(nics: &[NetworkInterface], vip: Ipv4Addr, own_eni: &str) -> CloudView {
    let vip_s = vip.to_string();
    let key = claim::tag_key(vip);
    // Re-check each ENI's addresses: never trust the filter alone.
    let holders: Vec<&NetworkInterface> = nics
        .iter()
        .filter(|n| {
            n.private_ip_addresses()
                .iter()
                .any(|a| a.private_ip_address() == Some(vip_s.as_str()))
        })
        .collect();
    let tag_of = |n: &NetworkInterface| {
        n.tag_set()
            .iter()
            .find(|t| t.key() == Some(key.as_str()))
            .and_then(Tag::value)
            .map_or(ClaimTag::Absent, claim::parse)
    };
    match holders.as_slice() {
        [] => CloudView::Nobody,
        [one] if one.network_interface_id() == Some(own_eni) => {
            CloudView::Me { claim: tag_of(one) }
        }
        [one] => CloudView::Other {
            eni: one
                .network_interface_id()
                .unwrap_or("unknown ENI")
                .to_owned(),
            claim: tag_of(one),
        },
        many => CloudView::Unknown {
            kind: FailureKind::Transient,
            code: None,
            reason: format!(
                "VIP on {} ENIs at once: {}",
                many.len(),
                many.iter()
                    .filter_map(|n| n.network_interface_id())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// The valid marks among a subnet's tags (other tags and unreadable marks ignored;
/// a mark whose value names another node than its key is unreadable).
pub fn marks_of(tags: &[(String, String)], vip: Ipv4Addr) -> Vec<Claim> {
    tags.iter()
        .filter_map(|(k, v)| {
            let node = claim::mark_node(vip, k)?;
            claim::parse(v).valid().filter(|c| c.node_id == node)
        })
        .collect()
}
