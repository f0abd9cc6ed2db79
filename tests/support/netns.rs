//! A throwaway network namespace with `lo` up and a veth pair `ens5` / `ens5p`, both
//! ends inside it, `ens5` holding the given primary address. Nothing in the root
//! namespace is touched. Needs root; without it `Netns::new` panics (tests fail, never
//! skip). Its `Reaper` deletes the namespace on drop, and its watchdog does the same if
//! the test process dies without unwinding.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::reaper::Reaper;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Netns {
    name: String,
    /// Deletes the namespace on drop, or (its watchdog) once this process is gone.
    _reaper: Reaper,
}

impl Netns {
    /// `ip netns add va-<prefix>-<pid>-<n>`, then inside it: `lo` up, veth `ens5` +
    /// `ens5p` up, `primary_cidr` (e.g. `10.77.1.11/20`) on `ens5`.
    pub fn new(prefix: &str, primary_cidr: &str) -> Netns {
        super::require_root("Netns (ip netns add, veth links)");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("va-{prefix}-{}-{n}", std::process::id());
        if std::path::Path::new("/var/run/netns").join(&name).exists() {
            // Left over from an earlier process with the same pid that was killed.
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
        ip(&["netns", "add", &name]);
        let mut reaper = Reaper::watching(
            "netns-reaper",
            r#"cat >/dev/null; ip netns del "$1" 2>/dev/null"#,
            [&name],
        );
        let del = name.clone();
        reaper.then(move || {
            let _ = Command::new("ip")
                .args(["netns", "del", &del])
                .stderr(Stdio::null())
                .status();
        });
        // From here on a panic unwinds through `ns`, whose reaper deletes the namespace.
        let ns = Netns {
            name,
            _reaper: reaper,
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&[
            "link", "add", "ens5", "type", "veth", "peer", "name", "ens5p",
        ]);
        ns.ip(&["addr", "add", primary_cidr, "dev", "ens5"]);
        ns.ip(&["link", "set", "ens5", "up"]);
        ns.ip(&["link", "set", "ens5p", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/netns/<name>`, for `setns`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// `ip netns exec <name> <program> <args>`: run something inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]).args(args);
        cmd
    }

    /// IPv4 addresses on `ifname` as (address, prefix length), from `ip -j -4 addr`.
    pub fn addresses(&self, ifname: &str) -> Vec<(String, u8)> {
        let out = self.ip(&["-j", "-4", "addr", "show", "dev", ifname]);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("parse `ip -j addr` output {out:?}: {e}"));
        let mut addrs = Vec::new();
        for link in v.as_array().into_iter().flatten() {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                let local = a["local"].as_str().expect("addr_info.local").to_owned();
                let len = a["prefixlen"].as_u64().expect("addr_info.prefixlen");
                addrs.push((local, u8::try_from(len).expect("prefixlen fits u8")));
            }
        }
        addrs
    }

    /// `ip addr add <cidr> dev <ifname>` inside the namespace; panics on failure.
    pub fn add_address(&self, ifname: &str, cidr: &str) {
        self.ip(&["addr", "add", cidr, "dev", ifname]);
    }

    /// `ip addr del <cidr> dev <ifname>` inside the namespace; panics on failure.
    pub fn del_address(&self, ifname: &str, cidr: &str) {
        self.ip(&["addr", "del", cidr, "dev", ifname]);
    }

    /// `ip -n <name> <args>`; panics with stderr on failure, returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn `ip` (install iproute2): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
