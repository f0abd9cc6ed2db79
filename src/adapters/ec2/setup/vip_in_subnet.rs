//! The VIP against our ENI's subnet, at start and in `check-config --online`: it must
//! lie inside the subnet's CIDR (IMDS's, else DescribeSubnets), not be one of the five
//! addresses AWS keeps in every subnet (the network address, the VPC router, DNS, one
//! for future use, the broadcast address), and not be another ENI's primary private
//! IP (which AssignPrivateIpAddresses can never move). A definite "no" is a
//! configuration error: `run` exits 78, since no takeover could ever succeed. A
//! question EC2 did not answer (a missing permission, an outage) is a failed line only.
//!
//! And a note: an explicit subnet CIDR reservation of the VIP keeps EC2 from giving
//! it to a new ENI (automatic assignment skips it; AssignPrivateIpAddresses still
//! takes it).

use std::net::Ipv4Addr;

use aws_sdk_ec2::types::NetworkInterface;

use crate::adapters::ec2::setup::{Finding, Placement, client};
use crate::adapters::ec2::{Ec2, Ec2Error};
use crate::config::vip_address::network;

/// The checks: `Err` is the configuration error (one line), `Ok` the lines to show.
pub async fn check(ec2: &Ec2, p: &Placement, vip: Ipv4Addr) -> Result<Vec<Finding>, String> {
    let mut found = Vec::new();
    let cidr = match &p.subnet_cidr {
        Some(c) => Ok((c.clone(), "IMDS")),
        None => subnet_cidr(p).await.map(|c| (c, "DescribeSubnets")),
    };
    match cidr {
        Ok((c, whence)) => {
            judge_cidr(vip, &p.subnet_id, &c)?;
            found.push(Finding {
                ok: true,
                what: format!(
                    "VIP {vip} lies inside subnet {} {c} (from {whence})",
                    p.subnet_id
                ),
            });
        }
        Err(e) => found.push(Finding {
            ok: false,
            what: if e.unauthorized() {
                "ec2:DescribeSubnets not allowed: add it to the instance role's policy \
                 (etc/iam-policy.json); the VIP is not checked against the subnet"
                    .to_owned()
            } else {
                format!(
                    "subnet {}: {e} ({}); the VIP is not checked against it",
                    p.subnet_id,
                    e.code.as_deref().unwrap_or("no code")
                )
            },
        }),
    }
    match ec2.describe(false).await {
        Ok(nics) => {
            if let Some(line) = primary_elsewhere(vip, &nics) {
                return Err(line);
            }
            found.push(Finding {
                ok: true,
                what: format!("VIP {vip} is no ENI's primary private IP"),
            });
        }
        Err(e) => found.push(Finding {
            ok: false,
            what: format!(
                "ec2:DescribeNetworkInterfaces: {e} ({}); the VIP is not checked against other ENIs",
                e.code.as_deref().unwrap_or("no code")
            ),
        }),
    }
    Ok(found)
}

/// The subnet's IPv4 CIDR, from DescribeSubnets.
async fn subnet_cidr(p: &Placement) -> Result<String, Ec2Error> {
    let out = client(p.region.clone())
        .await
        .describe_subnets()
        .subnet_ids(&p.subnet_id)
        .send()
        .await
        .map_err(|e| Ec2Error::from_sdk("DescribeSubnets", &e))?;
    out.subnets()
        .iter()
        .find_map(|s| s.cidr_block().map(str::to_owned))
        .ok_or_else(|| Ec2Error {
            action: "DescribeSubnets",
            code: None,
            message: "EC2 shows no IPv4 CIDR for it".into(),
        })
}

