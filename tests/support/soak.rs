//! The soak core (issue 7, "Long runs"), shared by `examples/soak.rs` (`scripts/soak`)
//! and `tests/e2e_soak_short.rs`. On the repmgrd bed (two nodes, repmgrd with automatic
//! failover, sshd for switchover, repmgr's events kicking the arbiters), with both
//! arbiters in EC2 mode against the emulator and ONE sampler running the whole time:
//! N switchovers in a row (each to the current standby, so the target alternates),
//! then M hard failovers (the standby's repmgrd is restarted and monitors its upstream,
//! the primary's PostgreSQL is stopped `-m immediate`, repmgrd promotes the standby,
//! the old primary is `node rejoin`ed and streams, its repmgrd restarted). Each round waits, bounded, until the VIP is on exactly the new primary
//! at EC2 and in its kernel (and gone from the other kernel), then until the arbiters'
//! health says holding / standby.
//!
//! A round that does not converge in time is recorded as an error and the run goes on
//! from wherever the primary is. A cluster operation that fails (the switchover, the
//! crash, repmgrd's promotion, the rejoin: the bed's helpers panic) is recorded and ENDS
//! the run, since the cluster's state is then unknown. So does the time budget
//! (`SoakPlan::budget`). The record is returned either way; `soak_report` turns it into
//! intervals, a summary and the targets.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use super::repmgrd_bed::{ArbiterConf, BedOptions, Ec2, KICK_ARBITER, RepmgrdBed, VIP};
use super::sampler::{Role, Sample};
use super::testbed::{Arbiter, kernel_has, proc_status, wait_until};

/// From the end of the cluster operation: the VIP on exactly the new primary at EC2 and
/// in its kernel, gone from the other kernel.
pub const CONVERGE: Duration = Duration::from_secs(30);
/// Then: the new primary's arbiter says holding, the other's standby.
pub const SETTLE: Duration = Duration::from_secs(30);
/// A crashed primary to a promoted standby (repmgrd: 3 × 2 s of reconnects, then promote).
pub const FAILOVER_LIMIT: Duration = Duration::from_secs(60);
/// Time budget per round (the worst cases of the bounded steps inside, with room).
const SWITCHOVER_BUDGET: Duration = Duration::from_secs(300);
const FAILOVER_BUDGET: Duration = Duration::from_secs(420);

#[derive(Clone, Copy, Debug)]
pub struct SoakPlan {
    pub switchovers: usize,
    pub failovers: usize,
}

impl SoakPlan {
    /// Bound on the rounds: no round starts after it; the sampler stops by itself a
    /// minute later.
    pub fn budget(&self) -> Duration {
        SWITCHOVER_BUDGET * self.switchovers as u32 + FAILOVER_BUDGET * self.failovers as u32
    }

    pub fn rounds(&self) -> usize {
        self.switchovers + self.failovers
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Switchover,
    Failover,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Switchover => "switchover",
            Kind::Failover => "failover",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Round {
    /// 1-based, over the whole run.
    pub n: usize,
    pub kind: Kind,
    /// Primary before and (intended) after.
    pub from: u32,
    pub to: u32,
    /// Sampler time (`Sample::t`) at the round's start and end.
    pub start: Duration,
    pub end: Duration,
    /// The VIP was seen on exactly `to` within `CONVERGE` and the health settled.
    pub converged: bool,
    pub errors: Vec<String>,
}

/// VmRSS and VmHWM (kB) from /proc/<pid>/status; None if unreadable.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    pub rss_kib: Option<u64>,
    pub hwm_kib: Option<u64>,
}

impl Mem {
    pub fn of(pid: u32) -> Mem {
        let field = proc_status(pid);
        Mem {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }
}

/// What was seen of one node's arbiter process over the run.
#[derive(Clone, Debug, Default)]
pub struct ArbiterFacts {
    pub node: u32,
    pub pid_first: u32,
    pub pid_last: u32,
    pub before: Mem,
    pub after: Mem,
    /// After each round: (round, memory).
    pub series: Vec<(usize, Mem)>,
    /// Exits seen (then respawned): "round N: <status>".
    pub exits: Vec<String>,
    pub pid_changes: usize,
    /// Times the health's pass_count went down (an in-process restart).
    pub pass_count_drops: usize,
    last_passes: u64,
    /// The whole log at the end.
    pub log: String,
}

impl ArbiterFacts {
    pub fn new(node: u32, a: &Arbiter) -> ArbiterFacts {
        let pid = a.pid().expect("arbiter running");
        ArbiterFacts {
            node,
            pid_first: pid,
            pid_last: pid,
            before: Mem::of(pid),
            last_passes: passes(a),
            ..ArbiterFacts::default()
        }
    }

