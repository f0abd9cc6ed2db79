//! In-memory fakes of every observer and actuator, for loop-level tests of fault
//! cases real parts cannot produce on demand. The world is shared state that tests
//! change between passes and inspect afterwards.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use vip_arbiter::core::claim::Claim;
use vip_arbiter::core::observation::{
    ClaimTag, CloudView, ClusterAnswer, KernelView, MarkView, PeerAnswer, PgRole, PgView,
    RepmgrSays,
};
use vip_arbiter::pass::act::{Applied, CloudActuator, Fencer, KernelActuator, StepError};
use vip_arbiter::pass::observe::{CloudSource, KernelSource, PgReport, PgSource};

pub const ME: &str = "eni-0me";
pub const OTHER: &str = "eni-0other";

/// Everything the fakes share: one node's PostgreSQL and kernel, and EC2.
#[derive(Debug, Default)]
pub struct WorldState {
    pub pg: Option<PgView>,
    pub kernel: Option<u8>,
    pub kernel_error: Option<String>,
    /// Which ENI holds the VIP at EC2.
    pub holder: Option<String>,
    pub tags: HashMap<String, Claim>,
    /// The subnet's high-water marks, by node id.
    pub marks: HashMap<i32, Claim>,
    /// While > 0, every EC2 call fails with this code and decrements the count.
    pub ec2_failures: u32,
    pub ec2_failure_code: String,
    pub ec2_calls: Vec<&'static str>,
    pub fences: Vec<String>,
    /// When set, the PostgreSQL observation never answers (a wedged server).
    pub pg_hangs: bool,
    pub kernel_ops: Vec<&'static str>,
    /// What the other nodes' PostgreSQL answers (`PgSource::ask_cluster`); None: as a
    /// source that cannot reach other nodes. `system_id` is what our own reports.
    pub cluster: Option<ClusterAnswer>,
    pub system_id: Option<u64>,
    /// The node ids our repmgr.nodes lists (`PgReport::known_nodes`).
    pub known_nodes: Option<Vec<i32>>,
    /// The addresses `ask_cluster` was asked for.
    pub cluster_asks: Vec<Ipv4Addr>,
}

pub type Shared = Arc<Mutex<WorldState>>;

pub fn shared() -> Shared {
    Arc::new(Mutex::new(WorldState {
        pg: Some(primary(1)),
        ec2_failure_code: "RequestLimitExceeded".into(),
        ..WorldState::default()
    }))
}

pub fn primary(timeline: u32) -> PgView {
    PgView::Known {
        role: PgRole::Primary { timeline },
        repmgr: RepmgrSays::SelfPrimary,
    }
}

pub fn standby() -> PgView {
    PgView::Known {
        role: PgRole::Standby,
        repmgr: RepmgrSays::SelfNotPrimary,
    }
}

#[derive(Clone)]
pub struct Fake(pub Shared);

impl Fake {
    fn with<T>(&self, f: impl FnOnce(&mut WorldState) -> T) -> T {
        f(&mut self.0.lock().expect("fake world lock"))
    }

    fn ec2_call(&self, action: &'static str) -> Result<(), StepError> {
        self.with(|w| {
            w.ec2_calls.push(action);
            if w.ec2_failures > 0 {
                w.ec2_failures -= 1;
                let message = format!("{action}: injected");
                return Err(StepError {
                    detail: format!("{message} ({})", w.ec2_failure_code),
                    message,
                    code: Some(w.ec2_failure_code.clone()),
                    // As the EC2 adapter classifies the code.
                    kind: vip_arbiter::adapters::ec2::errors::kind_of(Some(&w.ec2_failure_code)),
                    refused: true,
                });
            }
            Ok(())
        })
    }
}

impl PgSource for Fake {
    async fn ask_cluster(&mut self, holder: Ipv4Addr) -> ClusterAnswer {
        self.with(|w| {
            w.cluster_asks.push(holder);
            w.cluster.clone().unwrap_or_else(|| ClusterAnswer {
                holder: PeerAnswer::Unreachable("the fake reaches no other node".into()),
                others: vec![],
            })
        })
    }

