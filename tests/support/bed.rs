//! The two-node bed: what the daemon-level tests share, built to measure.
//!
//! `Bed::builder()` makes, as asked: node namespaces `n1` (10.77.0.11) and `n2`
//! (10.77.0.12) bridged by a hub (`testbed::Hub`), 0, 1 or 2 of them (`nodes`); a
//! primary and a streaming standby (`pg_cluster::PgCluster` in the root namespace on
//! unix sockets, which cross namespaces; `postgres`); the EC2 emulator in the hub or on
//! loopback with an ENI per node (`ec2`, `ec2_on_loopback`; other ENIs with `enis`);
//! and a temporary directory for configs and logs. A test file adds what is special to
//! it as its own `impl Bed` (its arbiter config, its questions).
//!
//! Drop order: the emulator, then PostgreSQL, then the namespaces (each with its
//! `Reaper`), then the directory. `RepmgrdBed` (repmgrd on real clusters inside the
//! namespaces) is the richer sibling; it shares `NODES`, `VIP` and `Ec2` from here.

use std::path::Path;

use serde_json::Value;

use super::pg_cluster::PgCluster;
use super::testbed::{Emulator, Hub, rt};

/// The VIP every bed moves.
pub const VIP: &str = "10.77.0.100";
/// Node i (1-based) is `NODES[i-1]`: (short name, primary address on `ens5`).
pub const NODES: [(&str, &str); 2] = [("n1", "10.77.0.11"), ("n2", "10.77.0.12")];

fn node_names() -> [&'static str; 2] {
    NODES.map(|(n, _)| n)
}

fn idx(id: u32) -> usize {
    assert!(id == 1 || id == 2, "no node {id} (nodes are 1 and 2)");
    (id - 1) as usize
}

/// The EC2 emulator with the world `Emulator::setup` made: one ENI per node (or the
/// ENIs asked for). Which ENI is node i's: the one named `NODES[i-1].0` (`in_hub`,
/// `on_loopback`) or the i-th of the nodes given (`in_hub_per_node`).
pub struct Ec2 {
    pub emu: Emulator,
    /// `setup`'s answer: `subnet_id`, `enis.<name>.{eni_id,instance_id}`.
    pub ids: Value,
    /// Node i's ENI is `enis[i-1]` (`in_hub`, `on_loopback`: empty when the world has
    /// no `n1`/`n2`).
    pub enis: Vec<String>,
    pub subnet: String,
}

impl Ec2 {
    /// The emulator inside `hub`, set up with `enis` (name, primary address).
    pub fn in_hub(hub: &Hub, dir: &Path, enis: &[(&str, &str)]) -> Ec2 {
        Ec2::set_up(Emulator::start(hub, dir), enis, &node_names())
    }

    /// The emulator inside `hub` with one ENI per node of `nodes` (short name, primary
    /// address): node i's is the ENI of `nodes[i-1]` (any number of nodes, a witness
    /// too).
    pub fn in_hub_per_node(hub: &Hub, dir: &Path, nodes: &[(&str, &str)]) -> Ec2 {
        let names: Vec<&str> = nodes.iter().map(|(n, _)| *n).collect();
        let ec2 = Ec2::set_up(Emulator::start(hub, dir), nodes, &names);
        assert_eq!(ec2.enis.len(), nodes.len(), "an ENI per node: {}", ec2.ids);
        ec2
    }

    /// The emulator on loopback (no namespaces), set up with `enis`.
    pub fn on_loopback(dir: &Path, enis: &[(&str, &str)]) -> Ec2 {
        Ec2::set_up(Emulator::on_loopback(dir), enis, &node_names())
    }

    /// Set up `enis`; node i's ENI is the one named `by_node[i-1]` (as far as they go).
    fn set_up(emu: Emulator, enis: &[(&str, &str)], by_node: &[&str]) -> Ec2 {
        let ids = emu.setup(enis);
        let by_node = by_node
            .iter()
            .map_while(|n| ids["enis"][n]["eni_id"].as_str().map(str::to_owned))
            .collect();
        Ec2 {
            subnet: ids["subnet_id"].as_str().expect("subnet_id").to_owned(),
            enis: by_node,
            ids,
            emu,
        }
    }

    /// Node `id`'s ENI.
    pub fn eni(&self, id: u32) -> &str {
        self.enis
            .get((id as usize).wrapping_sub(1))
            .unwrap_or_else(|| panic!("no ENI for node {id} in {}", self.ids))
    }

