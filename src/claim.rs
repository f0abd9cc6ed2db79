//! The claim tag a node writes on its own ENI before it takes the VIP.
//!
//! Key `vip-arbiter:<VIP>`, value `timeline=<n>;node=<id>`. A PostgreSQL timeline
//! only grows with each promotion, so it is the fencing token: a node may take the
//! VIP from another ENI only with a strictly higher timeline than that ENI's claim.

use std::fmt;
use std::net::Ipv4Addr;

use crate::observation::ClaimTag;

/// A parsed, valid claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    pub timeline: u32,
    pub node_id: i32,
}

/// The tag key for a VIP.
pub fn tag_key(vip: Ipv4Addr) -> String {
    format!("vip-arbiter:{vip}")
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timeline={};node={}", self.timeline, self.node_id)
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
    for part in value.split(';') {
        let Some((key, val)) = part.split_once('=') else {
            return ClaimTag::Invalid(format!("part {part:?} has no '='"));
        };
        let slot = match key.trim() {
            "timeline" => &mut timeline,
            "node" => &mut node_id,
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
    match (tl.parse::<u32>(), node.parse::<i32>()) {
        (Ok(timeline), Ok(node_id)) if timeline > 0 && node_id > 0 => {
            ClaimTag::Valid(Claim { timeline, node_id })
        }
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
        };
        assert_eq!(parse(&c.to_string()), ClaimTag::Valid(c));
        assert_eq!(tag_key(Ipv4Addr::new(10, 0, 0, 5)), "vip-arbiter:10.0.0.5");
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
        ] {
            assert!(
                matches!(parse(bad), ClaimTag::Invalid(_)),
                "{bad:?} should be invalid"
            );
        }
        assert!(matches!(parse(&"x".repeat(300)), ClaimTag::Invalid(_)));
    }
}
