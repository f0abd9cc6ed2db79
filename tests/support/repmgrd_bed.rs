//! The end-to-end testbed: real repmgrd automatic failover between PostgreSQL 15
//! nodes (two by default, or more, and optionally a repmgr witness), each running
//! INSIDE its own network namespace and talking to the others over TCP through the
//! hub's bridge, like EC2 instances in one subnet.
//!
//! * hub namespace: bridge `br0` 10.77.0.1/20 (and, on demand, the EC2 emulator);
//! * data node i (`BedOptions::data_nodes`, 2 by default) is `n<i>` at 10.77.0.(10+i)
//!   (`n1` 10.77.0.11, `n2` 10.77.0.12, `n3` 10.77.0.13, …); the witness
//!   (`BedOptions::witness`) is node N+1, `w`, at the next address (10.77.0.14 beside
//!   three data nodes). Each has `ens5` into the bridge; PostgreSQL on port 5432
//!   (every address of the namespace, so the VIP too once it is added) and on a unix
//!   socket (psql from the tests uses it: it crosses namespaces and does not depend on
//!   the link); repmgr conninfo `host=10.77.0.1x port=5432 …`;
//! * node1 a registered primary, every other data node a `standby clone
//!   --fast-checkpoint`d, registered standby; the witness its own initdb'd PostgreSQL
//!   with repmgr preloaded, `witness register`ed against node1; `repmgrd
//!   --daemonize=false` on every node, as postgres, inside the node namespaces,
//!   children of the test; `failover=automatic` (with three or more data nodes,
//!   `priority` 100, 90, 80, … so an election prefers the lower id at equal LSNs);
//! * optionally (`BedOptions::ssh`) an sshd per node namespace (the witness's too:
//!   `standby switchover --siblings-follow` re-registers it over ssh) on the node
//!   address, with a key pair for postgres, so `repmgr standby switchover` works.
//!
//! On drop its reapers (`support::reaper::Reaper`) kill repmgrd and sshd, stop
//! PostgreSQL, delete the namespaces and the directory. If the test process dies
//! without unwinding, PgCluster's reaper's watchdog stops the servers and removes the
//! directory and the Hub's kills whatever is left in the namespaces and deletes them.

use super::soak::poll as poll_for;
use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::bed::NODES;
use super::pg_cluster::{
    ClusterNetwork, ClusterOptions, NodeNet, PG_BINDIR, PgCluster, PgNode, chown_postgres,
    output_text, remove_pg_env, write_postgres_file,
};
use super::reaper::Reaper;
use super::sampler::{Role, SampledNode, Sampler, VipClient};
use super::testbed::{Arbiter, Hub, arbiter_bin, aws_env, wait_until, wait_until_explained};

pub use super::bed::{Ec2, VIP};
pub const SUBNET_CIDR: &str = "10.77.0.0/20";
/// Node i (1-based) is at `ADDR[i-1]`: 10.77.0.(10+i), the two-node bed's `NODES`
/// first. A bed has at most `ADDR.len()` nodes, the witness included.
pub const ADDR: [&str; 8] = [
    NODES[0].1,
    NODES[1].1,
    "10.77.0.13",
    "10.77.0.14",
    "10.77.0.15",
    "10.77.0.16",
    "10.77.0.17",
    "10.77.0.18",
];
/// Data node i's short name (namespace suffix, ENI name) is `SHORT[i-1]`.
pub const SHORT: [&str; 8] = [NODES[0].0, NODES[1].0, "n3", "n4", "n5", "n6", "n7", "n8"];
/// The witness's short name.
pub const WITNESS_SHORT: &str = "w";

const REPMGRD: &str = "/usr/lib/postgresql/15/bin/repmgrd";
const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
const SETPRIV: &str = "/usr/bin/setpriv";

/// `event_notification_command` that kicks the node's arbiter (see `BedOptions`).
pub const KICK_ARBITER: &str = "{bin} --config {config} kick %n %e %s %t \"%d\"";

pub struct BedOptions {
    /// Data nodes: node1 the primary, the others standbys (at least 2; default 2).
    pub data_nodes: u32,
    /// A repmgr witness as node `data_nodes + 1` (default none).
    pub witness: bool,
    /// repmgrd: attempts to reach the primary before failing over …
    pub reconnect_attempts: u32,
    /// … and seconds between them.
    pub reconnect_interval_secs: u32,
    pub monitor_interval_secs: u32,
    /// `event_notification_command` for every node; `{bin}` becomes the vip-arbiter
    /// binary, `{config}` the node's arbiter config (`arbiter_config_path`, what
    /// `start_arbiter` writes), `{node}` the node id. `Some(KICK_ARBITER.into())` kicks
    /// the arbiter on every repmgr event.
    pub event_notification_command: Option<String>,
    /// sshd in every namespace and ssh keys for postgres (needed by switchover).
    pub ssh: bool,
    /// Start repmgrd on every node (else only `start_repmgrd` does).
    pub repmgrd: bool,
    /// More repmgr.conf lines for every node.
    pub repmgr_conf_extra: String,
    /// More postgresql.conf lines for every node.
    pub postgresql_conf_extra: String,
}

