//! EC2 mode at start-up: find our ENI and subnet (explicit keys, else IMDSv2 by the
//! interface's MAC), build the SDK client (default credential chain, standard
//! endpoint overrides such as `AWS_ENDPOINT_URL`), and the self-test that
//! `check-config --online` prints: one line per check, naming what is missing.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::Region;

use crate::adapters::ec2::{Ec2, Ec2Error};
use crate::adapters::netlink::Netlink;
use crate::claim::Claim;
use crate::imds;
use crate::metrics::Metrics;
use crate::settings::Settings;

pub const IMDS_LIMIT: Duration = Duration::from_secs(10);

/// Where our VIP may live at EC2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub eni_id: String,
    pub subnet_id: String,
    pub region: Option<String>,
    pub subnet_cidr: Option<String>,
    /// How each value was found, for the self-test.
    pub via_imds: bool,
}

/// Explicit keys first; IMDS only for what is missing.
pub async fn placement(s: &Settings, kernel: &Netlink) -> Result<Placement, String> {
    if let (Some(eni), Some(subnet)) = (&s.aws.eni_id, &s.aws.subnet_id) {
        return Ok(Placement {
            eni_id: eni.clone(),
            subnet_id: subnet.clone(),
            region: s.aws.region.clone(),
            subnet_cidr: None,
            via_imds: false,
        });
    }
    let mac = kernel.mac().await.map_err(|e| e.to_string())?;
    let id = imds::discover(&mac, IMDS_LIMIT)
        .await
        .map_err(|e| format!("IMDS discovery: {e}"))?;
    Ok(Placement {
        eni_id: s.aws.eni_id.clone().unwrap_or(id.eni_id),
        subnet_id: s.aws.subnet_id.clone().unwrap_or(id.subnet_id),
        region: s.aws.region.clone().or(Some(id.region)),
        subnet_cidr: id.subnet_cidr,
        via_imds: true,
    })
}

/// The SDK client: each call bounded; the SDK's own retries stay on (3 attempts).
pub async fn client(region: Option<String>) -> aws_sdk_ec2::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(1))
            .build(),
    );
    if let Some(r) = region {
        loader = loader.region(Region::new(r));
    }
    aws_sdk_ec2::Client::new(&loader.load().await)
}

pub async fn ec2(
    s: &Settings,
    kernel: &Netlink,
    metrics: Arc<Metrics>,
) -> Result<(Ec2, Placement), String> {
    let p = placement(s, kernel).await?;
    let client = client(p.region.clone()).await;
    Ok((
        Ec2::new(
            client,
            s.vip,
            p.eni_id.clone(),
            p.subnet_id.clone(),
            metrics,
        ),
        p,
    ))
}

/// Is `vip` inside `cidr` ("10.0.0.0/20")?
pub fn in_cidr(vip: Ipv4Addr, cidr: &str) -> Option<bool> {
    let (net, len) = cidr.split_once('/')?;
    let net: Ipv4Addr = net.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Some(u32::from(vip) & mask == u32::from(net) & mask)
}

/// The self-test: each line "ok: …" or "FAIL: …". Returns (all passed, lines).
pub async fn self_test(
    s: &Settings,
    kernel: &Netlink,
    metrics: Arc<Metrics>,
) -> (bool, Vec<String>) {
    match ec2(s, kernel, metrics).await {
        Ok((ec2, p)) => checks(&ec2, &p, s.vip, s.node_id).await,
        Err(e) => (false, vec![format!("FAIL: {e}")]),
    }
}

/// The checks proper, on an already built adapter (the daemon runs them at start).
pub async fn checks(ec2: &Ec2, p: &Placement, vip: Ipv4Addr, node_id: i32) -> (bool, Vec<String>) {
    let mut lines = Vec::new();
    let mut ok = true;
    let mut say = |good: bool, line: String| {
        ok &= good;
        lines.push(format!("{}: {line}", if good { "ok" } else { "FAIL" }));
    };
    say(
        true,
        format!(
            "ENI {} in subnet {}{}",
            p.eni_id,
            p.subnet_id,
            if p.via_imds {
                " (from IMDS)"
            } else {
                " (from config)"
            }
        ),
    );
    match p.subnet_cidr.as_deref().map(|c| (c, in_cidr(vip, c))) {
        Some((c, Some(true))) => say(true, format!("VIP {vip} lies inside the subnet {c}")),
        Some((c, _)) => say(
            false,
            format!("VIP {vip} is not inside the ENI's subnet {c}"),
        ),
        None => say(
            true,
            "subnet CIDR unknown without IMDS; VIP-in-subnet not checked".into(),
        ),
    }
    let allowed = |r: Result<(), Ec2Error>, action: &str| match r {
        Ok(()) => (true, format!("ec2:{action} allowed")),
        Err(e) if e.code.as_deref() == Some("DryRunOperation") => {
            (true, format!("ec2:{action} allowed (DryRun)"))
        }
        Err(e) if e.code.as_deref() == Some("UnauthorizedOperation") => (
            false,
            format!(
                "ec2:{action} not allowed: add it to the instance role's policy (etc/iam-policy.json)"
            ),
        ),
        Err(e) => (
            false,
            format!(
                "ec2:{action}: {e} ({})",
                e.code.as_deref().unwrap_or("no code")
            ),
        ),
    };
    let (good, line) = allowed(
        ec2.describe(true).await.map(|_| ()),
        "DescribeNetworkInterfaces",
    );
    say(good, line);
    let (good, line) = allowed(
        ec2.tag(
            Claim {
                system_id: None,
                timeline: 1,
                node_id,
            },
            true,
        )
        .await,
        "CreateTags",
    );
    say(good, line);
    let (good, line) = allowed(ec2.read_marks(true).await.map(|_| ()), "DescribeTags");
    say(good, line);
    say(
        true,
        "ec2:AssignPrivateIpAddresses and ec2:UnassignPrivateIpAddresses have no DryRun flag; \
         the first is exercised at the first takeover"
            .into(),
    );
    match ec2.own_eni_exists().await {
        Ok(()) => say(true, format!("ENI {} exists", p.eni_id)),
        Err(e) => say(
            false,
            format!(
                "ENI {}: {e} ({})",
                p.eni_id,
                e.code.as_deref().unwrap_or("no code")
            ),
        ),
    }
    (ok, lines)
}