    async fn observe(&mut self) -> PgReport {
        if self.with(|w| w.pg_hangs) {
            std::future::pending::<()>().await;
        }
        let view = self
            .with(|w| w.pg.clone())
            .unwrap_or_else(|| PgView::Unknown("connection refused".into()));
        PgReport {
            view,
            repmgr_primary: None,
            system_id: self.with(|w| w.system_id),
            known_nodes: self.with(|w| w.known_nodes.clone()),
            replication: None,
        }
    }
}

impl KernelSource for Fake {
    async fn observe(&self) -> KernelView {
        self.with(|w| match (&w.kernel_error, w.kernel) {
            (Some(e), _) => KernelView::Unknown(e.clone()),
            (None, Some(p)) => KernelView::Present { prefix_len: p },
            (None, None) => KernelView::Absent,
        })
    }
}

impl KernelActuator for Fake {
    async fn add(&self, prefix_len: u8) -> Result<Applied, StepError> {
        self.with(|w| {
            w.kernel_ops.push("add");
            let was = w.kernel.replace(prefix_len);
            Ok(if was == Some(prefix_len) {
                Applied::AlreadyDone
            } else {
                Applied::Changed
            })
        })
    }
    async fn remove(&self) -> Result<Applied, StepError> {
        self.with(|w| {
            w.kernel_ops.push("remove");
            Ok(if w.kernel.take().is_some() {
                Applied::Changed
            } else {
                Applied::AlreadyDone
            })
        })
    }
}

impl CloudSource for Fake {
    async fn observe(&self) -> CloudView {
        if let Err(e) = self.ec2_call("DescribeNetworkInterfaces") {
            return CloudView::Unknown {
                kind: e.kind,
                code: e.code,
                reason: e.message,
            };
        }
        self.with(|w| {
            let tag = |eni: &str| {
                w.tags
                    .get(eni)
                    .map_or(ClaimTag::Absent, |c| ClaimTag::Valid(*c))
            };
            match w.holder.as_deref() {
                None => CloudView::Nobody,
                Some(ME) => CloudView::Me { claim: tag(ME) },
                Some(eni) => CloudView::Other {
                    eni: eni.to_owned(),
                    claim: tag(eni),
                },
            }
        })
    }

    async fn marks(&self) -> MarkView {
        if let Err(e) = self.ec2_call("DescribeTags") {
            return MarkView::Unknown {
                kind: e.kind,
                code: e.code,
                reason: e.message,
            };
        }
        self.with(|w| MarkView::Read {
            marks: w.marks.values().copied().collect(),
        })
    }

    /// Every other ENI's primary address is 10.0.0.2.
    fn address_of(&self, eni: &str) -> Option<Ipv4Addr> {
        (eni != ME).then_some(Ipv4Addr::new(10, 0, 0, 2))
    }
}

impl CloudActuator for Fake {
    async fn write_claim(&self, claim: Claim) -> Result<(), StepError> {
        self.ec2_call("CreateTags")?;
        self.with(|w| {
            w.tags.insert(ME.into(), claim);
            w.marks.insert(claim.node_id, claim);
        });
        Ok(())
    }
    async fn release(&self) -> Result<(), StepError> {
        self.ec2_call("UnassignPrivateIpAddresses")?;
        self.with(|w| {
            if w.holder.as_deref() == Some(ME) {
                w.holder = None;
            }
        });
        Ok(())
    }
    async fn assign(&self) -> Result<(), StepError> {
        self.ec2_call("AssignPrivateIpAddresses")?;
        self.with(|w| w.holder = Some(ME.into()));
        Ok(())
    }
    async fn verify(&self) -> Result<(), StepError> {
        match CloudSource::observe(self).await {
            CloudView::Me { .. } => Ok(()),
            other => Err(StepError::plain(format!("verify: {other:?}"))),
        }
    }
}

impl Fencer for Fake {
    async fn fence(&self, holder: &str) -> Result<(), StepError> {
        self.with(|w| w.fences.push(holder.to_owned()));
        Ok(())
    }
}