impl Default for BedOptions {
    fn default() -> BedOptions {
        BedOptions {
            data_nodes: 2,
            witness: false,
            reconnect_attempts: 3,
            reconnect_interval_secs: 2,
            monitor_interval_secs: 1,
            event_notification_command: None,
            ssh: false,
            repmgrd: true,
            repmgr_conf_extra: String::new(),
            postgresql_conf_extra: String::new(),
        }
    }
}

impl BedOptions {
    /// The defaults, with repmgr's events kicking the arbiters (`KICK_ARBITER`), as in
    /// production.
    pub fn kicking() -> BedOptions {
        BedOptions {
            event_notification_command: Some(KICK_ARBITER.into()),
            ..BedOptions::default()
        }
    }
}

/// How long each part of `RepmgrdBed::start` took.
#[derive(Clone, Debug, Default)]
pub struct StartTimes {
    pub namespaces: Duration,
    pub postgres: Duration,
    pub ssh: Duration,
    pub repmgrd: Duration,
    pub total: Duration,
}

/// An arbiter config for `start_arbiter`; `Default` is a 500 ms kernel-only daemon.
pub struct ArbiterConf<'a> {
    pub interval: &'a str,
    pub pg_unknown_hold: &'a str,
    /// More top-level TOML lines.
    pub extra: &'a str,
    /// EC2 mode against this emulator (`[aws] enabled = true`, the node's ENI and the
    /// subnet given explicitly); None = kernel-only.
    pub ec2: Option<&'a Ec2>,
    /// More `[aws]` lines.
    pub aws_extra: &'a str,
}

impl Default for ArbiterConf<'_> {
    fn default() -> Self {
        ArbiterConf {
            interval: "500ms",
            pg_unknown_hold: "10s",
            extra: "",
            ec2: None,
            aws_extra: "",
        }
    }
}

/// Fields drop in this order: repmgrd first (it must not act on the servers being
/// stopped), then sshd, then `cluster` (servers, directory) and `hub` (namespaces).
pub struct RepmgrdBed {
    /// Node id's repmgrd is `repmgrd[id-1]`.
    repmgrd: Vec<Reaper>,
    sshd: Reaper,
    cluster: PgCluster,
    hub: Hub,
    /// Node id's namespace is `ns[id-1]` (the witness last).
    ns: Vec<String>,
    data_nodes: u32,
    witness: bool,
    pub times: StartTimes,
}

/// Short name and address of node `id` in a bed of `data_nodes` data nodes (a node id
/// past them is the witness).
fn layout(data_nodes: u32, id: u32) -> (&'static str, &'static str) {
    let i = (id as usize).wrapping_sub(1);
    let short = if id > data_nodes {
        WITNESS_SHORT
    } else {
        SHORT[i]
    };
    (short, ADDR[i])
}

