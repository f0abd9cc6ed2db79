//! A real PostgreSQL 15 primary + streaming standby managed by real repmgr 5.3, for
//! integration tests (networked: a primary, any number of standbys and optionally a
//! repmgr witness). Needs root (everything PostgreSQL runs as the `postgres` OS user
//! via `runuser`); without root, or with a binary missing, it panics with a message
//! naming what is missing: tests fail, they never skip.
//!
//! Nodes listen on unix sockets only (`listen_addresses = ''`), which reach across
//! network namespaces, so a daemon under test inside a namespace can still connect.
//! `PgCluster::start_networked` instead runs each node inside its own network namespace,
//! listening on TCP port 5432 there (and on its unix socket), with TCP conninfos: the
//! layout of tests/support/repmgrd_bed.rs.
//!
//! Everything lives under `/tmp/va-pg-<pid>-<n>` (a fixed short root, because unix
//! socket paths are limited to 107 bytes). `Drop` stops every server and removes the
//! directory; a reaper process in its own process group does the same if the test
//! process dies without unwinding (SIGKILL from a test timeout).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::reaper::Reaper;

pub const PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";
const REPMGR_SO: &str = "/usr/lib/postgresql/15/lib/repmgr.so";
const RUNUSER: &str = "/usr/sbin/runuser";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Gives the extra repmgr.conf lines for a node.
pub type RepmgrConfExtra = Box<dyn Fn(&PgNode) -> String>;

/// Hooks for tests that need more than the default cluster.
#[derive(Default)]
pub struct ClusterOptions {
    /// Extra lines appended to each node's repmgr.conf before any repmgr command runs
    /// (e.g. `event_notification_command`, repmgrd settings). Called once per node.
    pub repmgr_conf_extra: Option<RepmgrConfExtra>,
    /// Extra lines appended to postgresql.conf on both nodes.
    pub postgresql_conf_extra: String,
}

/// Where the nodes of a networked cluster live: data node i (1-based) runs inside
/// `nodes[i-1].ns`, listens on port 5432 there and its conninfo is `host=<addr>`.
/// Node 1 is the primary, every other data node a `standby clone`d, registered
/// standby of it (at least two data nodes). The witness, if any, is node
/// `nodes.len() + 1`: its own PostgreSQL (initdb'd on its own, never a clone) with
/// repmgr in it, `witness register`ed against node 1.
pub struct ClusterNetwork {
    pub nodes: Vec<NodeNet>,
    pub witness: Option<NodeNet>,
    /// pg_hba.conf trusts this network (e.g. `10.77.0.0/20`) for all and replication.
    pub cidr: String,
}

#[derive(Clone, Debug)]
pub struct NodeNet {
    pub ns: String,
    pub addr: String,
}

/// The port every networked node listens on (each in its own namespace).
pub const NETWORKED_PORT: u16 = 5432;

pub struct PgCluster {
    base: PathBuf,
    nodes: Vec<PgNode>,
    /// Stops the servers and removes `base` on drop; its watchdog does the same when
    /// this process exits however it exits.
    _reaper: Reaper,
}

#[derive(Clone)]
pub struct PgNode {
    id: u32,
    name: String,
    port: u16,
    dir: PathBuf,
    /// Networked nodes: the namespace the server (and repmgr) run in, and the address.
    net: Option<NodeNet>,
    /// A repmgr witness (its own PostgreSQL, no replication), not a data node.
    witness: bool,
}

impl PgCluster {
    /// A registered primary (node1) and a streaming, registered standby (node2).
    pub fn start() -> PgCluster {
        PgCluster::start_with(ClusterOptions::default())
    }

    pub fn start_with(options: ClusterOptions) -> PgCluster {
        PgCluster::start_inner(options, None)
    }

    /// Like `start_with`, but node i runs inside `network.nodes[i-1].ns` (which must
    /// exist) on TCP port 5432 at its address; pg_hba trusts `network.cidr`. psql still
    /// goes through the unix socket (it reaches into the namespace); pg_ctl, repmgr and
    /// everything started from them run inside the node's namespace.
    pub fn start_networked(options: ClusterOptions, network: ClusterNetwork) -> PgCluster {
        PgCluster::start_inner(options, Some(network))
    }

