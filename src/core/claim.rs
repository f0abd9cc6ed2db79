//! The claim tag a node writes on its own ENI before it takes the VIP.
//!
//! Key `vip-arbiter:<VIP>`, value `timeline=<n>;node=<id>;sysid=<system_identifier>`
//! (`sysid` is optional when reading: claims written before it existed have none). A
//! PostgreSQL timeline only grows with each promotion, so it is the fencing token: a
//! node may take the VIP from another ENI only with a strictly higher timeline than
//! that ENI's claim.
//!
//! The same claim is also written, in the same CreateTags call, under a per-node key
//! `vip-arbiter:<VIP>/node-<id>` on the **subnet**: the high-water mark. It outlives
//! the ENI (an instance terminated with its ENI takes the ENI's tag along, never the
//! subnet's), and since every node writes only its own key, no node can lower another
//! node's mark (tags have no conditional write).

use std::fmt;
use std::net::Ipv4Addr;

use crate::core::observation::ClaimTag;

/// A parsed, valid claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    pub timeline: u32,
    pub node_id: i32,
    /// PostgreSQL's `system_identifier` of the database system that claimed; `None`
    /// in claims written before it was recorded (compared by timeline alone).
    pub system_id: Option<u64>,
}

impl Claim {
    /// Is this claim from another database system than `ours` (both known)?
    pub fn is_foreign_to(&self, ours: Option<u64>) -> bool {
        matches!((self.system_id, ours), (Some(a), Some(b)) if a != b)
    }
}

/// The tag key for a VIP on an ENI.
pub fn tag_key(vip: Ipv4Addr) -> String {
    format!("vip-arbiter:{vip}")
}

/// The high-water-mark key of one node for a VIP, on the subnet.
pub fn mark_key(vip: Ipv4Addr, node_id: i32) -> String {
    format!("{}{node_id}", mark_prefix(vip))
}

/// Every node's mark key for `vip` starts with this.
pub fn mark_prefix(vip: Ipv4Addr) -> String {
    format!("vip-arbiter:{vip}/node-")
}

/// The node id a mark key names, if `key` is a mark key for `vip`.
pub fn mark_node(vip: Ipv4Addr, key: &str) -> Option<i32> {
    key.strip_prefix(&mark_prefix(vip))?
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timeline={};node={}", self.timeline, self.node_id)?;
        if let Some(id) = self.system_id {
            write!(f, ";sysid={id}")?;
        }
        Ok(())
    }
}

/// Longest tag value EC2 allows; anything longer is not ours.
const MAX_VALUE_LEN: usize = 256;

/// Parse a tag value. Never panics; anything that is not exactly our format is
/// `Invalid`, which the decision treats as "no claim" (it can never win a takeover
/// or block one).
pub fn parse(value: &str) -> ClaimTag {
    if value.len() > MAX_VALUE_LEN {
        return ClaimTag::Invalid(format!("value longer than {MAX_VALUE_LEN} bytes"));
    }
    let mut timeline = None;
    let mut node_id = None;
    let mut sysid = None;
    for part in value.split(';') {
        let Some((key, val)) = part.split_once('=') else {
            return ClaimTag::Invalid(format!("part {part:?} has no '='"));
        };
        let slot = match key.trim() {
            "timeline" => &mut timeline,
            "node" => &mut node_id,
            "sysid" => &mut sysid,
            other => return ClaimTag::Invalid(format!("unknown key {other:?}")),
        };
        if slot.is_some() {
            return ClaimTag::Invalid(format!("key {key:?} repeated"));
        }
        *slot = Some(val.trim().to_owned());
    }
    let (Some(tl), Some(node)) = (timeline, node_id) else {
        return ClaimTag::Invalid("needs both timeline and node".into());
    };
    let system_id = match sysid.map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(id)) if id > 0 => Some(id),
        Some(_) => return ClaimTag::Invalid("sysid is not a positive integer".into()),
    };
    match (tl.parse::<u32>(), node.parse::<i32>()) {
        (Ok(timeline), Ok(node_id)) if timeline > 0 && node_id > 0 => ClaimTag::Valid(Claim {
            timeline,
            node_id,
            system_id,
        }),
        _ => ClaimTag::Invalid(format!("timeline {tl:?} or node {node:?} out of range")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = Claim {
            timeline: 7,
            node_id: 2,
            system_id: None,
        };
        assert_eq!(parse(&c.to_string()), ClaimTag::Valid(c));
        let s = Claim {
            system_id: Some(7_301_234_567_890_123_456),
            ..c
        };
        assert_eq!(s.to_string(), "timeline=7;node=2;sysid=7301234567890123456");
        assert_eq!(parse(&s.to_string()), ClaimTag::Valid(s));
        let vip = Ipv4Addr::new(10, 0, 0, 5);
        assert_eq!(tag_key(vip), "vip-arbiter:10.0.0.5");
        assert_eq!(mark_key(vip, 3), "vip-arbiter:10.0.0.5/node-3");
        assert_eq!(mark_node(vip, "vip-arbiter:10.0.0.5/node-3"), Some(3));
        assert_eq!(mark_node(vip, "vip-arbiter:10.0.0.50/node-3"), None);
        assert_eq!(mark_node(vip, "vip-arbiter:10.0.0.5/node-x"), None);
        assert_eq!(mark_node(vip, "vip-arbiter:10.0.0.5"), None);
        assert!(s.is_foreign_to(Some(1)));
        assert!(!s.is_foreign_to(None) && !c.is_foreign_to(Some(1)));
    }

    #[test]
    fn garbage_is_invalid_never_valid() {
        for bad in [
            "",
            "timeline=",
            "timeline=1",
            "node=1",
            "timeline=0;node=1",
            "timeline=-1;node=1",
            "timeline=1;node=0",
            "timeline=99999999999;node=1",
            "timeline=1;node=1;timeline=2",
            "timeline=1;node=1;extra=3",
            "tl=1;node=1",
            "timeline=1,node=1",
            "timeline=1;node=1;",
            "timeline=1;node=1;sysid=0",
            "timeline=1;node=1;sysid=x",
            "timeline=1;node=1;sysid=1;sysid=1",
        ] {
            assert!(
                matches!(parse(bad), ClaimTag::Invalid(_)),
                "{bad:?} should be invalid"
            );
        }
        assert!(matches!(parse(&"x".repeat(300)), ClaimTag::Invalid(_)));
    }
}
