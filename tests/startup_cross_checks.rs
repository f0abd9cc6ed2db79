//! `vip-arbiter run`'s start-up cross-check of its ENI against the EC2 emulator, from
//! inside a node namespace (whose `ens5` has the MAC the emulator gives that node's
//! ENI), with a fake IMDS in the namespace for this instance's id: an ENI attached to
//! another instance, in another subnet or with another MAC exits 78 with one line
//! naming the difference; an ENI EC2 shows only a few seconds after start is waited
//! for; one that never shows exits 78 after the bound (`VA_TEST_ENI_WAIT_MS`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::bed::Bed;
use support::fake_imds::FakeImds;
use support::reaper;
use support::testbed::{arbiter_bin, aws_env, mac_for, wait_until};

const N1: &str = "10.77.0.11";
const N2: &str = "10.77.0.12";
/// An ENI id the tests create late, or never.
const LATE: &str = "eni-0feedfacecafe0001";

/// Node n1's namespace and the emulator in the hub, set up with `enis`.
fn bed(enis: &[(&str, &str)]) -> Bed {
    Bed::builder().nodes(1).ec2().enis(enis).build()
}

/// What this file asks of the bed: configs for n1's daemon, and running it to its exit.
impl Bed {
    /// The main world's (subnet 10.77.0.0/20) ENI `name`: (ENI id, instance id).
    fn eni_of(&self, name: &str) -> (String, String) {
        let e = &self.ec2().ids["enis"][name];
        (
            e["eni_id"].as_str().expect("eni").to_owned(),
            e["instance_id"].as_str().expect("instance").to_owned(),
        )
    }

    fn config(&self, eni: &str, subnet: &str) -> PathBuf {
        let cfg = self.dir().join("va.toml");
        std::fs::write(
            &cfg,
            format!(
                "vip = \"10.77.0.100\"\ninterface = \"ens5\"\nnode_id = 1\nprefix_len = 32\n\
                 conninfo = \"host=/nonexistent user=repmgr\"\nsocket = {:?}\n\
                 [aws]\nenabled = true\nregion = \"us-east-1\"\neni_id = \"{eni}\"\nsubnet_id = \"{subnet}\"\n",
                self.socket().display().to_string()
            ),
        )
        .expect("write config");
        cfg
    }

    fn socket(&self) -> PathBuf {
        self.dir().join("va.sock")
    }

    /// `vip-arbiter run` in n1; IMDS is `imds` (else disabled); stderr to `log`.
    fn spawn(&self, cfg: &Path, imds: Option<&FakeImds>, wait_ms: &str, log: &Path) -> Child {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            self.ns(1),
            &arbiter_bin(),
            "run",
            "--config",
        ])
        .arg(cfg)
        .envs(aws_env(&self.emu().url))
        .env("VA_TEST_ENI_WAIT_MS", wait_ms)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"));
        match imds {
            Some(f) => cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &f.url),
            None => cmd.env("AWS_EC2_METADATA_DISABLED", "true"),
        };
        cmd.spawn().expect("start vip-arbiter")
    }

    /// Run until it exits (at most `limit`): (exit code, stderr, how long it ran).
    fn run_to_exit(
        &self,
        cfg: &Path,
        imds: Option<&FakeImds>,
        wait_ms: &str,
        limit: Duration,
    ) -> (Option<i32>, String, Duration) {
        let log = self.dir().join("run.log");
        let started = Instant::now();
        let mut child = self.spawn(cfg, imds, wait_ms, &log);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if started.elapsed() > limit {
                reaper::kill(child);
                panic!(
                    "vip-arbiter still runs after {limit:?}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            status.code(),
            std::fs::read_to_string(&log).unwrap_or_default(),
            started.elapsed(),
        )
    }

    /// Run until it exits (at most 30 s, the ENI wait 60 s): it must exit 78; its one
    /// configuration line.
    fn refusal(&self, cfg: &Path, imds: Option<&FakeImds>) -> String {
        let (code, err, _) = self.run_to_exit(cfg, imds, "60000", Duration::from_secs(30));
        assert_eq!(code, Some(78), "{err}");
        config_line(&err)
    }

    /// Wait (at most 30 s) until `child` has made its first pass; panics, with its
    /// `log`, if it exits instead.
    fn wait_first_pass(&self, child: &mut Child, log: &Path) {
        wait_until(Duration::from_secs(30), "the first pass", || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "vip-arbiter exited ({st}) instead of waiting: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            self.passed()
        });
    }

    /// How many calls the emulator logged that asked for ENI `eni` by id.
    fn asked_for(&self, eni: &str) -> usize {
        self.emu()
            .calls()
            .iter()
            .filter(|c| c["params"]["NetworkInterfaceId.1"] == eni)
            .count()
    }

    /// Whether the daemon answers on its health socket with a completed pass.
    fn passed(&self) -> bool {
        Command::new("curl")
            .args(["-s", "--max-time", "2", "--unix-socket"])
            .arg(self.socket())
            .arg("http://localhost/health")
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .is_some_and(|h| h["pass_count"].as_u64().unwrap_or(0) >= 1)
    }
}