    fn start_inner(options: ClusterOptions, network: Option<ClusterNetwork>) -> PgCluster {
        preflight();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = PathBuf::from(format!("/tmp/va-pg-{}-{n}", std::process::id()));
        if base.exists() {
            // Left over from an earlier process with the same pid that was killed.
            std::fs::remove_dir_all(&base)
                .unwrap_or_else(|e| panic!("remove stale {}: {e}", base.display()));
        }
        let nodes = match &network {
            None => {
                let (p1, p2) = two_free_ports();
                vec![
                    PgNode::new(1, p1, &base, None),
                    PgNode::new(2, p2, &base, None),
                ]
            }
            Some(net) => {
                assert!(
                    net.nodes.len() >= 2,
                    "a networked cluster has at least two data nodes"
                );
                let mut nodes: Vec<PgNode> = (1..)
                    .zip(net.nodes.iter())
                    .map(|(id, n)| PgNode::new(id, NETWORKED_PORT, &base, Some(n.clone())))
                    .collect();
                if let Some(w) = &net.witness {
                    let id = nodes.len() as u32 + 1;
                    let mut node = PgNode::new(id, NETWORKED_PORT, &base, Some(w.clone()));
                    node.witness = true;
                    nodes.push(node);
                }
                nodes
            }
        };
        std::fs::create_dir(&base).unwrap_or_else(|e| panic!("mkdir {}: {e}", base.display()));
        // From here on a panic unwinds through `cluster`, whose reaper cleans up.
        let cluster = PgCluster {
            _reaper: reaper(&base, &nodes),
            base,
            nodes,
        };
        chown_postgres(&cluster.base);
        for node in &cluster.nodes {
            for d in [node.dir.clone(), node.socket_dir()] {
                std::fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
                chown_postgres(&d);
            }
            let mut conf = node.base_repmgr_conf();
            if let Some(extra) = &options.repmgr_conf_extra {
                conf.push_str(&extra(node));
                conf.push('\n');
            }
            write_postgres_file(&node.repmgr_conf(), &conf);
        }
        let cidr = network.map(|n| n.cidr);
        cluster.bootstrap(&options.postgresql_conf_extra, cidr.as_deref());
        cluster
    }

    fn bootstrap(&self, pg_extra: &str, cidr: Option<&str>) {
        let n1 = self.node1();
        // The witness's initdb runs beside node1's (it is not a clone of anything).
        let witness_initdb = self.witness().map(|w| {
            initdb(w, &self.base)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn initdb {}: {e}", w.name))
        });
        run_ok(&mut initdb(n1, &self.base), "initdb node1");
        // Per-node settings (port, socket dir, listen address) live next to the data dir
        // in ../pg_node.conf: the include survives `standby clone` and pg_rewind, which
        // copy postgresql.conf from the other node.
        for node in self.nodes() {
            write_postgres_file(&node.dir.join("pg_node.conf"), &node.node_pg_conf());
        }
        let conf = format!(
            "\n# vip-arbiter test harness\n\
             listen_addresses = ''\n\
             wal_level = replica\n\
             max_wal_senders = 10\n\
             max_replication_slots = 10\n\
             hot_standby = on\n\
             wal_log_hints = on\n\
             shared_preload_libraries = 'repmgr'\n\
             shared_buffers = 16MB\n\
             fsync = off\n\
             max_connections = 20\n\
             superuser_reserved_connections = 3\n\
             {pg_extra}\n\
             include_if_exists = '../pg_node.conf'\n"
        );
        // initdb's default pg_hba.conf trusts local connections; state it anyway.
        let mut hba = String::from("local all all trust\nlocal replication all trust\n");
        if let Some(cidr) = cidr {
            let _ = write!(
                hba,
                "host all all {cidr} trust\nhost replication all {cidr} trust\n"
            );
        }
        let configure = |node: &PgNode| {
            append_file(&node.data_dir().join("postgresql.conf"), &conf);
            write_postgres_file(&node.data_dir().join("pg_hba.conf"), &hba);
        };
        let repmgr_db = |node: &PgNode| {
            node.psql_db("postgres", "CREATE USER repmgr SUPERUSER");
            node.psql_db("postgres", "CREATE DATABASE repmgr OWNER repmgr");
        };
        configure(n1);
        n1.start();
        repmgr_db(n1);
        repmgr_ok(n1, &["primary", "register"]);

        let host1 = n1.host();
        let port1 = n1.port.to_string();
        let upstream = ["-h", &host1, "-p", &port1, "-U", "repmgr", "-d", "repmgr"];
        for standby in self.standbys() {
            let mut args = upstream.to_vec();
            // Without --fast-checkpoint pg_basebackup waits for a spread checkpoint: ~90 s.
            args.extend(["standby", "clone", "--fast-checkpoint"]);
            repmgr_ok(standby, &args);
            standby.start();
            repmgr_ok(standby, &["standby", "register"]);
        }
        for standby in self.standbys() {
            self.wait_streaming(standby);
        }
        if let (Some(w), Some(child)) = (self.witness(), witness_initdb) {
            let out = child
                .wait_with_output()
                .unwrap_or_else(|e| panic!("wait for initdb {}: {e}", w.name));
            assert!(
                out.status.success(),
                "initdb {} failed:\n{}",
                w.name,
                output_text(&out)
            );
            configure(w);
            w.start();
            repmgr_db(w);
            let mut args = upstream.to_vec();
            args.extend(["witness", "register"]);
            repmgr_ok(w, &args);
        }
        let show = n1.repmgr(&["cluster", "show"]);
        assert!(
            show.status.success(),
            "repmgr cluster show failed after setup:\n{}",
            output_text(&show)
        );
        assert_eq!(
            n1.psql("SELECT pg_is_in_recovery()"),
            "f",
            "node1 should be primary"
        );
        for standby in self.standbys() {
            assert_eq!(
                standby.psql("SELECT pg_is_in_recovery()"),
                "t",
                "{} should be in recovery",
                standby.name
            );
        }
    }

