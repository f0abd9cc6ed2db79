//! A background sampler for end-to-end scenarios: every 100 ms it records, relative to
//! its start, which ENIs hold the VIP at EC2 (the emulator's control API), whether each
//! node's kernel has the VIP, and each node's PostgreSQL role (a repmgr witness's is
//! `Role::Witness`, not asked) with a primary's timeline from the same query.
//! Optionally (`Sampler::with_client`) a client in the hub writes through the VIP on
//! its own thread, so a slow or hanging connection never stretches the grid.
//! Assertions are made on the record afterwards (`Samples`), never while sampling. It
//! stops by itself after the maximum duration given at start, so a test that forgets
//! it cannot hang.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::pg_cluster::{PG_BINDIR, PgNode};
use super::testbed::{EmulatorHandle, kernel_has};

pub const PERIOD: Duration = Duration::from_millis(100);

/// A node's PostgreSQL role as psql sees it through the unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Standby,
    /// Not answering (stopped, crashed, starting).
    Down,
    /// A repmgr witness: its own PostgreSQL, never in recovery and never a candidate
    /// (`Role::of` would call it a primary).
    Witness,
}

impl Role {
    pub fn of(node: &PgNode) -> Role {
        match node.try_psql("SELECT pg_is_in_recovery()").as_deref() {
            Ok("f") => Role::Primary,
            Ok("t") => Role::Standby,
            _ => Role::Down,
        }
    }