/// Is `vip` a host address of `cidr` that EC2 would assign? Pure.
pub fn judge_cidr(vip: Ipv4Addr, subnet_id: &str, cidr: &str) -> Result<(), String> {
    let parsed = cidr
        .split_once('/')
        .and_then(|(n, l)| Some((n.parse::<Ipv4Addr>().ok()?, l.parse::<u8>().ok()?)))
        .filter(|(_, l)| *l <= 32);
    let Some((net, len)) = parsed else {
        return Err(format!(
            "subnet {subnet_id}: EC2 gave the CIDR {cidr:?}, not a.b.c.d/n"
        ));
    };
    let (first, mask) = network(net, len);
    if u32::from(vip) & mask != u32::from(first) {
        return Err(format!(
            "VIP {vip} is not inside subnet {subnet_id} {cidr}, our ENI's: EC2 can never put \
             it on this node (choose a VIP in the subnet, or the node's ENI in the VIP's subnet)"
        ));
    }
    let offset = u32::from(vip) - u32::from(first);
    if offset <= 3 || u32::from(vip) | mask == u32::MAX {
        return Err(format!(
            "VIP {vip} is one of the five addresses AWS keeps in subnet {subnet_id} {cidr} \
             (the first four and the last): choose another"
        ));
    }
    Ok(())
}

/// The ENI whose primary private IP is the VIP, as a configuration error. Pure.
pub fn primary_elsewhere(vip: Ipv4Addr, nics: &[NetworkInterface]) -> Option<String> {
    let vip = vip.to_string();
    nics.iter().find_map(|n| {
        let primary = n
            .private_ip_addresses()
            .iter()
            .any(|a| a.primary() == Some(true) && a.private_ip_address() == Some(vip.as_str()))
            || n.private_ip_address() == Some(vip.as_str());
        primary.then(|| {
            format!(
                "VIP {vip} is the primary private IP of ENI {}{}: that is a host's own address, \
                 which EC2 never moves; choose another VIP",
                n.network_interface_id().unwrap_or("?"),
                n.attachment()
                    .and_then(|a| a.instance_id())
                    .map(|i| format!(" (instance {i})"))
                    .unwrap_or_default()
            )
        })
    })
}

/// The advice printed after the checks.
pub fn reservation_note(vip: Ipv4Addr, subnet_id: &str) -> String {
    format!(
        "note: reserve the VIP so EC2 never gives it to a new ENI: aws ec2 \
         create-subnet-cidr-reservation --subnet-id {subnet_id} --cidr {vip}/32 \
         --reservation-type explicit"
    )
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{NetworkInterfaceAttachment, NetworkInterfacePrivateIpAddress};

    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_vip_must_be_an_assignable_address_of_the_subnet() {
        let j = |v: &str| judge_cidr(ip(v), "subnet-0a", "10.0.16.0/20");
        assert_eq!(j("10.0.16.100"), Ok(()));
        assert_eq!(j("10.0.31.254"), Ok(()));
        let out = j("10.0.32.100").expect_err("outside");
        assert!(
            out.starts_with("VIP 10.0.32.100 is not inside subnet subnet-0a 10.0.16.0/20"),
            "{out}"
        );
        for reserved in [
            "10.0.16.0",
            "10.0.16.1",
            "10.0.16.2",
            "10.0.16.3",
            "10.0.31.255",
        ] {
            let e = j(reserved).expect_err(reserved);
            assert!(e.contains("five addresses AWS keeps"), "{e}");
        }
        assert!(judge_cidr(ip("10.0.0.5"), "subnet-0a", "nonsense").is_err());
    }

    #[test]
    fn another_enis_primary_address_is_named() {
        let nic = |id: &str, addr: &str, primary: bool| {
            NetworkInterface::builder()
                .network_interface_id(id)
                .attachment(
                    NetworkInterfaceAttachment::builder()
                        .instance_id("i-0b")
                        .build(),
                )
                .private_ip_addresses(
                    NetworkInterfacePrivateIpAddress::builder()
                        .private_ip_address(addr)
                        .primary(primary)
                        .build(),
                )
                .build()
        };
        assert_eq!(
            primary_elsewhere(ip("10.0.0.5"), &[nic("eni-0a", "10.0.0.5", false)]),
            None,
            "a secondary (a holder of the VIP) is fine"
        );
        let line =
            primary_elsewhere(ip("10.0.0.5"), &[nic("eni-0b", "10.0.0.5", true)]).expect("primary");
        assert!(
            line.starts_with(
                "VIP 10.0.0.5 is the primary private IP of ENI eni-0b (instance i-0b)"
            ),
            "{line}"
        );
        assert!(reservation_note(ip("10.0.0.5"), "subnet-0a").contains(
            "create-subnet-cidr-reservation --subnet-id subnet-0a --cidr 10.0.0.5/32 --reservation-type explicit"
        ));
    }
}