    /// Wait until node1 shows `standby` streaming in pg_stat_replication.
    fn wait_streaming(&self, standby: &PgNode) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let sql = format!(
            "SELECT state FROM pg_stat_replication WHERE application_name = '{}'",
            standby.name
        );
        loop {
            let state = self.node1().psql(&sql);
            if state == "streaming" {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} not streaming from node1 after 15 s (state {state:?})\n{} log:\n{}",
                    standby.name,
                    standby.name,
                    standby.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The data nodes that started as standbys (node2 and up; not the witness).
    pub fn standbys(&self) -> impl Iterator<Item = &PgNode> {
        self.nodes.iter().skip(1).filter(|n| !n.witness)
    }

    /// The repmgr witness, if the cluster has one.
    pub fn witness(&self) -> Option<&PgNode> {
        self.nodes.iter().find(|n| n.witness)
    }

    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    pub fn nodes(&self) -> &[PgNode] {
        &self.nodes
    }

    /// Node by repmgr node_id (1 or 2; networked: 1 up to the witness's).
    pub fn node(&self, id: u32) -> &PgNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// The node that started as primary.
    pub fn node1(&self) -> &PgNode {
        &self.nodes[0]
    }

    /// The node that started as standby.
    pub fn node2(&self) -> &PgNode {
        &self.nodes[1]
    }

    /// `repmgr -f node2.conf standby promote`, exactly as is (repmgr refuses while
    /// node1 is still reachable as a primary).
    pub fn try_promote_standby(&self) -> Output {
        self.node2().repmgr(&["standby", "promote"])
    }

    /// `repmgr standby promote` on node2; panics if repmgr fails or node2 is still in
    /// recovery afterwards. Does not touch node1.
    pub fn promote_standby(&self) {
        let out = self.try_promote_standby();
        assert!(
            out.status.success(),
            "repmgr standby promote failed:\n{}",
            output_text(&out)
        );
        assert_eq!(
            self.node2().psql("SELECT pg_is_in_recovery()"),
            "f",
            "node2 still in recovery after standby promote"
        );
    }

    /// Failover: node1 crashes (`pg_ctl stop -m immediate`), then node2 is promoted.
    pub fn stop_primary_and_promote_standby(&self) {
        self.node1().stop_immediate();
        self.promote_standby();
    }

    /// After a promotion, start node1 again as it was: no standby.signal, no rewind,
    /// so it comes up as a second, stale primary on the old timeline.
    pub fn start_old_primary_as_is(&self) {
        let n1 = self.node1();
        n1.start();
        assert_eq!(
            n1.psql("SELECT pg_is_in_recovery()"),
            "f",
            "node1 restarted as-is should be a (stale) primary"
        );
    }

    /// The timeline the node is on now.
    pub fn timeline(&self, node: &PgNode) -> u32 {
        node.timeline()
    }
}

impl PgNode {
    fn new(id: u32, port: u16, base: &Path, net: Option<NodeNet>) -> PgNode {
        PgNode {
            id,
            name: format!("node{id}"),
            port,
            dir: base.join(format!("node{id}")),
            net,
            witness: false,
        }
    }

    /// A repmgr witness (its own PostgreSQL, `witness register`ed), not a data node.
    pub fn is_witness(&self) -> bool {
        self.witness
    }

    /// The network namespace this node runs in (networked clusters only).
    pub fn netns(&self) -> Option<&str> {
        self.net.as_ref().map(|n| n.ns.as_str())
    }