    /// The role and, for a primary, its timeline (from its current WAL file name), in
    /// one query: what the sampler records.
    pub fn with_timeline(node: &PgNode) -> (Role, Option<u32>) {
        let sql = "SELECT CASE WHEN pg_is_in_recovery() THEN 't' ELSE 'f ' || \
                   ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END";
        match node.try_psql(sql).as_deref() {
            Ok("t") => (Role::Standby, None),
            Ok(v) if v.starts_with("f ") => (Role::Primary, v[2..].trim().parse().ok()),
            _ => (Role::Down, None),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Sample {
    /// Time since the sampler started (taken when the sample began).
    pub t: Duration,
    /// ENIs holding the VIP at EC2, read after the kernels; None without an emulator
    /// or if the query failed.
    pub ec2: Option<Vec<String>>,
    /// When that EC2 answer came back (time since the sampler started): what EC2
    /// showed was true by then, not necessarily at `t` (the kernels and the roles are
    /// read first, hundreds of milliseconds under load).
    pub ec2_t: Duration,
    /// Per sampled node (in the order given at start): the VIP is on its `ens5`.
    pub kernel: Vec<bool>,
    /// Per sampled node: its PostgreSQL role.
    pub role: Vec<Role>,
    /// Per sampled node: its timeline while it is a primary (None otherwise, or when
    /// the answer did not parse).
    pub timeline: Vec<Option<u32>>,
}

impl Sample {
    pub fn ec2_is(&self, enis: &[&str]) -> bool {
        self.ec2
            .as_ref()
            .is_some_and(|h| h.iter().map(String::as_str).eq(enis.iter().copied()))
    }

    pub fn kernels_holding(&self) -> usize {
        self.kernel.iter().filter(|k| **k).count()
    }
}

/// One node to sample: its namespace (for the kernel) and its PostgreSQL.
pub struct SampledNode {
    pub ns: String,
    pub pg: PgNode,
}

impl SampledNode {
    /// Its role and a primary's timeline (`Role::with_timeline`), or `Role::Witness`
    /// for a witness without asking (the sampler's 100 ms are spent on the data nodes).
    fn role(&self) -> (Role, Option<u32>) {
        if self.pg.is_witness() {
            (Role::Witness, None)
        } else {
            Role::with_timeline(&self.pg)
        }
    }
}

/// A client writing through the VIP: psql from the hub namespace (where an
/// application would sit) to `vip`:5432, every `period`, each attempt bounded.
#[derive(Clone, Debug)]
pub struct VipClient {
    pub hub_ns: String,
    pub vip: String,
    /// The table written to (`CREATE TABLE <table> (at timestamptz)` on the primary
    /// before the sampler starts).
    pub table: String,
    pub period: Duration,
}

/// One write attempt through the VIP.
#[derive(Clone, Debug)]
pub struct Write {
    /// Sampler time when the attempt began, and how long it took.
    pub t: Duration,
    pub took: Duration,
    /// The serving server's data directory and timeline, or why it failed.
    pub served: Result<(String, u32), String>,
}

impl VipClient {
    /// One bounded write: an INSERT that also returns the server's data directory and
    /// timeline (a standby refuses it; nothing answering is a connect failure).
    pub fn write_once(&self) -> Result<(String, u32), String> {
        let sql = format!(
            "WITH w AS (INSERT INTO {} (at) VALUES (clock_timestamp()) RETURNING 1) \
             SELECT current_setting('data_directory') || ' ' || \
             ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int FROM w",
            self.table
        );
        let out = Command::new("ip")
            .args(["netns", "exec", &self.hub_ns, "timeout", "3"])
            .arg(format!("{PG_BINDIR}/psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!(
                "host={} port=5432 user=postgres dbname=postgres connect_timeout=1",
                self.vip
            ))
            .args(["-c", &sql])
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .output()
            .map_err(|e| format!("spawn psql: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(err.trim().chars().take(200).collect());
        }
        let (dir, tl) = text
            .rsplit_once(' ')
            .ok_or_else(|| format!("unexpected answer {text:?}"))?;
        let tl = tl.parse().map_err(|e| format!("timeline {tl:?}: {e}"))?;
        Ok((dir.to_owned(), tl))
    }
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sample>>>,
    client: Option<JoinHandle<Vec<Write>>>,
    started: Instant,
    /// The same instant in Unix seconds (to place the emulator's call log).
    started_unix: f64,
}

impl Sampler {
    /// Start sampling `vip` on `nodes` (and at EC2 if `ec2` is given); stops by itself
    /// after `max`.
    pub fn start(
        vip: &str,
        ec2: Option<EmulatorHandle>,
        nodes: Vec<SampledNode>,
        max: Duration,
    ) -> Sampler {
        Sampler::with_client(vip, ec2, nodes, max, None)
    }

    /// `start`, and a `VipClient` writing through the VIP on its own thread for as
    /// long (`stop_with_writes` returns its attempts too).
    pub fn with_client(
        vip: &str,
        ec2: Option<EmulatorHandle>,
        nodes: Vec<SampledNode>,
        max: Duration,
        client: Option<VipClient>,
    ) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let vip = vip.to_owned();
        let started = Instant::now();
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let client = client.map(|c| {
            let flag = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut writes = Vec::new();
                while !flag.load(Ordering::SeqCst) && started.elapsed() < max {
                    let t = started.elapsed();
                    let served = c.write_once();
                    let took = started.elapsed() - t;
                    writes.push(Write { t, took, served });
                    if took < c.period {
                        std::thread::sleep(c.period - took);
                    }
                }
                writes
            })
        });
        let thread = std::thread::spawn(move || {
            let start = started;
            let mut samples = Vec::new();
            let mut next = start;
            while !flag.load(Ordering::SeqCst) && start.elapsed() < max {
                let t = start.elapsed();
                // The kernels first, EC2 last (fields are evaluated in the order
                // written): a sample whose kernel has the VIP while its EC2 holder is
                // another ENI then really saw the address before EC2 showed the move.
                // Read the other way round, a move in between (slow under load) made a
                // correct daemon look as if it added the address early.
                let kernel = nodes.iter().map(|n| kernel_has(&n.ns, &vip)).collect();
                let (role, timeline) = nodes.iter().map(SampledNode::role).unzip();
                let holders = ec2.as_ref().and_then(|e| e.try_holders(&vip));
                samples.push(Sample {
                    t,
                    kernel,
                    role,
                    timeline,
                    ec2: holders,
                    ec2_t: start.elapsed(),
                });
                next += PERIOD;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    // A slow sample: start the next one at once, keep the 100 ms grid.
                    next = now;
                }
            }
            samples
        });
        Sampler {
            stop,
            thread: Some(thread),
            client,
            started,
            started_unix,
        }
    }

    /// `started()` in Unix seconds.
    pub fn started_unix(&self) -> f64 {
        self.started_unix
    }

    /// The instant sample times (`Sample::t`) are measured from.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Stop and return the record (also after the sampler stopped by itself).
    pub fn stop(self) -> Vec<Sample> {
        self.stop_with_writes().0
    }

