#![allow(dead_code)]
//! The integration tests' shared support: each test file `mod support;`s it and says
//! only what is special to it. The map:
//!
//! * [`require_root`] (here): the one root check; a test that needs root fails, never
//!   skips. [`Ran`] (here): a finished `vip-arbiter` command's exit code and output,
//!   for the files that run the binary's verbs.
//! * `reaper`: the one cleanup guard. A `Reaper` owns child processes and cleanup steps
//!   and undoes them on drop, newest first; optionally a watchdog shell that does the
//!   same if the test process dies without unwinding. `reaper::terminate` (SIGTERM,
//!   bounded wait) and `reaper::kill`. Every process and namespace below is owned by one.
//! * `bed`: the two-node bed. `Bed::builder()` with `.nodes(0..=2)`, `.postgres()`,
//!   `.ec2()` (the emulator in the hub) or `.ec2_on_loopback()`, `.enis(…)`; `Bed`'s
//!   accessors (`ns`, `cluster`, `emu`, `eni`, `subnet`, `holders`, `dir`, `rt`). A test
//!   file adds its own `impl Bed` (its daemon config, its questions). Also `VIP`,
//!   `NODES` and `Ec2` (the emulator with its world), which `repmgrd_bed` shares.
//! * `repmgrd_bed`: the end-to-end bed, richer and kept apart: PostgreSQL *inside* the
//!   namespaces on TCP, two data nodes by default or `BedOptions { data_nodes: 3,
//!   witness: true, .. }` (n3 10.77.0.13, the witness `w` node 4 at 10.77.0.14, its
//!   own PostgreSQL `witness register`ed), repmgrd with automatic failover on every
//!   node, sshd for switchover, partitions, an ENI per namespace (`start_ec2`), the
//!   arbiters' config for the e2e scenarios; helpers over all data nodes (`roles`,
//!   `primary_id`, `wait_primary_among`, `wait_streaming_from`, `switchover_to`,
//!   `crash`, `vip_only_on`). Built from the same pieces (`testbed::Hub`,
//!   `pg_cluster`, `bed::Ec2`, `testbed::Arbiter`, `Reaper`s).
//! * `testbed`: the pieces: `Hub` (hub namespace with a bridge, node namespaces with an
//!   `ens5` into it), `Emulator` (the EC2 emulator, in the hub or on loopback) and its
//!   `EmulatorHandle`, `Arbiter` (a `vip-arbiter run` in a namespace), `Hogs`, and
//!   helpers (`run`, `wait_until`, `rt`, `in_netns`, `kernel_has`, `ens5_addr`,
//!   `mac_for`, `aws_env`, `sdk_client`, `hand_assign`, `hand_vanish`, `arbiter_bin`).
//! * `netns`: a single throwaway namespace with a veth pair, for the kernel adapter and
//!   the host checks.
//! * `pg_cluster`: a real PostgreSQL 15 primary and repmgr standby (unix sockets, or
//!   networked inside namespaces: then any number of standbys and optionally a repmgr
//!   witness).
//! * `fakes`: in-memory observers and actuators for loop-level fault cases.
//! * `fake_imds`: a minimal IMDSv2 inside a namespace.
//! * `sampler`: the 100 ms record of EC2 holders, kernels and roles for e2e assertions
//!   (a witness's role is `Role::Witness`).
//! * `soak`, `soak_report`: the soak core and what its record says.
//! * `campaign`, `campaign_audit`: the seeded fault campaign on the three-node +
//!   witness bed (built on the soak's pieces) and its audit and report.

pub mod bed;
pub mod campaign;
pub mod campaign_audit;
pub mod fake_imds;
pub mod fakes;
pub mod netns;
pub mod pg_cluster;
pub mod reaper;
pub mod repmgrd_bed;
pub mod sampler;
pub mod soak;
pub mod soak_report;
pub mod testbed;

/// Panics unless the test runs as root (euid 0), naming `what` needs it and why: a test
/// that needs root fails, never skips. The one root check of the suite.
pub fn require_root(what: &str) {
    let out = std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run `id -u`: {e}"));
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        uid, "0",
        "{what} needs root; euid is {uid} (run it as root via scripts/test)"
    );
}

/// A finished command: its exit code (-1 if a signal ended it) and its output as text.
/// A test file adds its own `impl Ran` for what it reads out of the output.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Ran {
    fn from(out: std::process::Output) -> Ran {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// Everything, for a failure message: the exit code, stdout and stderr.
    pub fn all(&self) -> String {
        format!(
            "exit {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}
