//! The EC2 side: who holds the VIP (one filtered DescribeNetworkInterfaces), the
//! subnet's high-water marks (DescribeTags on the subnet), our claim (one CreateTags
//! on our own ENI and the subnet), the move (AssignPrivateIpAddresses with
//! AllowReassignment) and the hand-back of a fenced node
//! (UnassignPrivateIpAddresses); for the operator's `retire-claim`, the ENIs carrying
//! a claim tag (DescribeNetworkInterfaces by tag key) and DeleteTags. Every call is
//! counted by action and result; every error keeps its AWS error code.

mod answers;
pub mod errors;
pub mod imds;
pub mod setup;

pub use answers::{holder_addresses, holder_of, marks_of};

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, NetworkInterface, Tag};

pub use crate::adapters::ec2::errors::Ec2Error;
use crate::adapters::ec2::errors::{ENI_NOT_FOUND, step_error};
use crate::core::claim::{self, Claim};
use crate::core::observation::{CloudView, MarkView};
use crate::health::metrics::Metrics;
use crate::pass::act::{CloudActuator, StepError};
use crate::pass::observe::CloudSource;

/// Our ENI and the VIP, over one SDK client.
#[derive(Clone)]
pub struct Ec2 {
    client: Client,
    vip: Ipv4Addr,
    eni_id: String,
    subnet_id: String,
    metrics: Arc<Metrics>,
    /// The holder ENI the last describe showed, with its primary private address
    /// (`CloudSource::address_of`: whose PostgreSQL to ask).
    last_holder: Arc<Mutex<Option<(String, Ipv4Addr)>>>,
    /// Whether the subnet carried `CLUSTER_TAG` at the last read of the marks.
    last_cluster_tag: Arc<Mutex<Option<bool>>>,
}

/// The tag the shipped IAM policy conditions every write on (etc/iam-policy.json).
pub const CLUSTER_TAG: &str = "vip-arbiter-cluster";

impl Ec2 {
    pub fn new(
        client: Client,
        vip: Ipv4Addr,
        eni_id: String,
        subnet_id: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        Ec2 {
            client,
            vip,
            eni_id,
            subnet_id,
            metrics,
            last_holder: Arc::default(),
            last_cluster_tag: Arc::default(),
        }
    }

    pub fn eni_id(&self) -> &str {
        &self.eni_id
    }

    pub fn subnet_id(&self) -> &str {
        &self.subnet_id
    }

    fn count<T>(&self, action: &'static str, r: &Result<T, Ec2Error>) {
        let result = match r {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        self.metrics.ec2_call(action, result);
    }

    /// Send one call: its answer through `answer`, its error with the AWS code kept,
    /// counted by action and result either way.
    async fn call<O, T, E, R>(
        &self,
        action: &'static str,
        sent: impl std::future::Future<Output = Result<O, SdkError<E, R>>>,
        answer: impl FnOnce(O) -> Result<T, Ec2Error>,
    ) -> Result<T, Ec2Error>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let r = sent
            .await
            .map_err(|e| Ec2Error::from_sdk(action, &e))
            .and_then(answer);
        self.count(action, &r);
        r
    }

    /// One filtered call: the VIP's address in our own subnet.
    pub async fn describe(&self, dry_run: bool) -> Result<Vec<NetworkInterface>, Ec2Error> {
        let sent = self
            .client
            .describe_network_interfaces()
            .filters(
                Filter::builder()
                    .name("addresses.private-ip-address")
                    .values(self.vip.to_string())
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("subnet-id")
                    .values(&self.subnet_id)
                    .build(),
            )
            .dry_run(dry_run)
            .send();
        self.call("DescribeNetworkInterfaces", sent, |o| {
            Ok(o.network_interfaces().to_vec())
        })
        .await
    }

    /// Our claim on our own ENI (`vip-arbiter:<VIP>`, which holders are judged by)
    /// and our node's high-water mark on the subnet (`vip-arbiter:<VIP>/node-<id>`),
    /// in ONE call: CreateTags puts every tag on every resource, so the ENI carries the
    /// node's mark key too and the subnet the last writer's claim key; readers use
    /// only the ENI's claim key and the subnet's mark keys.
    pub async fn tag(&self, claim: Claim, dry_run: bool) -> Result<(), Ec2Error> {
        let value = claim.to_string();
        let sent = self
            .client
            .create_tags()
            .resources(&self.eni_id)
            .resources(&self.subnet_id)
            .tags(
                Tag::builder()
                    .key(claim::tag_key(self.vip))
                    .value(&value)
                    .build(),
            )
            .tags(
                Tag::builder()
                    .key(claim::mark_key(self.vip, claim.node_id))
                    .value(&value)
                    .build(),
            )
            .dry_run(dry_run)
            .send();
        self.call("CreateTags", sent, |_| Ok(())).await
    }