    /// Stop; the record and the client's write attempts (none without a client).
    pub fn stop_with_writes(mut self) -> (Vec<Sample>, Vec<Write>) {
        self.stop.store(true, Ordering::SeqCst);
        let samples = joined(self.thread.take().expect("sampler thread"));
        let writes = self.client.take().map(joined).unwrap_or_default();
        (samples, writes)
    }
}

fn joined<T>(h: JoinHandle<T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.client.take() {
            let _ = t.join();
        }
    }
}

/// Questions asked of a sampler's record.
pub trait Samples {
    /// Each change of the EC2 holders from one (answered) sample to the next: (time of
    /// the first sample showing the new holders, the new holders).
    fn moves_at_ec2(&self) -> Vec<(Duration, Vec<String>)>;
    /// Time of the first sample satisfying `pred`.
    fn first_time(&self, pred: impl Fn(&Sample) -> bool) -> Option<Duration>;
    /// Time of the first sample at or after `from` satisfying `pred`.
    fn first_time_after(&self, from: Duration, pred: impl Fn(&Sample) -> bool) -> Option<Duration>;
    /// Each run of consecutive samples where two or more kernels had the VIP: from its
    /// first such sample to the first sample after it without (or to its last sample
    /// when the record ends inside the run).
    fn double_kernel_spans(&self) -> Vec<Duration>;
    /// Samples where EC2 showed the VIP on two or more ENIs.
    fn double_ec2_samples(&self) -> Vec<Sample>;
    /// Samples where the EC2 query failed (None while an emulator was given).
    fn ec2_unanswered(&self) -> usize;
    /// A compact table of the record for failure messages (changes only).
    fn timeline(&self) -> String;
}

impl Samples for [Sample] {
    fn moves_at_ec2(&self) -> Vec<(Duration, Vec<String>)> {
        let mut last: Option<&Vec<String>> = None;
        let mut moves = Vec::new();
        for s in self {
            let Some(h) = &s.ec2 else { continue };
            if let Some(prev) = last
                && prev != h
            {
                moves.push((s.t, h.clone()));
            }
            last = Some(h);
        }
        moves
    }

    fn first_time(&self, pred: impl Fn(&Sample) -> bool) -> Option<Duration> {
        self.iter().find(|s| pred(s)).map(|s| s.t)
    }

    fn first_time_after(&self, from: Duration, pred: impl Fn(&Sample) -> bool) -> Option<Duration> {
        self.iter().find(|s| s.t >= from && pred(s)).map(|s| s.t)
    }

    fn double_kernel_spans(&self) -> Vec<Duration> {
        let mut spans = Vec::new();
        let mut open: Option<Duration> = None;
        for s in self {
            match (open, s.kernels_holding() >= 2) {
                (None, true) => open = Some(s.t),
                (Some(from), false) => {
                    spans.push(s.t - from);
                    open = None;
                }
                _ => {}
            }
        }
        if let (Some(from), Some(last)) = (open, self.last()) {
            spans.push(last.t - from);
        }
        spans
    }

    fn double_ec2_samples(&self) -> Vec<Sample> {
        self.iter()
            .filter(|s| s.ec2.as_ref().is_some_and(|h| h.len() >= 2))
            .cloned()
            .collect()
    }

    fn ec2_unanswered(&self) -> usize {
        self.iter().filter(|s| s.ec2.is_none()).count()
    }

    fn timeline(&self) -> String {
        let mut out = String::new();
        let mut last: Option<&Sample> = None;
        for s in self {
            let same =
                last.is_some_and(|l| l.ec2 == s.ec2 && l.kernel == s.kernel && l.role == s.role);
            if !same {
                out.push_str(&format!(
                    "{:>8.1?} ec2={:?} kernel={:?} role={:?}\n",
                    s.t, s.ec2, s.kernel, s.role
                ));
                last = Some(s);
            }
        }
        out
    }
}

/// The largest gap between two samples in a row (how evenly the sampler kept up).
pub fn largest_gap(samples: &[Sample]) -> Duration {
    samples
        .windows(2)
        .map(|w| w[1].t - w[0].t)
        .max()
        .unwrap_or_default()
}