    /// The node's TCP address (networked clusters only).
    pub fn addr(&self) -> Option<&str> {
        self.net.as_ref().map(|n| n.addr.as_str())
    }

    /// The directory holding this node's data dir, configs and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What other nodes and repmgr connect to: the address, else the socket directory.
    fn host(&self) -> String {
        self.addr()
            .map_or_else(|| path_str(&self.socket_dir()).to_owned(), str::to_owned)
    }

    /// `program` as the postgres user, inside this node's namespace if it has one.
    pub fn command(&self, program: &str) -> Command {
        match self.netns() {
            None => as_postgres(program, &self.dir),
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args([
                    "netns", "exec", ns, RUNUSER, "-u", "postgres", "--", program,
                ])
                .current_dir(&self.dir);
                remove_pg_env(&mut cmd);
                cmd
            }
        }
    }

    pub fn node_id(&self) -> u32 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn repmgr_conf(&self) -> PathBuf {
        self.dir.join("repmgr.conf")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The conninfo in this node's repmgr.conf (and so in repmgr.nodes).
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=repmgr dbname=repmgr connect_timeout=2",
            self.host(),
            self.port
        )
    }

    /// Append lines to this node's repmgr.conf (takes effect for the next repmgr run).
    pub fn append_repmgr_conf(&self, lines: &str) {
        append_file(&self.repmgr_conf(), &format!("{lines}\n"));
    }

    fn base_repmgr_conf(&self) -> String {
        format!(
            "node_id={}\n\
             node_name='{}'\n\
             conninfo='{}'\n\
             data_directory='{}'\n\
             pg_bindir='{PG_BINDIR}'\n\
             use_replication_slots=yes\n\
             pg_basebackup_options='--no-sync'\n",
            self.id,
            self.name,
            self.conninfo(),
            self.data_dir().display()
        )
    }

    fn node_pg_conf(&self) -> String {
        // Networked: every address in the namespace (the node's own, and the VIP once
        // an arbiter adds it), so clients can also connect through the VIP.
        let listen = if self.net.is_some() { "*" } else { "" };
        format!(
            "port = {}\nunix_socket_directories = '{}'\nlisten_addresses = '{listen}'\n",
            self.port,
            self.socket_dir().display()
        )
    }

    /// psql -XAtq as the postgres superuser against database `repmgr`; trimmed
    /// stdout. Panics with stderr on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_db("repmgr", sql)
    }

    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        self.try_psql_db("repmgr", sql)
    }

    pub fn psql_db(&self, db: &str, sql: &str) -> String {
        self.try_psql_db(db, sql)
            .unwrap_or_else(|e| panic!("psql on {} ({db}) failed: {sql}\n{e}", self.name))
    }

    pub fn try_psql_db(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = as_postgres(&format!("{PG_BINDIR}/psql"), &self.dir)
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", path_str(&self.socket_dir())])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("spawn psql: {e}"));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// `repmgr -f <this node's repmgr.conf> <args>` as the postgres user.
    pub fn repmgr(&self, args: &[&str]) -> Output {
        self.command(&format!("{PG_BINDIR}/repmgr"))
            .arg("-f")
            .arg(self.repmgr_conf())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("spawn repmgr: {e}"))
    }

    /// `pg_ctl start -w`; panics (with the server log's tail) if it does not come up.
    pub fn start(&self) {
        let out = self.pg_ctl(&["-l", path_str(&self.log_file()), "-w", "-t", "30", "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start {} failed:\n{}\nlog:\n{}",
            self.name,
            output_text(&out),
            self.log_tail()
        );
    }

    /// Crash-like stop (`pg_ctl stop -m immediate`); panics on failure.
    pub fn stop_immediate(&self) {
        self.stop("immediate");
    }

    /// Clean stop (`pg_ctl stop -m fast`); panics on failure.
    pub fn stop_fast(&self) {
        self.stop("fast");
    }

    fn stop(&self, mode: &str) {
        let out = self.pg_ctl(&["-m", mode, "-w", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop -m {mode} {} failed:\n{}",
            self.name,
            output_text(&out)
        );
    }

    /// `pg_ctl status`: exit 0 means a postmaster is running on this data dir.
    pub fn is_running(&self) -> bool {
        self.pg_ctl(&["status"]).status.success()
    }

    /// The timeline the node is on: a primary's from its current WAL file name, a
    /// standby's from its control file after a restartpoint.
    pub fn timeline(&self) -> u32 {
        let sql = if self.psql("SELECT pg_is_in_recovery()") == "t" {
            "CHECKPOINT; SELECT timeline_id FROM pg_control_checkpoint()".to_owned()
        } else {
            "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
                .to_owned()
        };
        let v = self.psql(&sql);
        v.parse()
            .unwrap_or_else(|e| panic!("timeline of {}: {v:?}: {e}", self.name))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        self.command(&format!("{PG_BINDIR}/pg_ctl"))
            .args(["-D", path_str(&self.data_dir())])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("spawn pg_ctl: {e}"))
    }
}

