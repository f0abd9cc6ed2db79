//! EC2 mode at start-up: find our ENI and subnet (explicit keys, else IMDSv2 by the
//! interface's MAC), build the SDK client (default credential chain, standard
//! endpoint overrides such as `AWS_ENDPOINT_URL`), and the self-test that
//! `check-config --online` prints: one line per check, naming what is missing
//! (setup/vip_in_subnet.rs: the VIP against the subnet and the other ENIs).
//!
//! The cross-check of our ENI (`compare`, `wait_for_eni`): EC2 must know it, it must
//! be attached to this instance (IMDS's instance id, when IMDS may be asked), sit in
//! the subnet we were given and carry the interface's MAC. A difference is a
//! configuration error (exit 78, one line naming it). An ENI EC2 does not know yet
//! (`InvalidNetworkInterfaceID.NotFound`, `InvalidSubnetID.NotFound`) or that is not
//! attached yet is asked again with backoff (1, 2, 4, 8, 16, 16 … s) for `ENI_WAIT`
//! (120 s): a freshly launched replacement node sees its ENI late.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::Region;

use tracing::warn;

use crate::adapters::ec2::imds;
use crate::adapters::ec2::{Ec2, Ec2Error, OwnEni};
use crate::adapters::netlink::Netlink;
use crate::config::{Settings, format_duration};
use crate::core::claim::Claim;
use crate::daemon::systemd;
use crate::health::metrics::Metrics;

pub mod subnet_tags;
pub mod vip_in_subnet;

pub use subnet_tags::{TAG_LIMIT, cluster_tag, tag_headroom};

pub const IMDS_LIMIT: Duration = Duration::from_secs(10);

/// How long `run` keeps asking for an ENI that EC2 does not show (yet) before it
/// exits 78. systemd/vip-arbiter.service's `TimeoutStartSec=` leaves room for it.
pub const ENI_WAIT: Duration = Duration::from_secs(120);
/// Test-only: `ENI_WAIT` in milliseconds instead (the convention for test-only
/// variables is the `VA_TEST_` prefix).
pub const ENI_WAIT_ENV: &str = "VA_TEST_ENI_WAIT_MS";
const ENI_RETRY_FIRST: Duration = Duration::from_secs(1);
const ENI_RETRY_MAX: Duration = Duration::from_secs(16);

/// `ENI_WAIT`, or `VA_TEST_ENI_WAIT_MS` when set to a number.
pub fn eni_wait() -> Duration {
    std::env::var(ENI_WAIT_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(ENI_WAIT, Duration::from_millis)
}

/// Where our VIP may live at EC2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub eni_id: String,
    pub subnet_id: String,
    pub region: Option<String>,
    pub subnet_cidr: Option<String>,
    /// How each value was found, for the self-test.
    pub via_imds: bool,
    /// This instance, when IMDS discovery ran.
    pub instance_id: Option<String>,
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
            instance_id: None,
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
        instance_id: Some(id.instance_id),
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

/// The self-test: each line "ok: …" or "FAIL: …". Returns (all passed, lines).
pub async fn self_test(
    s: &Settings,
    kernel: &Netlink,
    metrics: Arc<Metrics>,
) -> (bool, Vec<String>) {
    match ec2(s, kernel, metrics).await {
        Ok((ec2, p)) => {
            let eni = match here(s, kernel, &p).await {
                Ok(h) => check_eni_once(&ec2, &p, &h).await,
                Err(e) => vec![(false, format!("ENI {} not cross-checked: {e}", p.eni_id))],
            };
            let mut found = checks(&ec2, &p, s.node_id, eni).await;
            match vip_in_subnet::check(&ec2, &p, s.vip).await {
                Ok(lines) => found.extend(lines),
                Err(what) => found.push(Finding { ok: false, what }),
            }
            // `check-config --online` only (the daemon's start-up makes no real read):
            // the subnet's tag headroom and its cluster tag.
            if let Ok(tags) = ec2.read_marks(false).await {
                let (ok, what) = tag_headroom(&tags, s.vip);
                found.push(Finding { ok, what });
                let (ok, what) = cluster_tag(&tags, &p.subnet_id);
                found.push(Finding { ok, what });
            }
            let mut lines: Vec<String> = found.iter().map(Finding::to_string).collect();
            lines.push(vip_in_subnet::reservation_note(s.vip, &p.subnet_id));
            (found.iter().all(|f| f.ok), lines)
        }
        Err(e) => (false, vec![format!("FAIL: {e}")]),
    }
}

/// This host, as the cross-check compares it with what EC2 says of our ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Here {
    pub interface: String,
    /// The interface's MAC, lower case.
    pub mac: String,
    /// This instance's id, or why it is not known (then the attachment is not checked).
    pub instance: Result<String, String>,
}

