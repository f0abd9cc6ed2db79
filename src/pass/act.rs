//! The actuator traits and `execute()`, which carries out a plan's steps in order.
//!
//! Acquire steps (claim, assign, verify, add) stop at the first failure, so the
//! kernel address is never added without a confirmed cloud assignment. Release steps
//! (remove, fence) are best effort: each is tried and every failure is reported.

use std::future::Future;
use std::time::Duration;

use crate::core::claim::Claim;
use crate::core::decide::StepOutcome;
use crate::core::observation::FailureKind;
use crate::core::plan::Step;
use crate::pass::observe::bounded;

/// Whether a step changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    AlreadyDone,
}

/// A failed step, as the loop records it. `kind` is what the adapter made of the
/// failure (a missing permission needs an operator; throttling does not); `code`
/// keeps the service's error code or the errno, for logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// For the logs and the memory (`settle()`'s last error).
    pub message: String,
    pub code: Option<String>,
    pub kind: FailureKind,
    /// The failure as the verdict shows it: the message, with the code when the
    /// message does not say it already (the adapter knows which).
    pub detail: String,
    /// The other side answered no, so nothing was carried out. False when no answer
    /// came (a timeout, a lost connection) or the service failed on its side: the call
    /// may have gone through.
    pub refused: bool,
}

impl StepError {
    /// A transient failure without a code and without an answer (a timeout): the
    /// call may have gone through.
    pub fn plain(message: impl Into<String>) -> Self {
        let message = message.into();
        StepError {
            detail: message.clone(),
            message,
            code: None,
            kind: FailureKind::Transient,
            refused: false,
        }
    }
}

pub trait KernelActuator {
    fn add(&self, prefix_len: u8) -> impl Future<Output = Result<Applied, StepError>> + Send;
    fn remove(&self) -> impl Future<Output = Result<Applied, StepError>> + Send;
}

pub trait CloudActuator {
    fn write_claim(&self, claim: Claim) -> impl Future<Output = Result<(), StepError>> + Send;
    fn assign(&self) -> impl Future<Output = Result<(), StepError>> + Send;
    /// UnassignPrivateIpAddresses from our own ENI.
    fn release(&self) -> impl Future<Output = Result<(), StepError>> + Send;
    /// Describe again; an error unless our ENI now holds the VIP.
    fn verify(&self) -> impl Future<Output = Result<(), StepError>> + Send;
    /// DeleteTags of these marks on the subnet, each only while it has that value.
    fn prune_marks(&self, marks: &[Claim]) -> impl Future<Output = Result<(), StepError>> + Send {
        let _ = marks;
        async { Err(StepError::plain("this actuator does not prune marks")) }
    }
}

pub trait Fencer {
    fn fence(&self, holder: &str) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// The result of one step, for logs, metrics and `settle()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub step: Step,
    pub result: Result<Applied, StepError>,
}

impl Done {
    pub fn outcome(&self) -> StepOutcome {
        match &self.result {
            Ok(_) => StepOutcome::done(self.step.clone()),
            Err(e) => StepOutcome::failed(self.step.clone(), e.message.clone(), !e.refused)
                .of_kind(e.kind),
        }
    }
}

/// Carry out `steps` in order, each bounded by `limit`.
pub async fn execute<K: KernelActuator, C: CloudActuator, F: Fencer>(
    steps: &[Step],
    kernel: &K,
    cloud: &C,
    fencer: &F,
    limit: Duration,
) -> Vec<Done> {
    let mut done = Vec::with_capacity(steps.len());
    for step in steps {
        let result = bounded(limit, run_step(step, kernel, cloud, fencer), |m| {
            Err(StepError::plain(m))
        })
        .await;
        let failed_acquire = result.is_err() && step.is_acquire();
        done.push(Done {
            step: step.clone(),
            result,
        });
        if failed_acquire {
            break;
        }
    }
    done
}

async fn run_step<K: KernelActuator, C: CloudActuator, F: Fencer>(
    step: &Step,
    kernel: &K,
    cloud: &C,
    fencer: &F,
) -> Result<Applied, StepError> {
    let changed = |r: Result<(), StepError>| r.map(|()| Applied::Changed);
    match step {
        Step::AddKernel { prefix_len } => kernel.add(*prefix_len).await,
        Step::RemoveKernel => kernel.remove().await,
        Step::WriteClaim(c) => changed(cloud.write_claim(*c).await),
        Step::AssignCloud => changed(cloud.assign().await),
        Step::ReleaseCloud => changed(cloud.release().await),
        Step::VerifyCloud => cloud.verify().await.map(|()| Applied::AlreadyDone),
        Step::Fence { holder } => changed(fencer.fence(holder).await),
        Step::PruneMarks(marks) => changed(cloud.prune_marks(marks).await),
    }
}