impl RepmgrdBed {
    pub fn start(opts: BedOptions) -> RepmgrdBed {
        let t0 = Instant::now();
        preflight(&opts);
        let total = opts.data_nodes + u32::from(opts.witness);
        assert!(
            opts.data_nodes >= 2 && total as usize <= ADDR.len(),
            "a repmgrd bed has 2 to {} nodes, the witness included (asked: {} data nodes, witness {})",
            ADDR.len(),
            opts.data_nodes,
            opts.witness
        );
        let mut hub = Hub::new();
        let ns: Vec<String> = (1..=total)
            .map(|id| {
                let (short, addr) = layout(opts.data_nodes, id);
                hub.node(short, addr)
            })
            .collect();
        let namespaces = t0.elapsed();

        let net = |id: u32| NodeNet {
            ns: ns[id as usize - 1].clone(),
            addr: layout(opts.data_nodes, id).1.to_owned(),
        };
        let network = ClusterNetwork {
            nodes: (1..=opts.data_nodes).map(net).collect(),
            witness: opts.witness.then(|| net(total)),
            cidr: SUBNET_CIDR.to_owned(),
        };
        let conf_opts = RepmgrdConf {
            priorities: opts.data_nodes >= 3,
            reconnect_attempts: opts.reconnect_attempts,
            reconnect_interval_secs: opts.reconnect_interval_secs,
            monitor_interval_secs: opts.monitor_interval_secs,
            event_notification_command: opts.event_notification_command.clone(),
            extra: opts.repmgr_conf_extra.clone(),
        };
        let cluster = PgCluster::start_networked(
            ClusterOptions {
                repmgr_conf_extra: Some(Box::new(move |n| conf_opts.lines(n))),
                postgresql_conf_extra: opts.postgresql_conf_extra.clone(),
            },
            network,
        );
        let postgres = t0.elapsed() - namespaces;
        // From here on a panic unwinds through `bed`, whose Drop cleans up.
        let mut bed = RepmgrdBed {
            repmgrd: (1..=total).map(|_| Reaper::new()).collect(),
            sshd: Reaper::new(),
            cluster,
            hub,
            ns,
            data_nodes: opts.data_nodes,
            witness: opts.witness,
            times: StartTimes::default(),
        };
        let t1 = Instant::now();
        if opts.ssh {
            bed.start_ssh();
        }
        let ssh = t1.elapsed();
        let t2 = Instant::now();
        if opts.repmgrd {
            // Spawn all, then wait for all: they come up in parallel.
            for id in bed.ids() {
                bed.spawn_repmgrd(id);
            }
            for id in bed.ids() {
                bed.wait_repmgrd_monitoring(id, 0);
            }
        }
        bed.times = StartTimes {
            namespaces,
            postgres,
            ssh,
            repmgrd: t2.elapsed(),
            total: t0.elapsed(),
        };
        eprintln!("repmgrd bed up: {:?}", bed.times);
        bed
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn cluster(&self) -> &PgCluster {
        &self.cluster
    }

    /// The bed's directory (data dirs, configs, logs, keys; removed on drop).
    pub fn dir(&self) -> &Path {
        self.cluster.base_dir()
    }

    /// Node `id` (1 up to `ids()`'s last).
    pub fn node(&self, id: u32) -> &PgNode {
        self.cluster.node(self.checked(id))
    }

    /// Every node id: the data nodes, then the witness.
    pub fn ids(&self) -> std::ops::RangeInclusive<u32> {
        1..=self.data_nodes + u32::from(self.witness)
    }

    /// The data nodes' ids (1..=N): node1 the first primary, the others standbys.
    pub fn data_ids(&self) -> std::ops::RangeInclusive<u32> {
        1..=self.data_nodes
    }

    /// The witness's node id (N+1), if the bed has one.
    pub fn witness_id(&self) -> Option<u32> {
        self.witness.then_some(self.data_nodes + 1)
    }

    pub fn is_witness(&self, id: u32) -> bool {
        self.witness_id() == Some(id)
    }

    /// `id`, panicking unless it is a node of this bed.
    fn checked(&self, id: u32) -> u32 {
        assert!(
            self.ids().contains(&id),
            "no node {id} (nodes are {:?})",
            self.ids()
        );
        id
    }

    fn idx(&self, id: u32) -> usize {
        (self.checked(id) - 1) as usize
    }

    /// The namespace node `id` runs in.
    pub fn ns(&self, id: u32) -> &str {
        &self.ns[self.idx(id)]
    }

    pub fn addr(&self, id: u32) -> &'static str {
        layout(self.data_nodes, self.checked(id)).1
    }

