//! One pass: observe → decide → act → settle. Generic over the observer and
//! actuator traits, so tests can drive it with fakes.

use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::core::decide::{self, Eligibility, Memory, Policy};
use crate::core::observation::{
    CloudView, ClusterAnswer, FailureKind, HolderPg, MarkView, Observation, PeerAnswer, Tick,
};
use crate::core::plan::Step;
use crate::core::plan::{Event, Plan, Verdict};
use crate::pass::act::{self, CloudActuator, Done, Fencer, KernelActuator};
use crate::pass::journal::{Journal, Kept};
use crate::pass::observe::{self, CloudSource, KernelSource, PgSource};

/// The things a pass talks to.
pub struct World<P, K, C, F> {
    pub pg: P,
    pub kernel: K,
    pub cloud: C,
    pub fencer: F,
}

/// Per-call bounds of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub observe: Duration,
    pub cloud: Duration,
    pub step: Duration,
}

/// Everything one pass saw and did.
#[derive(Debug, Clone)]
pub struct PassReport {
    pub observation: Observation,
    pub repmgr_primary: Option<i32>,
    pub plan: Plan,
    pub done: Vec<Done>,
    /// The plan's verdict, or `ActionFailed` when a step failed.
    pub verdict: Verdict,
    pub cloud_checked: bool,
    /// A standby's replication as PostgreSQL reported it (health::roles' `/replica`).
    pub replication: Option<observe::Replication>,
}

impl PassReport {
    /// Converged: nothing was left to do and the verdict is OK.
    pub fn converged(&self) -> bool {
        self.plan.steps.is_empty() && self.verdict.severity() == crate::core::plan::Severity::Ok
    }
}

/// The step a verdict names when the journal cannot be written.
pub const WRITE_STATE_FILE: &str = "write_state_file";

/// One pass. The journal keeps the memory across restarts: the write-ahead intent
/// before a claim or an assign (a takeover that cannot be remembered is not made),
/// and the settled memory after; while it cannot be written the verdict is CRITICAL.
pub async fn pass<P, K, C, F, J>(
    world: &mut World<P, K, C, F>,
    mem: &Memory,
    policy: &Policy,
    limits: Limits,
    (now, jitter): (Tick, u32),
    journal: &mut Kept<J>,
) -> (PassReport, Memory)
where
    P: PgSource,
    K: KernelSource + KernelActuator,
    C: CloudSource + CloudActuator,
    F: Fencer,
    J: Journal,
{
    let (pg, kernel) = observe::gather_local(&mut world.pg, &world.kernel, limits.observe).await;
    let elig = decide::eligibility(&pg.view);
    let due = decide::cloud_due(&elig, &kernel, mem, now, policy);
    let marks_due = due && decide::marks_due(&elig, mem, now, policy);
    let (cloud, marks) = match (&policy.cloud, due) {
        (None, _) => (CloudView::Disabled, MarkView::NotRead),
        (Some(_), false) => (CloudView::NotChecked, MarkView::NotRead),
        (Some(_), true) => {
            let holder = observe::bounded(limits.cloud, world.cloud.observe(), |reason| {
                CloudView::Unknown {
                    kind: FailureKind::Transient,
                    code: None,
                    reason,
                }
            });
            let marks = async {
                if marks_due {
                    observe::bounded(limits.cloud, world.cloud.marks(), |reason| {
                        MarkView::Unknown {
                            kind: FailureKind::Transient,
                            code: None,
                            reason,
                        }
                    })
                    .await
                } else {
                    MarkView::NotRead
                }
            };
            tokio::join!(holder, marks)
        }
    };
    let cluster_tag = matches!(marks, MarkView::Read { .. })
        .then(|| world.cloud.cluster_tagged())
        .flatten();
    let mut observation = Observation {
        now,
        pg: pg.view,
        kernel,
        cloud,
        marks,
        system_id: pg.system_id,
        holder_pg: HolderPg::NotAsked,
        known_nodes: pg.known_nodes,
        cluster_tag,
    };
    let (plan, mem) = decide_asking_holder(
        &mut observation,
        mem,
        policy,
        jitter,
        (&mut world.pg, &world.cloud),
        limits.observe,
    )
    .await;
    for event in &plan.events {
        log_event(event);
    }
    let timeline = match &elig {
        Eligibility::Eligible { timeline } => Some(*timeline),
        _ => None,
    };
    let mut steps = plan.steps.clone();
    let mut journal_error = None;
    let takeover = |s: &Step| matches!(s, Step::WriteClaim(_) | Step::AssignCloud);
    if steps.iter().any(takeover) {
        let intent = decide::intend(&mem, &steps, now, timeline);
        if let Err(e) = journal.keep(&intent, now) {
            error!(error = %e, "cannot journal the takeover before making it: {e}; not making it");
            let assigning = steps.contains(&Step::AssignCloud);
            steps.retain(|s| {
                !(takeover(s)
                    || *s == Step::VerifyCloud
                    || (assigning && matches!(s, Step::AddKernel { .. })))
            });
            journal_error = Some(e);
        }
    }
    let done = act::execute(
        &steps,
        &world.kernel,
        &world.cloud,
        &world.fencer,
        limits.step,
    )
    .await;
    for d in &done {
        match &d.result {
            Ok(applied) => {
                info!(step = d.step.kind(), result = ?applied, "step done: {} ({applied:?})", d.step.kind())
            }
            Err(e) => {
                warn!(step = d.step.kind(), error = %e.message, code = e.code.as_deref().unwrap_or(""), "step failed: {}: {}", d.step.kind(), e.message)
            }
        }
    }
    let outcomes: Vec<_> = done.iter().map(Done::outcome).collect();
    let mem = decide::settle(&mem, &outcomes, now, policy, jitter, timeline);
    if let Err(e) = journal.keep(&mem, now) {
        error!(error = %e, "cannot write the state file: {e} (retried every pass)");
        journal_error.get_or_insert(e);
    }
    // A failed prune of old marks is housekeeping: logged, tried again later, never
    // the verdict.
    let verdict = match done
        .iter()
        .filter(|d| !matches!(d.step, Step::PruneMarks(_)))
        .find_map(|d| d.result.as_ref().err().map(|e| (d.step.kind(), e)))
    {
        Some((step, e)) => Verdict::ActionFailed {
            step,
            error: e.detail.clone(),
            needs_operator: e.kind.needs_operator(),
            floor: plan.verdict.severity(),
        },
        None => match journal_error {
            Some(e) => Verdict::ActionFailed {
                step: WRITE_STATE_FILE,
                error: format!("{e}: fix the state file's directory (aws.state_file)"),
                needs_operator: true,
                floor: plan.verdict.severity(),
            },
            None => plan.verdict.clone(),
        },
    };
    debug!(verdict = %verdict, steps = plan.steps.len(), cloud_checked = due, "pass done");
    (
        PassReport {
            observation,
            repmgr_primary: pg.repmgr_primary,
            plan,
            done,
            verdict,
            cloud_checked: due && policy.cloud.is_some(),
            replication: pg.replication,
        },
        mem,
    )
}