/// The one `vip-arbiter: configuration: …` line on stderr.
fn config_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("vip-arbiter: configuration: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_owned()
}

fn stop(child: Child) -> Option<i32> {
    reaper::terminate(child, Duration::from_secs(15), "vip-arbiter")
}

#[test]
fn an_eni_attached_to_another_instance_exits_78_and_names_both() {
    let bed = bed(&[("n1", N1), ("n2", N2)]);
    let (eni1, i1) = bed.eni_of("n1");
    let (_, i2) = bed.eni_of("n2");
    let cfg = bed.config(&eni1, bed.subnet());
    // IMDS says this host is n2's instance.
    let imds = FakeImds::start_in(bed.ns(1), &[("instance-id", &i2)]);
    assert_eq!(
        bed.refusal(&cfg, Some(&imds)),
        format!(
            "vip-arbiter: configuration: ENI {eni1} (aws.eni_id) is not this node's: it is attached to instance {i1}, not to this instance {i2}"
        )
    );
    drop(imds);
    // The same ENI with IMDS saying n1's instance: it starts and says it checked.
    let imds = FakeImds::start_in(bed.ns(1), &[("instance-id", &i1)]);
    let log = bed.dir().join("ok.log");
    let mut child = bed.spawn(&cfg, Some(&imds), "60000", &log);
    bed.wait_first_pass(&mut child, &log);
    assert_eq!(stop(child), Some(0));
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains(&format!("ok: ENI {eni1} is attached to this instance {i1}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("ok: ENI {eni1} has ens5's MAC {}", mac_for(N1))),
        "{text}"
    );
}

#[test]
fn an_eni_in_another_subnet_exits_78_and_names_both() {
    let bed = bed(&[("n1", N1)]);
    let (eni1, _) = bed.eni_of("n1");
    let far = bed.emu().setup_world("10.78.0.0/16", "10.78.0.0/20", &[]);
    let far = far["subnet_id"].as_str().expect("subnet");
    let cfg = bed.config(&eni1, far);
    assert_eq!(
        bed.refusal(&cfg, None),
        format!(
            "vip-arbiter: configuration: ENI {eni1} (aws.eni_id) is not this node's: it is in subnet {}, not {far} (aws.subnet_id)",
            bed.subnet()
        )
    );
}

#[test]
fn an_eni_with_another_mac_exits_78_and_names_both() {
    let bed = bed(&[("n1", N1), ("n2", N2)]);
    // n2's ENI, on n1 (ens5 has n1's MAC); IMDS agrees it is n2's instance, so only
    // the MAC differs.
    let (eni2, i2) = bed.eni_of("n2");
    let cfg = bed.config(&eni2, bed.subnet());
    let imds = FakeImds::start_in(bed.ns(1), &[("instance-id", &i2)]);
    assert_eq!(
        bed.refusal(&cfg, Some(&imds)),
        format!(
            "vip-arbiter: configuration: ENI {eni2} (aws.eni_id) is not this node's: its MAC is {}, not ens5's {}",
            mac_for(N2),
            mac_for(N1)
        )
    );
}

#[test]
fn an_eni_that_shows_late_is_waited_for_then_the_daemon_starts() {
    let bed = bed(&[]);
    let subnet = bed.subnet();
    let cfg = bed.config(LATE, subnet);
    let log = bed.dir().join("late.log");
    let started = Instant::now();
    let mut child = bed.spawn(&cfg, None, "30000", &log);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!bed.passed(), "started before its ENI existed");
    // The replacement node's ENI appears at EC2 only now.
    let late = bed.emu().add_eni(subnet, "n1", N1, LATE);
    assert_eq!(late["enis"]["n1"]["eni_id"], LATE, "{late}");
    bed.wait_first_pass(&mut child, &log);
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(stop(child), Some(0));
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("EC2 does not show our ENI as ours yet")
            && text.contains("InvalidNetworkInterfaceID.NotFound"),
        "{text}"
    );
    assert!(text.contains(&format!("ok: ENI {LATE} exists")), "{text}");
    let by_id = bed.asked_for(LATE);
    assert!(
        (3..=5).contains(&by_id),
        "asked at about 0, 1, 3 (and 7) s, then found: {by_id}"
    );
}

#[test]
fn an_eni_that_never_shows_exits_78_after_the_bound() {
    let bed = bed(&[("n1", N1)]);
    let cfg = bed.config(LATE, bed.subnet());
    let (code, err, took) = bed.run_to_exit(&cfg, None, "3000", Duration::from_secs(30));
    assert_eq!(code, Some(78), "{err}");
    assert!(
        took >= Duration::from_secs(3),
        "gave up before the bound: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    let line = config_line(&err);
    assert!(
        line.starts_with(&format!("vip-arbiter: configuration: ENI {LATE}: "))
            && line.contains("InvalidNetworkInterfaceID.NotFound")
            && line.contains("still after 3s of retries"),
        "{line}"
    );
    let by_id = bed.asked_for(LATE);
    assert!((3..=4).contains(&by_id), "asked at 0, 1 and 3 s: {by_id}");
}