/// `initdb` of `node`'s data dir (trust, superuser postgres, no fsync), not yet run.
fn initdb(node: &PgNode, cwd: &Path) -> Command {
    let mut cmd = as_postgres(&format!("{PG_BINDIR}/initdb"), cwd);
    cmd.args([
        "-D",
        path_str(&node.data_dir()),
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
        "--no-instructions",
    ]);
    cmd
}

/// Root, the postgres user, and every binary the harness runs; panics naming what is
/// missing.
pub fn preflight() {
    super::require_root("PgCluster (runs PostgreSQL as the postgres user via runuser)");
    let mut missing = Vec::new();
    for bin in [
        "initdb",
        "pg_ctl",
        "pg_basebackup",
        "psql",
        "postgres",
        "repmgr",
    ] {
        let p = format!("{PG_BINDIR}/{bin}");
        if !Path::new(&p).is_file() {
            missing.push(p);
        }
    }
    for p in [REPMGR_SO, RUNUSER] {
        if !Path::new(p).is_file() {
            missing.push(p.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "PgCluster: missing {} (install postgresql-15 and postgresql-15-repmgr: scripts/install-deps)",
        missing.join(", ")
    );
    postgres_ids();
}

pub fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap_or_else(|e| panic!("run `id {flag} postgres`: {e}"));
        assert!(
            out.status.success(),
            "PgCluster: no `postgres` OS user (install postgresql-15)"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

pub fn chown_postgres(path: &Path) {
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown postgres {}: {e}", path.display()));
}

pub fn write_postgres_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    chown_postgres(path);
}

pub fn append_file(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for append: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// `runuser -u postgres -- <program>`, in a directory postgres can enter, with any
/// PG* variables of the test environment removed.
pub fn as_postgres(program: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new(RUNUSER);
    cmd.args(["-u", "postgres", "--", program]).current_dir(cwd);
    remove_pg_env(&mut cmd);
    cmd
}

/// Remove any PG* variable of the test environment from `cmd`'s environment.
pub fn remove_pg_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
}

pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        output_text(&out)
    );
    out
}

fn repmgr_ok(node: &PgNode, args: &[&str]) -> Output {
    let out = node.repmgr(args);
    assert!(
        out.status.success(),
        "repmgr -f {} {} failed:\n{}",
        node.repmgr_conf().display(),
        args.join(" "),
        output_text(&out)
    );
    out
}

pub fn output_text(out: &Output) -> String {
    let mut s = format!("exit: {}\n", out.status);
    let _ = write!(
        s,
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("harness paths are UTF-8")
}

fn two_free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = |l: &TcpListener| l.local_addr().expect("local_addr").port();
    (port(&a), port(&b))
}

/// The cluster's reaper: on drop, stop every server still running in our data dirs
/// (`pg_ctl -m immediate`) and remove the base dir. Its watchdog, once this process is
/// gone, does the same: SIGQUIT (immediate shutdown) to any postmaster still running
/// there, then `rm -rf` the base dir.
fn reaper(base: &Path, nodes: &[PgNode]) -> Reaper {
    const SCRIPT: &str = r#"
cat >/dev/null
base=$1; shift
for d in "$@"; do
  pid=$(head -n1 "$d/postmaster.pid" 2>/dev/null) || continue
  [ "$(cat /proc/$pid/comm 2>/dev/null)" = postgres ] || continue
  kill -QUIT "$pid" 2>/dev/null
  i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
done
rm -rf "$base"
"#;
    let data_dirs: Vec<PathBuf> = nodes.iter().map(PgNode::data_dir).collect();
    let mut args = vec![base.to_owned()];
    args.extend(data_dirs.iter().cloned());
    let mut reaper = Reaper::watching("pg-harness-reaper", SCRIPT, args);
    let base = base.to_owned();
    reaper.then(move || {
        for data in &data_dirs {
            if data.join("postmaster.pid").exists() {
                let _ = as_postgres(&format!("{PG_BINDIR}/pg_ctl"), &base)
                    .args(["-D", path_str(data), "-m", "immediate", "-w", "stop"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&base);
    });
    reaper
}