/// The interface's MAC and this instance's id: IMDS's from discovery, else asked of
/// IMDS now, unless `AWS_EC2_METADATA_DISABLED=true`. IMDS failing is no error: the
/// instance is then not compared, and the check says so.
pub async fn here(s: &Settings, kernel: &Netlink, p: &Placement) -> Result<Here, String> {
    let mac = kernel.mac().await.map_err(|e| e.to_string())?;
    let instance = match &p.instance_id {
        Some(i) => Ok(i.clone()),
        None if imds::disabled() => Err("AWS_EC2_METADATA_DISABLED is set".to_owned()),
        None => imds::instance_id(IMDS_LIMIT).await.map_err(|e| {
            warn!(error = %e, "cannot ask IMDS for this instance's id; the ENI's attachment is not checked");
            format!("IMDS: {e}")
        }),
    };
    Ok(Here {
        interface: s.interface.clone(),
        mac: mac.to_ascii_lowercase(),
        instance,
    })
}

/// The cross-check of one answer about our ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EniCheck {
    /// It is ours: one text per fact checked.
    Good(Vec<String>),
    /// Not attached to any instance (yet): ask again.
    NotYet(String),
    /// It is not this node's: one line naming every difference.
    Mismatch(String),
}

/// Compare EC2's view of our ENI with the placement and this host. Pure.
pub fn compare(p: &Placement, here: &Here, eni: &OwnEni) -> EniCheck {
    let id = &p.eni_id;
    let given = if p.via_imds { "" } else { " (aws.subnet_id)" };
    let mut good = vec![format!("ENI {id} exists")];
    let mut diffs = Vec::new();
    match (&eni.instance_id, &here.instance) {
        (Some(at), Ok(me)) if at == me => {
            good.push(format!("ENI {id} is attached to this instance {me}"));
        }
        (Some(at), Ok(me)) => diffs.push(format!(
            "it is attached to instance {at}, not to this instance {me}"
        )),
        (Some(at), Err(why)) => good.push(format!(
            "ENI {id} is attached to instance {at} (not compared with this instance: {why})"
        )),
        (None, _) => {}
    }
    match &eni.subnet_id {
        Some(sub) if *sub == p.subnet_id => good.push(format!("ENI {id} is in subnet {sub}")),
        Some(sub) => diffs.push(format!("it is in subnet {sub}, not {}{given}", p.subnet_id)),
        None => good.push(format!("ENI {id}: EC2 reports no subnet; not compared")),
    }
    match &eni.mac {
        Some(mac) if *mac == here.mac => {
            good.push(format!("ENI {id} has {}'s MAC {mac}", here.interface));
        }
        Some(mac) => diffs.push(format!(
            "its MAC is {mac}, not {}'s {}",
            here.interface, here.mac
        )),
        None => good.push(format!("ENI {id}: EC2 reports no MAC; not compared")),
    }
    if !diffs.is_empty() {
        let key = if p.via_imds { "" } else { " (aws.eni_id)" };
        return EniCheck::Mismatch(format!(
            "ENI {id}{key} is not this node's: {}",
            diffs.join("; ")
        ));
    }
    if eni.instance_id.is_none() {
        return EniCheck::NotYet("not attached to any instance".into());
    }
    EniCheck::Good(good)
}