    /// Which ENIs hold `VIP` now.
    pub fn holders(&self) -> Vec<String> {
        self.emu.holders(VIP)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ec2Where {
    None,
    Hub,
    Loopback,
}

/// What `Bed::builder()` makes; `build` makes it.
pub struct BedBuilder {
    nodes: u32,
    postgres: bool,
    ec2: Ec2Where,
    enis: Option<Vec<(String, String)>>,
}

impl BedBuilder {
    /// How many node namespaces (0, 1: `n1` only, 2; default 2). With 0 there is no hub.
    pub fn nodes(mut self, n: u32) -> BedBuilder {
        assert!(n <= 2, "a bed has at most two nodes");
        self.nodes = n;
        self
    }

    /// A primary and a standby (`PgCluster::start`: root namespace, unix sockets).
    pub fn postgres(mut self) -> BedBuilder {
        self.postgres = true;
        self
    }

    /// The EC2 emulator inside the hub, with an ENI per node (`NODES`).
    pub fn ec2(mut self) -> BedBuilder {
        self.ec2 = Ec2Where::Hub;
        self
    }

    /// The EC2 emulator on 127.0.0.1 in the root namespace, with an ENI per node.
    pub fn ec2_on_loopback(mut self) -> BedBuilder {
        self.ec2 = Ec2Where::Loopback;
        self
    }

    /// The emulator's ENIs (name, primary address) instead of one per node.
    pub fn enis(mut self, enis: &[(&str, &str)]) -> BedBuilder {
        self.enis = Some(
            enis.iter()
                .map(|(n, a)| ((*n).to_owned(), (*a).to_owned()))
                .collect(),
        );
        self
    }

    pub fn build(self) -> Bed {
        let cluster = self.postgres.then(PgCluster::start);
        let mut hub = (self.nodes > 0 || self.ec2 == Ec2Where::Hub).then(Hub::new);
        let ns = NODES[..self.nodes as usize]
            .iter()
            .map(|(short, addr)| hub.as_mut().expect("hub").node(short, addr))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let enis: Vec<(&str, &str)> = match &self.enis {
            Some(e) => e.iter().map(|(n, a)| (n.as_str(), a.as_str())).collect(),
            None => NODES.to_vec(),
        };
        let ec2 = match self.ec2 {
            Ec2Where::None => None,
            Ec2Where::Hub => Some(Ec2::in_hub(hub.as_ref().expect("hub"), dir.path(), &enis)),
            Ec2Where::Loopback => Some(Ec2::on_loopback(dir.path(), &enis)),
        };
        Bed {
            ec2,
            cluster,
            hub,
            ns,
            dir,
            rt: rt(),
        }
    }
}

/// Namespaces, PostgreSQL and EC2 as `BedBuilder` made them; an accessor for a part
/// not asked for panics saying so.
pub struct Bed {
    ec2: Option<Ec2>,
    cluster: Option<PgCluster>,
    hub: Option<Hub>,
    ns: Vec<String>,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Bed {
    /// Two node namespaces, nothing else, until asked.
    pub fn builder() -> BedBuilder {
        BedBuilder {
            nodes: 2,
            postgres: false,
            ec2: Ec2Where::None,
            enis: None,
        }
    }

    pub fn ec2(&self) -> &Ec2 {
        self.ec2.as_ref().expect("a bed built with .ec2()")
    }

    pub fn emu(&self) -> &Emulator {
        &self.ec2().emu
    }

    /// Node `id`'s ENI at the emulator.
    pub fn eni(&self, id: u32) -> &str {
        self.ec2().eni(id)
    }

    pub fn subnet(&self) -> &str {
        &self.ec2().subnet
    }

    /// Which ENIs hold `VIP` at the emulator now.
    pub fn holders(&self) -> Vec<String> {
        self.ec2().holders()
    }

    pub fn cluster(&self) -> &PgCluster {
        self.cluster.as_ref().expect("a bed built with .postgres()")
    }

    pub fn hub(&self) -> &Hub {
        self.hub.as_ref().expect("a bed with a hub")
    }

    /// The namespace of node `id`.
    pub fn ns(&self, id: u32) -> &str {
        self.ns
            .get(idx(id))
            .unwrap_or_else(|| panic!("the bed has {} node namespace(s)", self.ns.len()))
    }

    /// The bed's directory (configs, logs, the emulator's files; removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A current-thread runtime that lives as long as the bed.
    pub fn rt(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }
}