/// Decide; when the plan waits out the bound on a holder whose PostgreSQL could show
/// it to be a standby (`decide::holder_to_ask`), ask that server (at its ENI's primary
/// address) and every other data node, under `limit`, and decide again.
pub async fn decide_asking_holder<P: PgSource, C: CloudSource>(
    observation: &mut Observation,
    mem: &Memory,
    policy: &Policy,
    jitter: u32,
    (pg, cloud): (&mut P, &C),
    limit: Duration,
) -> (Plan, Memory) {
    let first = decide::decide(observation, mem, policy, jitter);
    let Some(eni) = decide::holder_to_ask(observation, &first.0).map(str::to_owned) else {
        return first;
    };
    let answers = match cloud.address_of(&eni) {
        Some(address) => {
            observe::bounded(limit, pg.ask_cluster(address), |why| ClusterAnswer {
                holder: PeerAnswer::Unreachable(why),
                others: vec![],
            })
            .await
        }
        None => ClusterAnswer {
            holder: PeerAnswer::Unreachable(format!("no primary address known for {eni}")),
            others: vec![],
        },
    };
    debug!(holder = %eni, answers = ?answers, "asked the holder's PostgreSQL and the other nodes");
    observation.holder_pg = HolderPg::Asked { eni, answers };
    let again = decide::decide(observation, mem, policy, jitter);
    if again.0.steps != first.0.steps {
        info!(
            "the VIP's holder is a standby of this cluster and no other node is a primary: taking the VIP without waiting the bound"
        );
    }
    again
}

fn log_event(event: &Event) {
    match event {
        Event::PgUnknownHoldStarted { hold_ms } => {
            warn!(
                hold_ms,
                "PostgreSQL unknown: keeping whatever the kernel has until the hold runs out"
            )
        }
        Event::PgUnknownHoldEnded { released: true } => {
            warn!(
                "PostgreSQL still unknown (or the VIP moved elsewhere): releasing the kernel address"
            )
        }
        Event::PgUnknownHoldEnded { released: false } => {
            info!("PostgreSQL known again: hold ended")
        }
        Event::StaleIncidentStarted { holder } => {
            tracing::error!(holder = %holder, "stale primary: {holder} holds the VIP with an equal or higher timeline")
        }
        Event::StaleIncidentEnded => info!("stale-primary incident over"),
        Event::FenceLifted { by } => {
            info!(claim = %by, "fence lifted: this node's timeline passed the claim that fenced it ({by})")
        }
    }
}