    /// Every node's mark for this VIP on our subnet (DescribeTags, one call).
    pub async fn read_marks(&self, dry_run: bool) -> Result<Vec<(String, String)>, Ec2Error> {
        let sent = self
            .client
            .describe_tags()
            .filters(
                Filter::builder()
                    .name("resource-id")
                    .values(&self.subnet_id)
                    .build(),
            )
            .dry_run(dry_run)
            .send();
        self.call("DescribeTags", sent, |o| {
            Ok(o.tags()
                .iter()
                .filter(|t| t.resource_id() == Some(self.subnet_id.as_str()))
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect())
        })
        .await
    }

    /// Every ENI in our subnet that carries a claim tag for the VIP, wherever the VIP is
    /// (one DescribeNetworkInterfaces filtered by tag key and subnet), as (ENI id, the
    /// tag's value). The answer is checked again: never trust the filter alone.
    pub async fn claims_on_enis(&self) -> Result<Vec<(String, String)>, Ec2Error> {
        let key = claim::tag_key(self.vip);
        let sent = self
            .client
            .describe_network_interfaces()
            .filters(Filter::builder().name("tag-key").values(&key).build())
            .filters(
                Filter::builder()
                    .name("subnet-id")
                    .values(&self.subnet_id)
                    .build(),
            )
            .send();
        self.call("DescribeNetworkInterfaces", sent, |o| {
            Ok(o.network_interfaces()
                .iter()
                .filter(|n| n.subnet_id() == Some(self.subnet_id.as_str()))
                .filter_map(|n| {
                    let value = n
                        .tag_set()
                        .iter()
                        .find(|t| t.key() == Some(key.as_str()))?
                        .value()?;
                    Some((n.network_interface_id()?.to_owned(), value.to_owned()))
                })
                .collect())
        })
        .await
    }

    /// DeleteTags of one tag on one resource (our subnet or an ENI), given with its
    /// value: EC2 then deletes it only while it still has that value, so a tag
    /// rewritten since it was read stays.
    pub async fn delete_tag(&self, resource: &str, key: &str, value: &str) -> Result<(), Ec2Error> {
        let sent = self
            .client
            .delete_tags()
            .resources(resource)
            .tags(Tag::builder().key(key).value(value).build())
            .send();
        self.call("DeleteTags", sent, |_| Ok(())).await
    }

    /// UnassignPrivateIpAddresses of the VIP from our own ENI. An ENI that does not
    /// carry it answers `InvalidParameterValue`-like errors on real EC2: that is
    /// "already done" only after a describe says so, so it stays an error here.
    pub async fn unassign_here(&self) -> Result<(), Ec2Error> {
        let sent = self
            .client
            .unassign_private_ip_addresses()
            .network_interface_id(&self.eni_id)
            .private_ip_addresses(self.vip.to_string())
            .send();
        self.call("UnassignPrivateIpAddresses", sent, |_| Ok(()))
            .await
    }

    pub async fn assign_here(&self) -> Result<(), Ec2Error> {
        let sent = self
            .client
            .assign_private_ip_addresses()
            .network_interface_id(&self.eni_id)
            .private_ip_addresses(self.vip.to_string())
            .allow_reassignment(true)
            .send();
        self.call("AssignPrivateIpAddresses", sent, |_| Ok(()))
            .await
    }
}

impl CloudSource for Ec2 {
    async fn observe(&self) -> CloudView {
        match self.describe(false).await {
            Ok(nics) => {
                let holders = holder_addresses(&nics, self.vip);
                if let Ok(mut last) = self.last_holder.lock() {
                    *last = match holders.as_slice() {
                        [one] => Some(one.clone()),
                        _ => None,
                    };
                }
                holder_of(&nics, self.vip, &self.eni_id)
            }
            Err(e) => CloudView::Unknown {
                kind: e.kind(),
                reason: e.to_string(),
                code: e.code,
            },
        }
    }

    async fn marks(&self) -> MarkView {
        match self.read_marks(false).await {
            Ok(tags) => {
                if let Ok(mut last) = self.last_cluster_tag.lock() {
                    *last = Some(tags.iter().any(|(k, _)| k == CLUSTER_TAG));
                }
                MarkView::Read {
                    marks: marks_of(&tags, self.vip),
                }
            }
            Err(e) => MarkView::Unknown {
                kind: e.kind(),
                reason: e.to_string(),
                code: e.code,
            },
        }
    }

    fn address_of(&self, eni: &str) -> Option<Ipv4Addr> {
        let last = self.last_holder.lock().ok()?;
        last.as_ref().filter(|(id, _)| id == eni).map(|(_, a)| *a)
    }

