//! `vip-arbiter check-config --online` against the EC2 emulator, from inside a node
//! namespace: each check is one line naming what is missing, exit 1 on any failure.

mod support;

use std::process::Command;

use serde_json::json;
use support::bed::{Bed, NODES};
use support::testbed::{Emulator, Hub, arbiter_bin, aws_env};

fn self_test(hub: &Hub, ns: &str, emu: &Emulator, eni: &str, subnet: &str) -> (i32, String) {
    let _ = hub;
    let (code, stdout, _) = verb(ns, emu, "10.77.0.100", eni, subnet, "check-config");
    (code, stdout)
}

/// `vip-arbiter <verb>` in `ns` for `vip` on that ENI and subnet: (exit, stdout, stderr).
fn verb(
    ns: &str,
    emu: &Emulator,
    vip: &str,
    eni: &str,
    subnet: &str,
    verb: &str,
) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("va.toml");
    std::fs::write(
        &cfg,
        format!(
            "vip = \"{vip}\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"host=/nonexistent user=repmgr\"\n\
             socket = {:?}\n\
             [aws]\nenabled = true\nregion = \"us-east-1\"\neni_id = \"{eni}\"\nsubnet_id = \"{subnet}\"\n\
             state_file = {:?}\n",
            dir.path().join("va.sock").display().to_string(),
            dir.path().join("state.json").display().to_string()
        ),
    )
    .expect("write config");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, &arbiter_bin(), "--config"])
        .arg(&cfg);
    if verb == "check-config" {
        cmd.args(["check-config", "--online"]);
    } else {
        cmd.arg(verb);
    }
    let out = cmd
        .envs(aws_env(&emu.url))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run vip-arbiter");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn online_self_test_passes_and_names_each_missing_permission() {
    let bed = Bed::builder().nodes(1).ec2().enis(&NODES[..1]).build();
    let (hub, n1, emu, ids) = (bed.hub(), bed.ns(1), bed.emu(), &bed.ec2().ids);
    let eni = ids["enis"]["n1"]["eni_id"]
        .as_str()
        .expect("eni")
        .to_owned();
    let subnet = ids["subnet_id"].as_str().expect("subnet").to_owned();

    let (code, out) = self_test(hub, n1, emu, &eni, &subnet);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok: ec2:DescribeNetworkInterfaces allowed (DryRun)"),
        "{out}"
    );
    assert!(out.contains("ok: ec2:CreateTags allowed (DryRun)"), "{out}");
    assert!(
        out.contains("ok: ec2:DescribeTags allowed (DryRun)"),
        "{out}"
    );
    assert!(out.contains(&format!("ok: ENI {eni} exists")), "{out}");
    // The subnet's tag headroom (each node's mark is one of its 50 tags).
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok: the subnet has ") && l.contains(" of 50 tags (")),
        "{out}"
    );
    assert!(
        out.contains(
            "AssignPrivateIpAddresses and ec2:UnassignPrivateIpAddresses have no DryRun flag"
        ),
        "{out}"
    );
    // Nothing was changed by the self-test: no tag, no assignment.
    assert!(emu.holders("10.77.0.100").is_empty());

    emu.control(
        "POST",
        "/_va/fault",
        Some(&json!({"kind": "unauthorized", "seconds": 60, "actions": ["CreateTags"]})),
    );
    let (code, out) = self_test(hub, n1, emu, &eni, &subnet);
    assert_eq!(code, 1, "{out}");
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(
        fails,
        vec![
            "FAIL: ec2:CreateTags not allowed: add it to the instance role's policy (etc/iam-policy.json)"
        ],
        "{out}"
    );
    emu.control("DELETE", "/_va/fault", None);

    let (code, out) = self_test(hub, n1, emu, "eni-0123456789abcdef0", &subnet);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL: ENI eni-0123456789abcdef0")
                && l.contains("InvalidNetworkInterfaceID")),
        "{out}"
    );
}

#[test]
fn daemon_runs_the_self_test_at_start_and_a_wrong_eni_is_a_config_error() {
    let bed = Bed::builder().nodes(1).ec2().enis(&NODES[..1]).build();
    let (n1, dir, emu, ids) = (bed.ns(1), bed.dir(), bed.emu(), &bed.ec2().ids);
    let subnet = ids["subnet_id"].as_str().expect("subnet").to_owned();
    let cfg = dir.join("va.toml");
    std::fs::write(
        &cfg,
        format!(
            "vip = \"10.77.0.100\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"host=/nonexistent user=repmgr\"\nsocket = {:?}\n\
             [aws]\nenabled = true\nregion = \"us-east-1\"\neni_id = \"eni-0123456789abcdef0\"\nsubnet_id = \"{subnet}\"\n",
            dir.join("va.sock").display().to_string()
        ),
    )
    .expect("write config");
    let out = Command::new("ip")
        .args(["netns", "exec", n1, &arbiter_bin(), "run", "--config"])
        .arg(&cfg)
        .envs(aws_env(&emu.url))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // A missing ENI is waited for (120 s, for a new node's late ENI); not here.
        .env("VA_TEST_ENI_WAIT_MS", "1000")
        .output()
        .expect("run the daemon");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("start-up self-test") && err.contains("InvalidNetworkInterfaceID"),
        "{err}"
    );
}