fn eni_error_line(p: &Placement, e: &Ec2Error) -> String {
    format!(
        "ENI {}: {e} ({})",
        p.eni_id,
        e.code.as_deref().unwrap_or("no code")
    )
}

/// One look (`check-config --online`): (passed, text) per fact.
pub async fn check_eni_once(ec2: &Ec2, p: &Placement, here: &Here) -> Vec<(bool, String)> {
    match ec2.describe_own_eni().await {
        Ok(eni) => match compare(p, here, &eni) {
            EniCheck::Good(lines) => lines.into_iter().map(|l| (true, l)).collect(),
            EniCheck::NotYet(why) => vec![(false, format!("ENI {}: {why}", p.eni_id))],
            EniCheck::Mismatch(line) => vec![(false, line)],
        },
        Err(e) => vec![(false, eni_error_line(p, &e))],
    }
}

/// `run`'s look at our ENI: an ENI EC2 does not show yet (or not attached yet) is
/// asked for again with backoff for `bound`. `Err` is a configuration error, one line
/// (a mismatch, or still missing after `bound`); `Ok` the self-test lines, with a
/// failed line for any other EC2 error (an outage, a missing permission), which the
/// loop reports as it acts, as before.
pub async fn wait_for_eni(
    ec2: &Ec2,
    p: &Placement,
    here: &Here,
    bound: Duration,
) -> Result<Vec<(bool, String)>, String> {
    let started = tokio::time::Instant::now();
    let mut delay = ENI_RETRY_FIRST;
    loop {
        let why = match ec2.describe_own_eni().await {
            Ok(eni) => match compare(p, here, &eni) {
                EniCheck::Good(lines) => return Ok(lines.into_iter().map(|l| (true, l)).collect()),
                EniCheck::Mismatch(line) => return Err(line),
                EniCheck::NotYet(why) => format!("ENI {}: {why}", p.eni_id),
            },
            Err(e) if e.not_found() => eni_error_line(p, &e),
            Err(e) => return Ok(vec![(false, eni_error_line(p, &e))]),
        };
        let waited = started.elapsed();
        if waited >= bound {
            return Err(format!(
                "{why}, still after {} of retries (aws.eni_id and aws.subnet_id must be this node's)",
                format_duration(bound)
            ));
        }
        let pause = delay.min(bound - waited);
        warn!(
            eni = %p.eni_id,
            waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            "EC2 does not show our ENI as ours yet ({why}); asking again"
        );
        systemd::status(&format!("starting: waiting for EC2 to show {why}"));
        tokio::time::sleep(pause).await;
        delay = (delay * 2).min(ENI_RETRY_MAX);
    }
}