    /// After a round: exits (respawned, so the run goes on), pid, pass_count, memory.
    pub fn check(&mut self, a: &mut Arbiter, round: usize) -> Vec<String> {
        let mut errors = Vec::new();
        if let Some(st) = a.exited() {
            self.exits.push(format!("round {round}: {st}"));
            errors.push(format!("arbiter a{} exited ({st}); respawned", self.node));
            if let Err(e) = caught(|| a.spawn()) {
                errors.push(format!("arbiter a{} respawn failed: {e}", self.node));
            }
        }
        if let Some(pid) = a.pid()
            && pid != self.pid_last
        {
            self.pid_changes += 1;
            self.pid_last = pid;
            self.last_passes = 0;
        }
        let p = passes(a);
        if p < self.last_passes {
            self.pass_count_drops += 1;
            errors.push(format!(
                "arbiter a{} pass_count went down {} -> {p}",
                self.node, self.last_passes
            ));
        }
        self.last_passes = self.last_passes.max(p);
        self.series.push((round, Mem::of(self.pid_last)));
        errors
    }
}

fn passes(a: &Arbiter) -> u64 {
    a.health()
        .and_then(|h| h["pass_count"].as_u64())
        .unwrap_or(0)
}

/// Everything a soak run saw; `soak_report::report` makes the summary.
pub struct SoakRecord {
    pub plan: SoakPlan,
    pub rounds: Vec<Round>,
    pub samples: Vec<Sample>,
    pub arbiters: Vec<ArbiterFacts>,
    /// ENI of node 1 and node 2.
    pub enis: [String; 2],
    /// Why the run ended before its last round, if it did.
    pub stopped_early: Option<String>,
    pub bed_up: Duration,
    pub elapsed: Duration,
    /// /proc/loadavg at the start and the end.
    pub load: [String; 2],
}

pub fn run(plan: SoakPlan) -> SoakRecord {
    let t_all = Instant::now();
    let load0 = loadavg();
    let mut bed = RepmgrdBed::start(BedOptions {
        ssh: true,
        event_notification_command: Some(KICK_ARBITER.into()),
        ..BedOptions::default()
    });
    let bed_up = bed.times.total;
    let ec2 = bed.start_ec2();
    let conf = ArbiterConf {
        ec2: Some(&ec2),
        aws_extra: "verify_interval = \"5s\"",
        ..ArbiterConf::default()
    };
    let mut arbiters = [bed.start_arbiter(1, &conf), bed.start_arbiter(2, &conf)];
    wait_until(
        Duration::from_secs(30),
        "VIP on n1 only, a1 holding, a2 standby",
        || on(&bed, &ec2, 1) && settled(&arbiters, 1),
    );
    let mut facts = [1, 2].map(|id| ArbiterFacts::new(id, &arbiters[id as usize - 1]));

    let sampler = bed.sampler(Some(&ec2), plan.budget() + Duration::from_secs(60));
    let t0 = sampler.started();
    let deadline = t0 + plan.budget();
    let kinds = std::iter::repeat_n(Kind::Switchover, plan.switchovers)
        .chain(std::iter::repeat_n(Kind::Failover, plan.failovers));
    let mut rounds = Vec::new();
    let mut stopped_early = None;
    for (i, kind) in kinds.enumerate() {
        let n = i + 1;
        if Instant::now() > deadline {
            stopped_early = Some(format!(
                "time budget {:?} spent before round {n}",
                plan.budget()
            ));
            break;
        }
        let Some(from) = single_primary(&bed) else {
            stopped_early = Some(format!(
                "no single primary before round {n}: {:?}",
                bed.roles()
            ));
            break;
        };
        let mut r = Round {
            n,
            kind,
            from,
            to: 3 - from,
            start: t0.elapsed(),
            end: Duration::ZERO,
            converged: false,
            errors: Vec::new(),
        };
        let fatal = match kind {
            Kind::Switchover => switchover(&bed, &ec2, &arbiters, &mut r),
            Kind::Failover => failover(&mut bed, &ec2, &arbiters, &mut r),
        };
        for (a, f) in arbiters.iter_mut().zip(facts.iter_mut()) {
            r.errors.extend(f.check(a, n));
        }
        r.end = t0.elapsed();
        eprintln!(
            "soak: round {n}/{} {} n{} -> n{}: {:.1} s, {}",
            plan.rounds(),
            kind.name(),
            r.from,
            r.to,
            (r.end - r.start).as_secs_f64(),
            if r.errors.is_empty() {
                "ok".to_owned()
            } else {
                r.errors.join("; ")
            }
        );
        rounds.push(r);
        if let Some(e) = fatal {
            stopped_early = Some(format!("round {n}: {e}"));
            break;
        }
    }
    // A few samples of the final state.
    std::thread::sleep(Duration::from_secs(1));
    let samples = sampler.stop();
    for (a, f) in arbiters.iter().zip(facts.iter_mut()) {
        f.after = Mem::of(f.pid_last);
        f.log = a.log_text();
    }
    SoakRecord {
        plan,
        rounds,
        samples,
        arbiters: facts.into(),
        enis: [ec2.eni(1).to_owned(), ec2.eni(2).to_owned()],
        stopped_early,
        bed_up,
        elapsed: t_all.elapsed(),
        load: [load0, loadavg()],
    }
}

/// `repmgr standby switchover` to the standby; None, or the error that ends the run.
fn switchover(bed: &RepmgrdBed, ec2: &Ec2, a: &[Arbiter; 2], r: &mut Round) -> Option<String> {
    if let Err(e) = caught(|| bed.switchover_to(r.to)) {
        return Some(format!("switchover to n{} failed: {e}", r.to));
    }
    converge(bed, ec2, a, r);
    None
}

/// Crash the primary, repmgrd promotes the standby, rejoin the old one; None, or the
/// error that ends the run.
fn failover(bed: &mut RepmgrdBed, ec2: &Ec2, a: &[Arbiter; 2], r: &mut Round) -> Option<String> {
    let (from, to) = (r.from, r.to);
    // repmgrd on a node a switchover demoted seconds ago can still be in primary
    // monitoring, and then never promotes (seen): a fresh one, monitoring its upstream.
    if let Err(e) = caught(|| bed.start_repmgrd(to)) {
        return Some(format!("repmgrd on n{to} did not start: {e}"));
    }
    if let Err(e) = caught(|| bed.node(from).stop_immediate()) {
        return Some(format!("crash of n{from} failed: {e}"));
    }
    if !poll(FAILOVER_LIMIT, || bed.role(to) == Role::Primary) {
        return Some(format!(
            "repmgrd did not promote n{to} within {FAILOVER_LIMIT:?}\n{}",
            bed.logs()
        ));
    }
    converge(bed, ec2, a, r);
    // The old node's repmgrd lost its server; a fresh one monitors it as a standby.
    bed.kill_repmgrd(from);
    if let Err(e) = caught(|| bed.rejoin(from)) {
        return Some(format!("rejoin of n{from} failed: {e}"));
    }
    if let Err(e) = caught(|| bed.start_repmgrd(from)) {
        return Some(format!("repmgrd on n{from} did not start: {e}"));
    }
    settle(a, r);
    None
}

/// Bounded waits for the VIP on exactly `r.to`, then (switchover) for the health to
/// settle; a miss is a round error, not the end of the run.
fn converge(bed: &RepmgrdBed, ec2: &Ec2, a: &[Arbiter; 2], r: &mut Round) {
    r.converged = poll(CONVERGE, || on(bed, ec2, r.to));
    if !r.converged {
        r.errors.push(format!(
            "VIP not on exactly n{} within {CONVERGE:?}: EC2 {:?} (n1 {}, n2 {}), kernels n1 {} n2 {}",
            r.to,
            ec2.emu.handle().try_holders(VIP),
            ec2.eni(1),
            ec2.eni(2),
            kernel_has(bed.ns(1), VIP),
            kernel_has(bed.ns(2), VIP)
        ));
    }
    if r.kind == Kind::Switchover {
        settle(a, r);
    }
}

fn settle(a: &[Arbiter; 2], r: &mut Round) {
    if !poll(SETTLE, || settled(a, r.to)) {
        r.converged = false;
        r.errors.push(format!(
            "health not holding on n{} / standby on n{} within {SETTLE:?}: a1 {}, a2 {}",
            r.to,
            r.from,
            a[0].verdict(),
            a[1].verdict()
        ));
    }
}

/// The VIP on exactly node `id` at EC2 and in its kernel, not in the other's.
fn on(bed: &RepmgrdBed, ec2: &Ec2, id: u32) -> bool {
    ec2.emu.handle().try_holders(VIP) == Some(vec![ec2.eni(id).to_owned()])
        && kernel_has(bed.ns(id), VIP)
        && !kernel_has(bed.ns(3 - id), VIP)
}

fn settled(a: &[Arbiter; 2], primary: u32) -> bool {
    let (p, s) = (primary as usize - 1, 2 - primary as usize);
    a[p].verdict() == "holding" && a[s].verdict() == "standby"
}

fn single_primary(bed: &RepmgrdBed) -> Option<u32> {
    match bed.roles().as_slice() {
        [Role::Primary, Role::Standby] => Some(1),
        [Role::Standby, Role::Primary] => Some(2),
        _ => None,
    }
}

/// Poll `cond` every 50 ms for at most `limit`; whether it came true.
pub fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `f`; a panic (the bed's helpers panic on failure) becomes its message, capped:
/// its first 3,000 and last 5,000 characters (the logs that explain it come last).
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".into());
        let chars: Vec<char> = msg.chars().collect();
        if chars.len() <= 8000 {
            return msg;
        }
        format!(
            "{}\n[… {} characters left out …]\n{}",
            chars[..3000].iter().collect::<String>(),
            chars.len() - 8000,
            chars[chars.len() - 5000..].iter().collect::<String>()
        )
    })
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Now, UTC, as `date -u` prints it (the reports' start and end).
pub fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