/// Issue 19, item 2: a node whose ENI sat in another subnet started without a word
/// and failed every takeover. The VIP must lie in our ENI's subnet (DescribeSubnets
/// without IMDS), not be one of the addresses AWS keeps there, nor another ENI's
/// primary address: `check-config --online` fails, `run` exits 78. Every run ends
/// with the advice to reserve the VIP.
#[test]
fn the_vip_is_checked_against_the_subnet_and_the_other_enis() {
    let bed = Bed::builder().nodes(2).ec2().enis(&NODES).build();
    let (n1, emu, ids) = (bed.ns(1), bed.emu(), &bed.ec2().ids);
    let eni = |n: &str| ids["enis"][n]["eni_id"].as_str().expect("eni").to_owned();
    let (eni1, eni2) = (eni("n1"), eni("n2"));
    let subnet = ids["subnet_id"].as_str().expect("subnet").to_owned();

    let (code, out, _) = verb(n1, emu, "10.77.0.100", &eni1, &subnet, "check-config");
    assert_eq!(code, 0, "{out}");
    for want in [
        format!(
            "ok: VIP 10.77.0.100 lies inside subnet {subnet} 10.77.0.0/20 (from DescribeSubnets)"
        ),
        "ok: VIP 10.77.0.100 is no ENI's primary private IP".to_owned(),
        format!(
            "note: reserve the VIP so EC2 never gives it to a new ENI: aws ec2 \
             create-subnet-cidr-reservation --subnet-id {subnet} --cidr 10.77.0.100/32 \
             --reservation-type explicit"
        ),
    ] {
        assert!(out.lines().any(|l| l == want), "{want:?} in {out}");
    }

    // n2's own address, seen from n1 (where the kernel has no such address).
    let (code, out, _) = verb(n1, emu, "10.77.0.12", &eni1, &subnet, "check-config");
    assert_eq!(code, 1, "{out}");
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        fails.len() == 1
            && fails[0].starts_with(&format!(
                "FAIL: VIP 10.77.0.12 is the primary private IP of ENI {eni2}"
            )),
        "{out}"
    );
    let (code, _, err) = verb(n1, emu, "10.77.0.12", &eni1, &subnet, "run");
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("is the primary private IP of ENI"), "{err}");

    // One of the five addresses AWS keeps in every subnet.
    let (code, out, _) = verb(n1, emu, "10.77.0.3", &eni1, &subnet, "check-config");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL: VIP 10.77.0.3 is one of the five addresses AWS keeps")),
        "{out}"
    );

    // A VIP in the kernel's network but not in the ENI's subnet.
    let ip = |args: &[&str]| {
        let ok = Command::new("ip")
            .args(["-n", n1])
            .args(args)
            .status()
            .expect("ip");
        assert!(ok.success(), "ip {args:?}");
    };
    ip(&["addr", "add", "10.78.0.11/24", "dev", "ens5"]);
    let (code, out, _) = verb(n1, emu, "10.78.0.100", &eni1, &subnet, "check-config");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "FAIL: VIP 10.78.0.100 is not inside subnet {subnet} 10.77.0.0/20, our ENI's"
        ))),
        "{out}"
    );
    let (code, _, err) = verb(n1, emu, "10.78.0.100", &eni1, &subnet, "run");
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("is not inside subnet"), "{err}");
    ip(&["addr", "del", "10.78.0.11/24", "dev", "ens5"]);

    // Without the permission: a failed line naming it, nothing else.
    emu.control(
        "POST",
        "/_va/fault",
        Some(&json!({"kind": "unauthorized", "seconds": 60, "actions": ["DescribeSubnets"]})),
    );
    let (code, out, _) = verb(n1, emu, "10.77.0.100", &eni1, &subnet, "check-config");
    assert_eq!(code, 1, "{out}");
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(
        fails,
        [
            "FAIL: ec2:DescribeSubnets not allowed: add it to the instance role's policy \
          (etc/iam-policy.json); the VIP is not checked against the subnet"
        ],
        "{out}"
    );
    emu.control("DELETE", "/_va/fault", None);
    // Nothing was changed by any of it.
    assert!(emu.holders("10.77.0.100").is_empty());
}

/// Issue 19, item 7: no credentials at all (no instance profile, nothing in the
/// environment or a profile file), the most likely first-run mistake: one line that
/// says so and what to do, never an SDK Debug dump; exit 1.
#[test]
fn online_self_test_without_credentials_says_so_in_one_line() {
    let bed = Bed::builder().nodes(1).ec2().enis(&NODES[..1]).build();
    let (n1, emu, ids) = (bed.ns(1), bed.emu(), &bed.ec2().ids);
    let eni = ids["enis"]["n1"]["eni_id"].as_str().expect("eni");
    let subnet = ids["subnet_id"].as_str().expect("subnet");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("va.toml");
    std::fs::write(
        &cfg,
        format!(
            "vip = \"10.77.0.100\"\ninterface = \"ens5\"\nnode_id = 1\nconninfo = \"host=/nonexistent user=repmgr\"\n\
             [aws]\nenabled = true\nregion = \"us-east-1\"\neni_id = \"{eni}\"\nsubnet_id = \"{subnet}\"\n"
        ),
    )
    .expect("write config");
    let out = Command::new("ip")
        .args(["netns", "exec", n1, &arbiter_bin(), "--config"])
        .arg(&cfg)
        .args(["check-config", "--online"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_ENDPOINT_URL", &emu.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .output()
        .expect("run check-config");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("no AWS credentials: attach an instance profile"),
        "{text}"
    );
    for bad in [
        "DispatchFailure",
        "ConnectorError",
        "CredentialsNotLoaded",
        "{ ",
    ] {
        assert!(!text.contains(bad), "a Debug dump ({bad}):\n{text}");
    }
    for line in text.lines() {
        assert!(line.len() < 400, "one line each, short: {line}");
    }
}
