//! The bridged testbed: a hub namespace holding a bridge (10.77.0.1/20, like an EC2
//! subnet) and the EC2 emulator, and node namespaces whose `ens5` is a veth into that
//! bridge. Private addresses exist only inside these namespaces; the root namespace
//! is not touched. Everything is torn down on drop, also after a failed test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::reaper::{self, Reaper};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub const HUB_IP: &str = "10.77.0.1";
pub const PREFIX: u8 = 20;
pub const EMULATOR_PORT: u16 = 5000;

/// Run a command and panic with its output if it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A current-thread tokio runtime for a test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Poll `cond` every 50 ms until it holds or `limit` passes; bounded, never hangs.
pub fn wait_until(limit: Duration, what: &str, cond: impl FnMut() -> bool) -> Duration {
    wait_until_explained(limit, what, cond, String::new)
}

/// `wait_until`, with `explain()` (logs, state) appended to the timeout's panic.
pub fn wait_until_explained(
    limit: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) -> Duration {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() >= limit {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                explain()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

pub struct Hub {
    pub ns: String,
    /// Kills what runs in each of our namespaces and deletes it on drop (the nodes
    /// first, then the hub); its watchdog does the same when this process exits however
    /// it exits (SIGKILL from a timeout).
    reaper: Reaper,
}

impl Hub {
    pub fn new() -> Hub {
        super::require_root("the bridged testbed (network namespaces)");
        let ns = format!(
            "vah{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &ns]);
        let mut reaper = Reaper::watching("netns-reaper", NETNS_REAPER, [&ns]);
        reaper.then(delete_netns(&ns));
        let hub = Hub { reaper, ns };
        hub.ip(&["link", "set", "lo", "up"]);
        hub.ip(&["link", "add", "br0", "type", "bridge"]);
        hub.ip(&["addr", "add", &format!("{HUB_IP}/{PREFIX}"), "dev", "br0"]);
        hub.ip(&["link", "set", "br0", "up"]);
        hub
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.ns.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// A node namespace whose `ens5` (with `addr`/20 and MAC `mac_for(addr)`, the MAC
    /// `Emulator::setup` gives the ENI with that address) is bridged to the hub.
    pub fn node(&mut self, short: &str, addr: &str) -> String {
        let ns = format!("{}-{short}", self.ns);
        run("ip", &["netns", "add", &ns]);
        self.reaper.then(delete_netns(&ns));
        let peer = format!("v{short}");
        self.ip(&[
            "link", "add", &peer, "type", "veth", "peer", "name", "ens5", "netns", &ns,
        ]);
        self.ip(&["link", "set", &peer, "master", "br0"]);
        self.ip(&["link", "set", &peer, "up"]);
        let mac = mac_for(addr);
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["link", "set", "ens5", "address", &mac],
            vec!["link", "set", "ens5", "up"],
            vec!["addr", "add", &format!("{addr}/{PREFIX}"), "dev", "ens5"],
        ] {
            let mut full = vec!["-n", ns.as_str()];
            full.extend(args.iter().map(|s| &**s));
            run("ip", &full);
        }
        ns
    }

    /// Cut (or restore) a node's link to the bridge: a partition.
    pub fn set_link(&self, short: &str, up: bool) {
        self.ip(&[
            "link",
            "set",
            &format!("v{short}"),
            if up { "up" } else { "down" },
        ]);
    }
}

/// A cleanup step: SIGKILL every process in namespace `ns`, then delete it.
fn delete_netns(ns: &str) -> impl FnOnce() + 'static {
    let ns = ns.to_owned();
    move || {
        if let Ok(o) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    }
}

/// The hub's watchdog: once this process is gone, SIGKILL every process in the hub
/// namespace and in the node namespaces (`<hub>-*`), then delete them.
const NETNS_REAPER: &str = r#"
cat >/dev/null
for ns in $(ip netns list | cut -d' ' -f1); do
  case "$ns" in "$1"|"$1"-*) ;; *) continue ;; esac
  for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$ns" 2>/dev/null
done
"#;

/// Run `f` on a thread that has joined namespace `ns` (so its sockets open there),
/// with its own tokio runtime. Traffic to 10.77.x never leaves from the root namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns (needs root)");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        f(&rt)
    })
    .join()
    .expect("namespace thread panicked")
}