/// The checks proper, on an already built adapter (the daemon runs them at start);
/// `eni` is the ENI cross-check's outcome (`wait_for_eni` or `check_eni_once`).
pub async fn checks(
    ec2: &Ec2,
    p: &Placement,
    node_id: i32,
    eni: Vec<(bool, String)>,
) -> Vec<Finding> {
    let mut lines = Vec::new();
    let mut say = |ok: bool, what: String| lines.push(Finding { ok, what });
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
    let allowed = |r: Result<(), Ec2Error>, action: &str| match r {
        Ok(()) => (true, format!("ec2:{action} allowed")),
        Err(e) if e.dry_run_ok() => (true, format!("ec2:{action} allowed (DryRun)")),
        Err(e) if e.unauthorized() => (
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
    for (good, line) in eni {
        say(good, line);
    }
    lines
}

/// One line of the self-test: shown as "ok: …" or "FAIL: …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub what: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.ok { "ok" } else { "FAIL" };
        write!(f, "{verdict}: {}", self.what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(via_imds: bool) -> Placement {
        Placement {
            eni_id: "eni-0aaa".into(),
            subnet_id: "subnet-0aaa".into(),
            region: None,
            subnet_cidr: None,
            via_imds,
            instance_id: None,
        }
    }

    fn here(instance: Result<&str, &str>) -> Here {
        Here {
            interface: "ens5".into(),
            mac: "02:00:0a:4d:00:0b".into(),
            instance: instance.map(str::to_owned).map_err(str::to_owned),
        }
    }

    fn eni(instance: Option<&str>, subnet: &str, mac: &str) -> OwnEni {
        OwnEni {
            subnet_id: Some(subnet.into()),
            mac: Some(mac.into()),
            instance_id: instance.map(str::to_owned),
        }
    }

    const MAC: &str = "02:00:0a:4d:00:0b";

    #[test]
    fn an_eni_that_is_ours_passes_with_a_line_per_fact() {
        let EniCheck::Good(lines) = compare(
            &placement(false),
            &here(Ok("i-0me")),
            &eni(Some("i-0me"), "subnet-0aaa", MAC),
        ) else {
            panic!("not good")
        };
        assert_eq!(
            lines,
            [
                "ENI eni-0aaa exists",
                "ENI eni-0aaa is attached to this instance i-0me",
                "ENI eni-0aaa is in subnet subnet-0aaa",
                "ENI eni-0aaa has ens5's MAC 02:00:0a:4d:00:0b",
            ]
        );
        // Without IMDS the attachment is reported, not compared.
        let EniCheck::Good(lines) = compare(
            &placement(false),
            &here(Err("AWS_EC2_METADATA_DISABLED is set")),
            &eni(Some("i-0other"), "subnet-0aaa", MAC),
        ) else {
            panic!("not good")
        };
        assert!(lines[1].contains("not compared with this instance: AWS_EC2_METADATA_DISABLED"));
    }

    #[test]
    fn each_difference_is_named_in_one_line() {
        let p = placement(false);
        let me = here(Ok("i-0me"));
        let check = |e: OwnEni| match compare(&p, &me, &e) {
            EniCheck::Mismatch(line) => line,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            check(eni(Some("i-0other"), "subnet-0aaa", MAC)),
            "ENI eni-0aaa (aws.eni_id) is not this node's: it is attached to instance i-0other, not to this instance i-0me"
        );
        assert_eq!(
            check(eni(Some("i-0me"), "subnet-0bbb", MAC)),
            "ENI eni-0aaa (aws.eni_id) is not this node's: it is in subnet subnet-0bbb, not subnet-0aaa (aws.subnet_id)"
        );
        assert_eq!(
            check(eni(Some("i-0me"), "subnet-0aaa", "02:00:0a:4d:00:0c")),
            "ENI eni-0aaa (aws.eni_id) is not this node's: its MAC is 02:00:0a:4d:00:0c, not ens5's 02:00:0a:4d:00:0b"
        );
        let all = check(eni(Some("i-0other"), "subnet-0bbb", "02:00:0a:4d:00:0c"));
        assert_eq!(all.matches("; ").count(), 2, "{all}");
        assert!(!all.contains('\n'));
        // A detached ENI in the wrong subnet is wrong now; in the right one, not yet.
        assert!(matches!(
            compare(&p, &me, &eni(None, "subnet-0bbb", MAC)),
            EniCheck::Mismatch(_)
        ));
        assert_eq!(
            compare(&p, &me, &eni(None, "subnet-0aaa", MAC)),
            EniCheck::NotYet("not attached to any instance".into())
        );
    }

    #[test]
    fn the_unit_gives_start_up_time_for_the_eni_wait() {
        let unit = include_str!("../../../systemd/vip-arbiter.service");
        let secs: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStartSec="))
            .and_then(|v| v.trim().strip_suffix('s'))
            .and_then(|v| v.parse().ok())
            .expect("TimeoutStartSec=<n>s in the unit");
        let budget = ENI_WAIT + IMDS_LIMIT + Duration::from_secs(3 * 5 + 30);
        assert!(
            Duration::from_secs(secs) >= budget,
            "TimeoutStartSec={secs}s < ENI wait + IMDS + self-test + a first pass ({budget:?})"
        );
    }
}