    /// Node `id`'s short name (`n1`, …, `w` for the witness): its namespace's suffix
    /// and its ENI's name.
    pub fn short(&self, id: u32) -> &'static str {
        layout(self.data_nodes, self.checked(id)).0
    }

    /// Cut node `id`'s link to the bridge (a partition); `heal` restores it.
    pub fn partition(&self, id: u32) {
        self.hub.set_link(self.short(id), false);
    }

    pub fn heal(&self, id: u32) {
        self.hub.set_link(self.short(id), true);
    }

    /// Cut (or heal) n1 <-> n2 only, with blackhole routes; both still reach the hub
    /// (EC2).
    pub fn cut_between_nodes(&self, add: bool) {
        for (ns, peer) in [(self.ns(1), self.addr(2)), (self.ns(2), self.addr(1))] {
            let route = format!("{peer}/32");
            let op = if add { "add" } else { "del" };
            let st = Command::new("ip")
                .args(["-n", ns, "route", op, "blackhole", &route])
                .status()
                .expect("ip route");
            assert!(st.success(), "ip -n {ns} route {op} blackhole {route}");
        }
    }

    /// Both arbiters started with `c`; waits until the VIP is on n1 at EC2 and in its
    /// kernel, n1 `holding` and n2 `standby`.
    pub fn arbiters_converged_on_n1(&self, c: &ArbiterConf) -> (Arbiter, Arbiter) {
        let ec2 = c.ec2.expect("an EC2 bed");
        let a1 = self.start_arbiter(1, c);
        let a2 = self.start_arbiter(2, c);
        wait_until(
            Duration::from_secs(15),
            "VIP on n1 at EC2 and in its kernel",
            || {
                ec2.holders() == [ec2.eni(1).to_owned()]
                    && super::testbed::kernel_has(self.ns(1), VIP)
            },
        );
        wait_until(Duration::from_secs(5), "a1 holding, a2 standby", || {
            a1.verdict() == "holding" && a2.verdict() == "standby"
        });
        (a1, a2)
    }

    /// An arbiter on every node (the witness too), started with `c`, in node order.
    pub fn start_arbiters(&self, c: &ArbiterConf) -> Vec<Arbiter> {
        self.ids().map(|id| self.start_arbiter(id, c)).collect()
    }

    /// The VIP on node `id` alone: EC2's only holder is its ENI, its kernel has the
    /// address and no other node's kernel has it.
    pub fn vip_only_on(&self, ec2: &Ec2, id: u32) -> bool {
        ec2.emu.handle().try_holders(VIP) == Some(vec![ec2.eni(id).to_owned()])
            && self
                .ids()
                .all(|n| super::testbed::kernel_has(self.ns(n), VIP) == (n == id))
    }

    /// Whether a TCP connection from node `from`'s namespace to node `to`'s address on
    /// `port` opens within 2 s (a partition check).
    pub fn tcp_reachable(&self, from: u32, to: u32, port: u16) -> bool {
        Command::new("ip")
            .args(["netns", "exec", self.ns(from), "timeout", "2", "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{}/{port}", self.addr(to)))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Node `id`'s role; the witness's is `Role::Witness` while its PostgreSQL
    /// answers (it is never in recovery, and never a candidate), else `Down`.
    pub fn role(&self, id: u32) -> Role {
        let node = self.node(id);
        if node.is_witness() {
            return match node.try_psql("SELECT 1") {
                Ok(_) => Role::Witness,
                Err(_) => Role::Down,
            };
        }
        Role::of(node)
    }

    /// The data node out of recovery; None if none is; panics if two are (use
    /// `roles`).
    pub fn primary_id(&self) -> Option<u32> {
        let p: Vec<u32> = self
            .data_ids()
            .filter(|id| self.role(*id) == Role::Primary)
            .collect();
        assert!(p.len() < 2, "two data nodes are primaries: {p:?}");
        p.first().copied()
    }

    /// The data nodes' roles, in node order (the witness is not among them).
    pub fn roles(&self) -> Vec<Role> {
        self.data_ids().map(|id| self.role(id)).collect()
    }

    /// SIGKILL-like crash of node `id`'s PostgreSQL (`pg_ctl stop -m immediate`);
    /// repmgrd and the arbiter on it keep running.
    pub fn crash(&self, id: u32) {
        self.node(id).stop_immediate();
    }

    pub fn timeline(&self, id: u32) -> u32 {
        self.node(id).timeline()
    }

    /// Bounded wait until node `id` is out of recovery; on a timeout the panic carries
    /// both nodes' repmgrd and PostgreSQL logs (why repmgrd did not promote).
    pub fn wait_primary(&self, id: u32, limit: Duration) -> Duration {
        wait_until_explained(
            limit,
            &format!("node{id} to be primary"),
            || self.role(id) == Role::Primary,
            || self.logs(),
        )
    }

    /// Bounded wait until exactly one of the data nodes `among` is out of recovery
    /// (repmgrd's election); returns it. On a timeout the panic carries every node's
    /// logs.
    pub fn wait_primary_among(&self, among: &[u32], limit: Duration) -> u32 {
        let mut found = None;
        wait_until_explained(
            limit,
            &format!("one of nodes {among:?} to be primary"),
            || {
                let p: Vec<u32> = among
                    .iter()
                    .copied()
                    .filter(|id| self.role(*id) == Role::Primary)
                    .collect();
                found = (p.len() == 1).then(|| p[0]);
                found.is_some()
            },
            || self.logs(),
        );
        found.expect("found")
    }

    /// The primary data node (other than `id`) that shows node `id` streaming in its
    /// pg_stat_replication, if any.
    pub fn streaming_from(&self, id: u32) -> Option<u32> {
        let sql =
            format!("SELECT state FROM pg_stat_replication WHERE application_name = 'node{id}'");
        self.data_ids().filter(|o| *o != id).find(|o| {
            self.node(*o).try_psql(&sql).as_deref() == Ok("streaming")
                && self.role(*o) == Role::Primary
        })
    }

    /// Bounded wait until a primary shows node `id` streaming.
    pub fn wait_streaming(&self, id: u32, limit: Duration) {
        wait_until_explained(
            limit,
            &format!("node{id} streaming from a primary"),
            || self.streaming_from(id).is_some(),
            || self.logs(),
        );
    }

    /// Bounded wait until node `from` (a primary) shows node `id` streaming.
    pub fn wait_streaming_from(&self, id: u32, from: u32, limit: Duration) {
        wait_until_explained(
            limit,
            &format!("node{id} streaming from node{from}"),
            || self.streaming_from(id) == Some(from),
            || self.logs(),
        );
    }

    /// The witness's upstream as the primary `primary`'s repmgr.nodes has it (None
    /// without a witness or an answer).
    pub fn witness_upstream(&self, primary: u32) -> Option<u32> {
        let w = self.witness_id()?;
        self.node(primary)
            .try_psql(&format!(
                "SELECT upstream_node_id FROM repmgr.nodes WHERE node_id = {w} AND type = 'witness'"
            ))
            .ok()?
            .parse()
            .ok()
    }

    /// Start a node whose data dir has no standby.signal (the old primary after a
    /// failover) as it is: a second, stale primary on the old timeline.
    pub fn start_as_is(&self, id: u32) {
        let node = self.node(id);
        assert!(
            !node.data_dir().join("standby.signal").exists(),
            "node{id} has a standby.signal: it would start as a standby"
        );
        node.start();
        assert_eq!(self.role(id), Role::Primary, "node{id} started as-is");
    }

    /// `repmgr node rejoin --force-rewind` of the stopped node `id` to the primary, then
    /// wait until it streams from it; up to `REJOIN_ATTEMPTS` tries, the node stopped
    /// again between them. Each try first runs a CHECKPOINT on the primary: pg_rewind
    /// takes the source's timeline from its control file, which after a promotion still
    /// names the old timeline until the first checkpoint after it completes; pg_rewind
    /// then finds "the same timeline", rewinds nothing, and a node whose WAL goes past
    /// the fork (its crash recovery's shutdown checkpoint is enough) never streams:
    /// "new timeline N forked off current database system timeline N-1 before current
    /// recovery point", repmgr waits `node_rejoin_timeout` seeing it "attached in state
    /// startup" and fails (PostgreSQL's pg_rewind docs ask for that CHECKPOINT).
    pub fn rejoin(&self, id: u32) {
        let node = self.node(id);
        let mut failures = Vec::new();
        for attempt in 1..=REJOIN_ATTEMPTS {
            match self.try_rejoin(id) {
                Ok(()) => return,
                Err(e) => {
                    eprintln!("rejoin node{id}: attempt {attempt} of {REJOIN_ATTEMPTS} failed");
                    failures.push(format!("attempt {attempt}: {e}"));
                    if node.is_running() {
                        node.stop_fast();
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
        panic!(
            "repmgr node rejoin node{id} failed {REJOIN_ATTEMPTS} times:\n{}\n{}",
            failures.join("\n"),
            self.logs()
        );
    }

    /// One `rejoin` try: Err(why) with repmgr's output and the node's PostgreSQL log.
    fn try_rejoin(&self, id: u32) -> Result<(), String> {
        let node = self.node(id);
        let primary_id = self
            .data_ids()
            .find(|o| *o != id && self.role(*o) == Role::Primary)
            .ok_or_else(|| format!("rejoin node{id}: no primary"))?;
        let primary = self.node(primary_id);
        assert!(!node.is_running(), "rejoin needs node{id} stopped");
        primary
            .try_psql("CHECKPOINT")
            .map_err(|e| format!("CHECKPOINT on node{primary_id}: {e}"))?;
        let conninfo = primary.conninfo();
        let (st, out) = self.repmgr_bounded(
            id,
            &[
                "node",
                "rejoin",
                "-d",
                &conninfo,
                "--force-rewind",
                "--verbose",
            ],
            Duration::from_secs(120),
        );
        let streaming = st.success()
            && poll_for(Duration::from_secs(30), || {
                self.streaming_from(id) == Some(primary_id)
            });
        if streaming {
            return Ok(());
        }
        let lines: Vec<&str> = out.lines().collect();
        Err(format!(
            "{} to node{primary_id}:\n{}\n--- node{id} postgres.log\n{}",
            if st.success() {
                "rejoined but not streaming within 30 s"
            } else {
                "repmgr node rejoin failed"
            },
            lines[lines.len().saturating_sub(12)..].join("\n"),
            node.log_tail()
        ))
    }

    /// `repmgr standby switchover --siblings-follow --dry-run` on node `id`: (success,
    /// output).
    pub fn switchover_dry_run(&self, id: u32) -> (bool, String) {
        let (st, out) = self.repmgr_bounded(
            id,
            &["standby", "switchover", "--siblings-follow", "--dry-run"],
            Duration::from_secs(60),
        );
        (st.success(), out)
    }

    /// `repmgr standby switchover --siblings-follow` on standby `id` (needs
    /// `BedOptions::ssh`); then wait until every other data node streams from it (the
    /// old primary rejoined, the siblings followed). Beyond two nodes (three or more
    /// data nodes, or a witness) also until the witness is registered under it and
    /// repmgrd on every other node monitors it (`repmgrd_following`): a sibling's
    /// repmgrd still reconnecting to its old upstream when the new primary fails finds
    /// no primary and exits, and then never follows the next one.
    pub fn switchover_to(&self, id: u32) {
        assert!(
            self.sshd.child().is_some(),
            "switchover needs BedOptions {{ ssh: true }}"
        );
        let (st, out) = self.repmgr_bounded(
            id,
            &["standby", "switchover", "--siblings-follow", "--verbose"],
            Duration::from_secs(180),
        );
        assert!(
            st.success(),
            "switchover to node{id} failed:\n{out}\n{}",
            self.logs()
        );
        assert_eq!(self.role(id), Role::Primary, "node{id} after switchover");
        for other in self.data_ids().filter(|o| *o != id) {
            self.wait_streaming_from(other, id, Duration::from_secs(30));
        }
        if self.ids().count() > 2 {
            if self.witness {
                wait_until_explained(
                    Duration::from_secs(30),
                    &format!("the witness registered under node{id}"),
                    || self.witness_upstream(id) == Some(id),
                    || self.logs(),
                );
            }
            for other in self.ids().filter(|o| *o != id) {
                wait_until_explained(
                    Duration::from_secs(30),
                    &format!("repmgrd on node{other} monitoring node{id}"),
                    || self.repmgrd_following(other, id),
                    || self.logs(),
                );
            }
        }
    }

    /// Whether repmgrd on node `id` (a standby or the witness) monitors `upstream`
    /// now: not paused, and within the last 2 s it recorded `upstream` as seen
    /// (`repmgr.get_upstream_node_id()`, `get_upstream_last_seen()`: repmgrd's shared
    /// memory in that node's PostgreSQL, reset when the server restarts).
    pub fn repmgrd_following(&self, id: u32, upstream: u32) -> bool {
        let sql = "SELECT repmgr.get_upstream_node_id() || ' ' || \
                   repmgr.get_upstream_last_seen() || ' ' || repmgr.repmgrd_is_paused()";
        let Ok(out) = self.node(id).try_psql(sql) else {
            return false;
        };
        let f: Vec<&str> = out.split_whitespace().collect();
        let seen = f.get(1).and_then(|s| s.parse::<i64>().ok());
        f.first() == Some(&upstream.to_string().as_str())
            && seen.is_some_and(|s| (0..=2).contains(&s))
            && f.get(2) == Some(&"false")
    }

    /// `repmgr -f <node id's conf> <args>` inside its namespace, killed (with its
    /// process group) after `limit`: (status, stdout + stderr).
    pub fn repmgr_bounded(&self, id: u32, args: &[&str], limit: Duration) -> (ExitStatus, String) {
        let node = self.node(id);
        let mut cmd = node.command(&format!("{PG_BINDIR}/repmgr"));
        cmd.arg("-f").arg(node.repmgr_conf()).args(args);
        run_bounded(cmd, &self.dir().join(format!("repmgr-{id}.out")), limit)
    }

    /// SIGKILL node `id`'s repmgrd (a crash); no-op if it is not running.
    pub fn kill_repmgrd(&mut self, id: u32) {
        let i = self.idx(id);
        self.repmgrd[i].reap();
    }

    /// Start repmgrd on node `id` and wait until it monitors (bounded).
    pub fn start_repmgrd(&mut self, id: u32) {
        let from = self.repmgrd_log(id).len();
        self.spawn_repmgrd(id);
        self.wait_repmgrd_monitoring(id, from);
    }

    pub fn repmgrd_running(&mut self, id: u32) -> bool {
        let i = self.idx(id);
        self.repmgrd[i]
            .child_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn repmgrd_log(&self, id: u32) -> String {
        std::fs::read_to_string(self.node(id).dir().join("repmgrd.log")).unwrap_or_default()
    }

    /// Tails of every node's repmgrd and PostgreSQL logs, for failure messages.
    pub fn logs(&self) -> String {
        let tail = |text: String, n: usize| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        let mut s = String::new();
        for id in self.ids() {
            s.push_str(&format!(
                "--- node{id} repmgrd.log\n{}\n--- node{id} postgres.log\n{}\n",
                tail(self.repmgrd_log(id), 40),
                self.node(id).log_tail()
            ));
        }
        s
    }

    /// The EC2 emulator in the hub with an ENI per node, the witness's too (named by
    /// `short`, primary addresses 10.77.0.1x; node id's is `eni(id)`).
    pub fn start_ec2(&self) -> Ec2 {
        let nodes: Vec<(&str, &str)> = self
            .ids()
            .map(|id| (self.short(id), self.addr(id)))
            .collect();
        Ec2::in_hub_per_node(&self.hub, self.dir(), &nodes)
    }

    /// Where `start_arbiter(id, …)` writes node `id`'s arbiter config.
    pub fn arbiter_config_path(&self, id: u32) -> PathBuf {
        arbiter_config_path(self.dir(), id)
    }

    /// `vip-arbiter run` in node `id`'s namespace, for `VIP` on `ens5` (/32), reading
    /// node `id`'s repmgr.conf; its socket is world-writable so repmgr's
    /// event_notification_command (run as postgres) can kick it.
    pub fn start_arbiter(&self, id: u32, c: &ArbiterConf) -> Arbiter {
        self.start_arbiter_with_env(id, c, &[])
    }

    /// `start_arbiter` with more environment (e.g. NOTIFY_SOCKET).
    pub fn start_arbiter_with_env(
        &self,
        id: u32,
        c: &ArbiterConf,
        more_env: &[(&str, &str)],
    ) -> Arbiter {
        let mut cfg = format!(
            "vip = \"{VIP}\"\ninterface = \"ens5\"\nprefix_len = 32\nrepmgr_config = {:?}\n\
             interval = \"{}\"\npg_unknown_hold = \"{}\"\nlog_level = \"debug\"\nsocket_mode = \"0666\"\n# repmgr runs the kick as postgres; the test daemon runs as root.\nkick_allow = [\"postgres\"]\n{}\n",
            self.node(id).repmgr_conf().display().to_string(),
            c.interval,
            c.pg_unknown_hold,
            c.extra
        );
        let mut env = Vec::new();
        if let Some(ec2) = c.ec2 {
            cfg.push_str(&format!(
                "[aws]\nenabled = true\nregion = \"us-east-1\"\neni_id = \"{}\"\nsubnet_id = \"{}\"\n{}\n",
                ec2.eni(id),
                ec2.subnet,
                c.aws_extra
            ));
            env = aws_env(&ec2.emu.url);
        }
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(more_env);
        let a = Arbiter::start(self.ns(id), self.dir(), &format!("a{id}"), &cfg, &env);
        assert_eq!(a.config, self.arbiter_config_path(id));
        a
    }

    /// A sampler of `VIP` on every node (node order 1, 2, …, the witness last), at
    /// EC2 too if given.
    pub fn sampler(&self, ec2: Option<&Ec2>, max: Duration) -> Sampler {
        self.sampler_with_client(ec2, max, None)
    }

    /// `sampler`, with a client writing through the VIP from the hub (`VipClient`).
    pub fn sampler_with_client(
        &self,
        ec2: Option<&Ec2>,
        max: Duration,
        client: Option<VipClient>,
    ) -> Sampler {
        let nodes = self
            .ids()
            .map(|id| SampledNode {
                ns: self.ns(id).to_owned(),
                pg: self.node(id).clone(),
            })
            .collect();
        Sampler::with_client(VIP, ec2.map(|e| e.emu.handle()), nodes, max, client)
    }

    fn spawn_repmgrd(&mut self, id: u32) {
        self.kill_repmgrd(id);
        let node = self.node(id);
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir().join("repmgrd.out"))
            .expect("repmgrd.out");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(id), SETPRIV])
            // setpriv execs (runuser would fork and stay the parent): the child we own
            // is repmgrd itself, so killing it is killing repmgrd.
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
                REPMGRD,
                "-f",
            ])
            .arg(node.repmgr_conf())
            .arg("--daemonize=false")
            .current_dir(node.dir())
            .env("HOME", postgres_home())
            .env("USER", "postgres")
            .env("LOGNAME", "postgres")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("repmgrd.out"))
            .stderr(out);
        remove_pg_env(&mut cmd);
        let child = cmd.spawn().expect("start repmgrd");
        let i = self.idx(id);
        self.repmgrd[i].own(child);
    }

    /// Until repmgrd on node `id` has logged (after byte `from` of its log) that it
    /// monitors, and its PostgreSQL knows it runs.
    fn wait_repmgrd_monitoring(&mut self, id: u32, from: usize) {
        let start = Instant::now();
        loop {
            let i = self.idx(id);
            if let Some(Ok(Some(st))) = self.repmgrd[i].child_mut().map(Child::try_wait) {
                panic!(
                    "repmgrd on node{id} exited ({st}):\n{}\n{}",
                    std::fs::read_to_string(self.node(id).dir().join("repmgrd.out"))
                        .unwrap_or_default(),
                    self.logs()
                );
            }
            let log = self.repmgrd_log(id);
            let new = log.get(from..).unwrap_or("");
            let monitoring = new.contains("monitoring cluster primary")
                || new.contains("monitoring connection to upstream node")
                || new.contains("witness monitoring connection to primary node");
            if monitoring
                && self
                    .node(id)
                    .try_psql("SELECT repmgr.repmgrd_is_running()")
                    .as_deref()
                    == Ok("t")
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "repmgrd on node{id} not monitoring after 30 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_ssh(&mut self) {
        let ssh = self.dir().join("ssh");
        std::fs::create_dir(&ssh).expect("mkdir ssh");
        let key = ssh.join("id_ed25519");
        keygen(&key, "vip-arbiter-bed");
        chown_postgres(&key);
        let pubkey = std::fs::read_to_string(ssh.join("id_ed25519.pub")).expect("pub key");
        write_postgres_file(&ssh.join("authorized_keys"), &pubkey);
        // sshd's privilege separation directory (what the Debian unit creates).
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        for id in self.ids() {
            let short = self.short(id);
            let host_key = ssh.join(format!("host_{short}"));
            keygen(&host_key, short);
            let config = ssh.join(format!("sshd_{short}.conf"));
            std::fs::write(
                &config,
                format!(
                    "ListenAddress {}:22\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\n\
                     StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     UsePAM yes\nAllowUsers postgres\nPrintMotd no\nLogLevel VERBOSE\n",
                    self.addr(id),
                    host_key.display(),
                    ssh.join("authorized_keys").display()
                ),
            )
            .expect("sshd config");
            let log = std::fs::File::create(ssh.join(format!("sshd_{short}.log"))).expect("log");
            let child = Command::new("ip")
                .args(["netns", "exec", self.ns(id), SSHD, "-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start sshd");
            self.sshd.own(child);
        }
        // postgres on each node reaches every other over ssh (what switchover does).
        let pairs: Vec<(u32, u32)> = self
            .ids()
            .flat_map(|id| self.ids().filter(move |o| *o != id).map(move |o| (id, o)))
            .collect();
        for (id, to) in pairs {
            let (other, to_short) = (self.addr(to), self.short(to));
            let start = Instant::now();
            loop {
                let out = self
                    .node(id)
                    .command("/usr/bin/ssh")
                    .args(ssh_options(self.dir()).split_whitespace())
                    .args([other, "true"])
                    .env("HOME", postgres_home())
                    .output()
                    .expect("spawn ssh");
                if out.status.success() {
                    break;
                }
                let last = output_text(&out);
                for c in self.sshd.children_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        panic!(
                            "sshd exited ({st}): {}",
                            std::fs::read_to_string(ssh.join(format!("sshd_{to_short}.log")))
                                .unwrap_or_default()
                        );
                    }
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "ssh from n{id} to {other} as postgres still failing after 10 s:\n{last}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn arbiter_config_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("a{id}.toml"))
}

/// repmgr.conf lines for repmgrd (built before the directory exists: everything is
/// derived from the node).
struct RepmgrdConf {
    /// `priority` 100, 90, 80, … by node id on the data nodes (three or more of them).
    priorities: bool,
    reconnect_attempts: u32,
    reconnect_interval_secs: u32,
    monitor_interval_secs: u32,
    event_notification_command: Option<String>,
    extra: String,
}

impl RepmgrdConf {
    fn lines(&self, n: &PgNode) -> String {
        let conf = n.repmgr_conf().display().to_string();
        let dir = n.dir().display().to_string();
        let base = n.dir().parent().expect("node dir has a parent");
        let mut s = format!(
            "failover='automatic'\n\
             promote_command='{PG_BINDIR}/repmgr standby promote -f {conf} --log-to-file'\n\
             follow_command='{PG_BINDIR}/repmgr standby follow -f {conf} --log-to-file --upstream-node-id=%n'\n\
             reconnect_attempts={}\n\
             reconnect_interval={}\n\
             monitor_interval_secs={}\n\
             log_file='{dir}/repmgrd.log'\n\
             log_level='INFO'\n\
             repmgrd_pid_file='{dir}/repmgrd.pid'\n\
             pg_ctl_options='-l {dir}/postgres.log'\n\
             ssh_options='{}'\n",
            self.reconnect_attempts,
            self.reconnect_interval_secs,
            self.monitor_interval_secs,
            ssh_options(base)
        );
        if self.priorities && !n.is_witness() {
            let priority = 100u32.saturating_sub(10 * (n.node_id() - 1));
            s.push_str(&format!("priority={priority}\n"));
        }
        if let Some(cmd) = &self.event_notification_command {
            let cmd = cmd
                .replace("{bin}", &arbiter_bin())
                .replace(
                    "{config}",
                    &arbiter_config_path(base, n.node_id()).display().to_string(),
                )
                .replace("{node}", &n.node_id().to_string());
            s.push_str(&format!("event_notification_command='{cmd}'\n"));
        }
        s.push_str(&self.extra);
        s
    }
}

/// For repmgr's ssh (and the bed's own check): the bed's key, no host key checks, no
/// prompts, a short connect timeout.
fn ssh_options(base: &Path) -> String {
    format!(
        "-q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o ConnectTimeout=2 -i {}",
        base.join("ssh/id_ed25519").display()
    )
}

fn keygen(path: &Path, comment: &str) {
    let out = Command::new(SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {}", output_text(&out));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
}

fn postgres_home() -> String {
    let out = Command::new("getent")
        .args(["passwd", "postgres"])
        .output()
        .expect("getent passwd postgres");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(':')
        .nth(5)
        .filter(|h| !h.is_empty())
        .unwrap_or("/var/lib/postgresql")
        .to_owned()
}

/// Spawn `cmd` in its own process group with output to `out`; kill the group after
/// `limit`. (status, output).
fn run_bounded(mut cmd: Command, out: &Path, limit: Duration) -> (ExitStatus, String) {
    let f = std::fs::File::create(out).expect("output file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("output file"))
        .stderr(f)
        .process_group(0)
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return (st, std::fs::read_to_string(out).unwrap_or_default());
        }
        if start.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {limit:?}, killed:\n{}",
                std::fs::read_to_string(out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Tries of `RepmgrdBed::rejoin`.
pub const REJOIN_ATTEMPTS: u32 = 3;

/// Every binary the bed runs beyond PgCluster's; panics naming what is missing.
fn preflight(opts: &BedOptions) {
    super::require_root("RepmgrdBed (namespaces, repmgrd as postgres)");
    let mut need = vec![REPMGRD, SETPRIV, "/usr/bin/getent"];
    if opts.ssh {
        need.extend([SSHD, SSH_KEYGEN, "/usr/bin/ssh"]);
    }
    let missing: Vec<&str> = need
        .into_iter()
        .filter(|p| !Path::new(p).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "RepmgrdBed: missing {} (install postgresql-15-repmgr, openssh-server, openssh-client, util-linux: scripts/install-deps)",
        missing.join(", ")
    );
}