/// The MAC of the node (and of its ENI at the emulator) with primary address `ip`:
/// locally administered, `02:00:` and the address's four bytes (10.77.0.11 →
/// 02:00:0a:4d:00:0b), so the daemon's start-up check of the ENI's MAC holds.
pub fn mac_for(ip: &str) -> String {
    let ip: std::net::Ipv4Addr = ip.parse().expect("an IPv4 address");
    let [a, b, c, d] = ip.octets();
    format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Add or delete (`op`) an address on `ens5` by hand inside a node namespace: drift.
pub fn ens5_addr(ns: &str, op: &str, cidr: &str) {
    run("ip", &["-n", ns, "addr", op, cidr, "dev", "ens5"]);
}

/// Addresses on `ens5` inside a node namespace.
pub fn kernel_has(ns: &str, ip: &str) -> bool {
    let out = run("ip", &["-n", ns, "-j", "-4", "addr", "show", "dev", "ens5"]);
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .any(|a| a["local"] == ip)
}

/// The EC2 emulator (moto behind tests/ec2_emulator/launcher.py) inside the hub.
pub struct Emulator {
    /// Owns the emulator process.
    reaper: Reaper,
    hub_ns: String,
    pub url: String,
    pub log: PathBuf,
}

impl Emulator {
    /// The emulator inside the hub namespace, on the bridge address.
    pub fn start(hub: &Hub, dir: &Path) -> Emulator {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &hub.ns, &python()]);
        Emulator::launch(cmd, &hub.ns, HUB_IP, EMULATOR_PORT, dir)
    }

    /// The emulator on 127.0.0.1 (a free port) in the root namespace, for adapter
    /// tests that need no namespaces.
    pub fn on_loopback(dir: &Path) -> Emulator {
        Emulator::launch(Command::new(python()), "", "127.0.0.1", 0, dir)
    }

    /// Start tests/ec2_emulator/launcher.py with `cmd` (a Python, possibly inside a
    /// namespace) and wait until it has written its URL.
    fn launch(mut cmd: Command, hub_ns: &str, host: &str, port: u16, dir: &Path) -> Emulator {
        let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2_emulator/launcher.py");
        assert!(launcher.exists(), "missing {}", launcher.display());
        let ready = dir.join("emulator.url");
        let log = dir.join("emulator.log");
        let out = std::fs::File::create(&log).expect("emulator log");
        let child = cmd
            .arg(&launcher)
            .args(["--host", host, "--port", &port.to_string(), "--ready-file"])
            .arg(&ready)
            .arg("--call-log")
            .arg(dir.join("ec2-calls.jsonl"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start the EC2 emulator with {}: {e}", python()));
        let mut reaper = Reaper::new();
        reaper.own(child);
        let mut emu = Emulator {
            reaper,
            hub_ns: hub_ns.to_owned(),
            url: String::new(),
            log,
        };
        wait_until(
            Duration::from_secs(30),
            "the EC2 emulator to be ready",
            || {
                if let Some(Ok(Some(status))) = emu.reaper.child_mut().map(Child::try_wait) {
                    panic!(
                        "EC2 emulator exited ({status}): {}",
                        std::fs::read_to_string(&emu.log).unwrap_or_default()
                    );
                }
                std::fs::read_to_string(&ready).is_ok_and(|s| !s.trim().is_empty())
            },
        );
        emu.url = std::fs::read_to_string(&ready)
            .expect("ready file")
            .trim()
            .to_owned();
        emu
    }

    /// Call the emulator's control API from inside the hub.
    pub fn control(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}{path}", self.url);
        let mut args = vec![
            "netns",
            "exec",
            &self.hub_ns,
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-X",
            method,
            &url,
        ];
        let body_s = body.map(Value::to_string);
        if let Some(b) = &body_s {
            args.extend(["-H", "Content-Type: application/json", "--data", b]);
        }
        // On loopback there is no hub namespace to enter.
        let out = if self.hub_ns.is_empty() {
            run("curl", &args[3..])
        } else {
            run("ip", &args)
        };
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("emulator {method} {path}: {e}: {out}"))
    }

    /// The VPC's data plane in the hub (`POST /_va/delivery`, launcher.py's
    /// `Delivery`): from now on the hub's neighbour entry for every secondary address
    /// is pinned to its EC2 holder's MAC (to no one's once unassigned), as a VPC
    /// delivers to the ENI EC2 names. Without it the hub's ARP cache keeps a moved
    /// address on its old node until the entry fails (measured: 30-45 s after a
    /// failover), since nothing announces the move (EC2 needs no gratuitous ARP).
    pub fn deliver_to_holders(&self) {
        assert!(
            !self.hub_ns.is_empty(),
            "delivery needs the emulator in a hub"
        );
        let v = self.control(
            "POST",
            "/_va/delivery",
            Some(&serde_json::json!({"dev": "br0"})),
        );
        assert!(v.get("error").is_none(), "/_va/delivery: {v}");
    }

    /// Which ENIs hold `ip` right now.
    pub fn holders(&self, ip: &str) -> Vec<String> {
        let v = self.control("GET", &format!("/_va/holder?ip={ip}"), None);
        holder_list(&v)
    }

    /// Add a lag rule (eventual consistency; docs/ec2-emulator.md, "Lag mode"): tag
    /// changes reach describes `tags_s` late and address moves `moves_s` late, for
    /// changes written by `writers` (None: any client) as read by `readers` (None:
    /// any). Returns the rule. Panics if the emulator refuses it.
    pub fn set_lag(
        &self,
        tags_s: f64,
        moves_s: f64,
        writers: Option<&[&str]>,
        readers: Option<&[&str]>,
    ) -> Value {
        let body = serde_json::json!({
            "tags_s": tags_s,
            "moves_s": moves_s,
            "writers": writers,
            "readers": readers,
        });
        let rule = self.control("POST", "/_va/lag", Some(&body));
        assert!(
            rule.get("error").is_none(),
            "emulator refused the lag rule {body}: {rule}"
        );
        rule
    }

    /// Remove every lag rule: every pending change is visible at once.
    pub fn clear_lag(&self) {
        let v = self.control("DELETE", "/_va/lag", None);
        assert_eq!(v["cleared"], true, "clear lag: {v}");
    }

    /// The instance dies with its ENI: the ENI, its addresses and its tags leave the
    /// model at once (for every reader) and the instance is terminated. Returns what went.
    pub fn vanish(&self, eni_id: &str) -> Value {
        let body = serde_json::json!({ "eni_id": eni_id });
        let v = self.control("POST", "/_va/vanish", Some(&body));
        assert!(v.get("error").is_none(), "vanish {eni_id}: {v}");
        v
    }

    /// Which ENIs hold `ip` as a client at `reader` sees it now, under the lag rules
    /// (`holders` is the truth).
    pub fn holders_seen_by(&self, ip: &str, reader: &str) -> Vec<String> {
        let v = self.control(
            "GET",
            &format!("/_va/holder?ip={ip}&as_seen_by={reader}"),
            None,
        );
        assert!(
            v.get("error").is_none(),
            "holder of {ip} as seen by {reader}: {v}"
        );
        holder_list(&v)
    }

    /// The call log: (action, status, error code, source ip).
    pub fn calls(&self) -> Vec<Value> {
        self.control("GET", "/_va/calls", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// The `holders` array of a `/_va/holder` answer (none if it has none).
fn holder_list(v: &Value) -> Vec<String> {
    v["holders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str().map(str::to_owned))
        .collect()
}

/// What it takes to ask the emulator where an address is, from another thread.
#[derive(Clone, Debug)]
pub struct EmulatorHandle {
    hub_ns: String,
    url: String,
}

impl EmulatorHandle {
    /// Which ENIs hold `ip`, or None if the control API did not answer (never panics).
    pub fn try_holders(&self, ip: &str) -> Option<Vec<String>> {
        let url = format!("{}/_va/holder?ip={ip}", self.url);
        let curl = ["curl", "-sS", "--max-time", "5", url.as_str()];
        let out = if self.hub_ns.is_empty() {
            Command::new(curl[0]).args(&curl[1..]).output()
        } else {
            Command::new("ip")
                .args(["netns", "exec", &self.hub_ns])
                .args(curl)
                .output()
        }
        .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(
            v["holders"]
                .as_array()?
                .iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect(),
        )
    }
}

impl Emulator {
    pub fn handle(&self) -> EmulatorHandle {
        EmulatorHandle {
            hub_ns: self.hub_ns.clone(),
            url: self.url.clone(),
        }
    }
}

/// The daemon binary: cargo's for integration tests, else `VA_TEST_ARBITER_BIN` (the demo
/// and the benchmarks run from examples/, where cargo does not provide it).
pub fn arbiter_bin() -> String {
    std::env::var("VA_TEST_ARBITER_BIN")
        .ok()
        .or_else(|| option_env!("CARGO_BIN_EXE_vip-arbiter").map(str::to_owned))
        .unwrap_or_else(|| format!("{}/target/debug/vip-arbiter", env!("CARGO_MANIFEST_DIR")))
}

/// A reader of one process's numeric /proc/<pid>/status fields ("VmRSS:" → kB), read
/// once when made.
pub fn proc_status(pid: u32) -> impl Fn(&str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    move |key| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

/// The Python that has moto (VA_TEST_PYTHON, else python3).
pub fn python() -> String {
    std::env::var("VA_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A `vip-arbiter run` process inside a namespace.
pub struct Arbiter {
    /// Owns the daemon while it runs.
    reaper: Reaper,
    pub ns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    env: Vec<(String, String)>,
}

impl Arbiter {
    pub fn start(ns: &str, dir: &Path, name: &str, config: &str, env: &[(&str, &str)]) -> Arbiter {
        let socket = dir.join(format!("{name}.sock"));
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!("socket = {:?}\n{config}", socket.display().to_string()),
        )
        .expect("write config");
        let mut a = Arbiter {
            reaper: Reaper::new(),
            ns: ns.to_owned(),
            config: path,
            socket,
            log: dir.join(format!("{name}.log")),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        a.spawn();
        a
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, &arbiter_bin(), "run", "--config"])
            .arg(&self.config)
            // Each test daemon keeps its fence beside its config (kept across its
            // restarts), never in the machine's /var/lib/vip-arbiter.
            .env(
                "VIP_ARBITER_AWS__STATE_FILE",
                self.config.with_extension("fence.json"),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start vip-arbiter");
        self.reaper.own(child);
        wait_until(Duration::from_secs(20), "the arbiter's first pass", || {
            if let Some(Ok(Some(st))) = self.reaper.child_mut().map(Child::try_wait) {
                panic!("vip-arbiter exited ({st}): {}", self.log_text());
            }
            self.health()
                .is_some_and(|h| h["pass_count"].as_u64().unwrap_or(0) >= 1)
        });
    }

    /// The daemon's pid while it runs (`ip netns exec` execs it, so it is the child's).
    pub fn pid(&self) -> Option<u32> {
        self.reaper.child().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status if the daemon has exited (reaped here), None while it runs or
    /// when it was never started.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.reaper
            .child_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The health JSON, or None if the daemon does not answer.
    pub fn health(&self) -> Option<Value> {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "2", "--unix-socket"])
            .arg(&self.socket)
            .arg("http://localhost/health")
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn verdict(&self) -> String {
        self.health().map_or_else(
            || "no answer".into(),
            |h| h["verdict_kind"].as_str().unwrap_or("").to_owned(),
        )
    }

    /// Run a CLI verb against this daemon (`status`, `check`, `kick`).
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        // --config before the verb: `kick` takes every later word as repmgr's placeholders.
        let out = Command::new(arbiter_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run vip-arbiter");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let child = self.reaper.take_child()?;
        reaper::terminate(child, Duration::from_secs(15), "vip-arbiter")
    }

    pub fn kill9(&mut self) {
        self.reaper.reap();
    }
}

impl Emulator {
    /// Create the VPC, the /20 subnet and one ENI per (name, primary ip), each with
    /// MAC `mac_for(ip)` (the MAC `Hub::node` gives that node's `ens5`).
    pub fn setup(&self, enis: &[(&str, &str)]) -> Value {
        self.setup_world("10.77.0.0/16", "10.77.0.0/20", enis)
    }

    /// `setup` in another VPC and subnet (CIDRs that differ from the first world's).
    pub fn setup_world(&self, vpc_cidr: &str, subnet_cidr: &str, enis: &[(&str, &str)]) -> Value {
        let body = serde_json::json!({
            "region": "us-east-1",
            "vpc_cidr": vpc_cidr,
            "subnet_cidr": subnet_cidr,
            "enis": enis.iter().map(|(n, ip)| serde_json::json!({"name": n, "private_ip": ip, "mac": mac_for(ip)})).collect::<Vec<_>>(),
        });
        self.control("POST", "/_va/setup", Some(&body))
    }

    /// One more ENI, with exactly the id `eni_id`, in an existing subnet: an ENI EC2
    /// shows only now (a freshly launched replacement node's).
    pub fn add_eni(&self, subnet_id: &str, name: &str, ip: &str, eni_id: &str) -> Value {
        let body = serde_json::json!({
            "region": "us-east-1",
            "subnet_id": subnet_id,
            "enis": [{"name": name, "private_ip": ip, "mac": mac_for(ip), "eni_id": eni_id}],
        });
        self.control("POST", "/_va/setup", Some(&body))
    }
}

/// An SDK client pointed at the emulator with dummy credentials.
pub fn sdk_client(url: &str) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// Move `vip` to `eni` by hand, as an operator with the aws CLI would (from inside the
/// hub namespace, where the emulator listens).
pub fn hand_assign(hub_ns: &str, url: &str, eni: &str, vip: &str) {
    let (url, eni, vip) = (url.to_owned(), eni.to_owned(), vip.to_owned());
    in_netns(hub_ns, move |rt| {
        rt.block_on(
            sdk_client(&url)
                .assign_private_ip_addresses()
                .network_interface_id(eni)
                .private_ip_addresses(vip)
                .allow_reassignment(true)
                .send(),
        )
        .expect("hand reassign");
    });
}

/// "The holder died with its instance", as EC2 shows it: the VIP unassigned from `eni`
/// and every tag of that ENI deleted (from inside the hub namespace). The subnet's
/// tags are left alone: they outlive any instance.
pub fn hand_vanish(hub_ns: &str, url: &str, eni: &str, vip: &str) {
    let (url, eni, vip) = (url.to_owned(), eni.to_owned(), vip.to_owned());
    in_netns(hub_ns, move |rt| {
        let c = sdk_client(&url);
        rt.block_on(async {
            c.unassign_private_ip_addresses()
                .network_interface_id(&eni)
                .private_ip_addresses(&vip)
                .send()
                .await
                .expect("hand unassign");
            let d = c
                .describe_network_interfaces()
                .network_interface_ids(&eni)
                .send()
                .await
                .expect("describe the ENI");
            let tags: Vec<_> = d
                .network_interfaces()
                .iter()
                .flat_map(|n| n.tag_set().iter().cloned())
                .collect();
            c.delete_tags()
                .resources(&eni)
                .set_tags(Some(tags))
                .send()
                .await
                .expect("delete the ENI's tags");
        });
    });
}

/// Environment for a daemon talking to the emulator.
pub fn aws_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", url.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// `n` ordinary (non-superuser) clients of the server at unix socket `sock`:`port`,
/// each holding a connection for `seconds`; killed and reaped on drop.
pub struct Hogs(Reaper);

impl Hogs {
    pub fn start(sock: &str, port: &str, user: &str, n: usize, seconds: u32) -> Hogs {
        let sql = format!("SELECT pg_sleep({seconds})");
        let mut reaper = Reaper::new();
        for _ in 0..n {
            reaper.own(
                Command::new("psql")
                    .args([
                        "-XAtq", "-h", sock, "-p", port, "-U", user, "-d", "postgres", "-c", &sql,
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("psql"),
            );
        }
        Hogs(reaper)
    }

    /// Ordinary clients (role `user`) until every slot an ordinary client may take is
    /// taken (`slot_for(…)` says no). Other clients come and go (a hog can be refused,
    /// a slot freed after it), so this tops up a second apart, for `limit` at most,
    /// `per_round` hogs a round.
    pub fn fill(
        sock: &str,
        port: &str,
        user: &str,
        per_round: usize,
        seconds: u32,
        limit: Duration,
    ) -> Vec<Hogs> {
        let mut hogs = Vec::new();
        wait_until(limit, "no slot left for an ordinary client", || {
            let free = slot_for(sock, port, user);
            if free {
                hogs.push(Hogs::start(sock, port, user, per_round, seconds));
                std::thread::sleep(Duration::from_secs(1));
            }
            !free
        });
        hogs
    }
}

/// Does a new connection as `user` get in? `false` only when PostgreSQL refuses it for
/// want of a slot (the non-reserved slots are taken, or the role's own limit is
/// reached); any other failure (no server, no such role) panics, so a test never
/// takes a broken bed for an exhausted one.
pub fn slot_for(sock: &str, port: &str, user: &str) -> bool {
    let out = Command::new("psql")
        .args([
            "-XAtq", "-h", sock, "-p", port, "-U", user, "-d", "postgres", "-c", "SELECT 1",
        ])
        .output()
        .expect("psql");
    if out.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("remaining connection slots are reserved")
            || err.contains("too many connections")
            || err.contains("too many clients"),
        "psql as {user} failed for another reason than a full server: {err}"
    );
    false
}