    fn cluster_tagged(&self) -> Option<bool> {
        *self.last_cluster_tag.lock().ok()?
    }
}

impl CloudActuator for Ec2 {
    async fn write_claim(&self, claim: Claim) -> Result<(), StepError> {
        Ok(self.tag(claim, false).await?)
    }

    async fn assign(&self) -> Result<(), StepError> {
        Ok(self.assign_here().await?)
    }

    async fn release(&self) -> Result<(), StepError> {
        Ok(self.unassign_here().await?)
    }

    async fn verify(&self) -> Result<(), StepError> {
        match self.observe().await {
            CloudView::Me { .. } => Ok(()),
            CloudView::Unknown { code, reason, .. } => {
                Err(step_error(format!("verify: {reason}"), code))
            }
            other => Err(StepError::plain(format!(
                "verify: EC2 does not show the VIP on {}: {other:?}",
                self.eni_id
            ))),
        }
    }

    async fn prune_marks(&self, marks: &[Claim]) -> Result<(), StepError> {
        let tags = marks
            .iter()
            .map(|m| {
                Tag::builder()
                    .key(claim::mark_key(self.vip, m.node_id))
                    .value(m.to_string())
                    .build()
            })
            .collect();
        let sent = self
            .client
            .delete_tags()
            .resources(&self.subnet_id)
            .set_tags(Some(tags))
            .send();
        Ok(self.call("DeleteTags", sent, |_| Ok(())).await?)
    }
}

/// Kernel-only mode is `None`: no cloud to observe, and `decide()` never plans a
/// cloud step without a cloud policy (if one slipped through it fails loudly).
impl CloudSource for Option<Ec2> {
    async fn observe(&self) -> CloudView {
        match self {
            Some(ec2) => ec2.observe().await,
            None => CloudView::Disabled,
        }
    }

    async fn marks(&self) -> MarkView {
        match self {
            Some(ec2) => ec2.marks().await,
            None => MarkView::NotRead,
        }
    }

    fn address_of(&self, eni: &str) -> Option<Ipv4Addr> {
        self.as_ref()?.address_of(eni)
    }

    fn cluster_tagged(&self) -> Option<bool> {
        self.as_ref()?.cluster_tagged()
    }
}

impl CloudActuator for Option<Ec2> {
    async fn write_claim(&self, claim: Claim) -> Result<(), StepError> {
        self.as_ref().ok_or_else(no_cloud)?.write_claim(claim).await
    }
    async fn assign(&self) -> Result<(), StepError> {
        self.as_ref().ok_or_else(no_cloud)?.assign().await
    }
    async fn release(&self) -> Result<(), StepError> {
        self.as_ref().ok_or_else(no_cloud)?.release().await
    }
    async fn verify(&self) -> Result<(), StepError> {
        self.as_ref().ok_or_else(no_cloud)?.verify().await
    }
    async fn prune_marks(&self, marks: &[Claim]) -> Result<(), StepError> {
        self.as_ref().ok_or_else(no_cloud)?.prune_marks(marks).await
    }
}

fn no_cloud() -> StepError {
    StepError::plain("no cloud side configured ([aws] enabled = false)")
}

/// What EC2 says about our own ENI: the facts the start-up cross-check compares
/// with the configuration, IMDS and the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnEni {
    pub subnet_id: Option<String>,
    pub mac: Option<String>,
    /// The instance it is attached to (None: not attached).
    pub instance_id: Option<String>,
}

/// Start-up only calls (the start-up cross-check); not part of a pass.
impl Ec2 {
    /// Our own ENI by id (one DescribeNetworkInterfaces): an id EC2 does not know is
    /// `InvalidNetworkInterfaceID.NotFound`, whether EC2 says so or answers empty.
    pub async fn describe_own_eni(&self) -> Result<OwnEni, Ec2Error> {
        const ACTION: &str = "DescribeNetworkInterfaces";
        let sent = self
            .client
            .describe_network_interfaces()
            .network_interface_ids(&self.eni_id)
            .send();
        self.call(ACTION, sent, |o| {
            let nic = o
                .network_interfaces()
                .iter()
                .find(|n| n.network_interface_id() == Some(self.eni_id.as_str()))
                .ok_or_else(|| Ec2Error {
                    action: ACTION,
                    code: Some(ENI_NOT_FOUND.into()),
                    message: format!("no ENI {}", self.eni_id),
                })?;
            Ok(OwnEni {
                subnet_id: nic.subnet_id().map(str::to_owned),
                mac: nic.mac_address().map(str::to_ascii_lowercase),
                instance_id: nic
                    .attachment()
                    .and_then(|a| a.instance_id())
                    .map(str::to_owned),
            })
        })
        .await
    }
}
