//! What `vip-arbiter plan` prints: what each source said, the eligibility, the verdict
//! with its severity, and the steps in order with the call each would make. One
//! report, two forms: text for an operator (`render_text`) and JSON for scripts
//! (`serde_json` over `PlanReport`, `format` 1; the shape is documented in
//! docs/operations.md and only ever grows).
//!
//! The report structs are built here from the core types (observation.rs, plan.rs),
//! which derive nothing for it: one function per core type, each one `match`, so a new
//! variant is one arm in one place. Verdicts need no arm at all: their kind, severity
//! and text come from `Verdict` itself.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::core::claim::{self, Claim};
use crate::core::decide::Eligibility;
use crate::core::observation::{
    ClaimTag, CloudView, KernelView, MarkView, Observation, PgRole, PgView, RepmgrSays,
};
use crate::core::plan::{Plan, Severity, Step, Verdict};

/// The JSON document's version; bumped only if a field changes meaning or goes away.
pub const FORMAT: u32 = 1;

/// What the report needs besides the observation and the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanContext {
    pub node_id: i32,
    pub vip: Ipv4Addr,
    pub interface: String,
    /// The prefix the kernel address gets (configured, or from the interface).
    pub prefix_len: u8,
    /// EC2 mode: our ENI and subnet. `None`: kernel-only.
    pub ec2: Option<Ec2Place>,
    pub fence_command: Option<String>,
    /// The active primary as this node's repmgr.nodes names it.
    pub repmgr_primary: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Place {
    pub eni: String,
    pub subnet: String,
}

/// The whole plan. Every key is always present (`null` when it does not apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanReport {
    pub format: u32,
    pub node_id: i32,
    pub vip: String,
    pub interface: String,
    pub prefix_len: u8,
    /// "ec2" | "kernel-only"
    pub mode: &'static str,
    pub eni: Option<String>,
    pub subnet: Option<String>,
    pub postgres: PgPart,
    pub repmgr: RepmgrPart,
    pub kernel: KernelPart,
    pub ec2: CloudPart,
    pub marks: MarksPart,
    pub eligibility: EligibilityPart,
    pub verdict: VerdictPart,
    pub steps: Vec<StepPart>,
    /// Converged, as `status` and `/health` mean it: no step would be taken and the
    /// verdict is OK (a CRITICAL `pg-unknown` with nothing to do is not converged).
    pub converged: bool,
}

/// The subnet's high-water marks (every node's highest claim for the VIP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarksPart {
    /// "not-read" | "read" | "unknown"
    pub state: &'static str,
    /// Valid marks, by node (the claim shape: state, value, timeline, node_id).
    pub marks: Vec<ClaimPart>,
    pub code: Option<String>,
    pub reason: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PgPart {
    /// "primary" | "standby" | "unknown"
    pub role: &'static str,
    pub timeline: Option<u32>,
    /// Why it is unknown.
    pub reason: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepmgrPart {
    /// "self-primary" | "self-not-primary" | "self-inactive" | "other-primary" |
    /// "not-registered" | "no-metadata" | "unknown" (PostgreSQL not reachable)
    pub says: &'static str,
    /// The other node an active primary row names ("other-primary").
    pub other_primary: Option<i32>,
    /// The active primary repmgr.nodes names, whoever it is.
    pub active_primary: Option<i32>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelPart {
    /// "present" | "absent" | "unknown"
    pub state: &'static str,
    pub prefix_len: Option<u8>,
    pub reason: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudPart {
    /// "disabled" | "not-checked" | "me" | "other" | "nobody" | "unknown"
    pub state: &'static str,
    /// The ENI that holds the VIP ("me": ours; "other": theirs).
    pub holder: Option<String>,
    /// The holder's claim tag ("me" and "other").
    pub claim: Option<ClaimPart>,
    /// The AWS error code ("unknown", when EC2 sent one).
    pub code: Option<String>,
    pub reason: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimPart {
    /// "absent" | "valid" | "invalid"
    pub state: &'static str,
    /// The tag value as written ("valid"), e.g. "timeline=6;node=2".
    pub value: Option<String>,
    pub timeline: Option<u32>,
    pub node_id: Option<i32>,
    /// Why it is unreadable ("invalid").
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EligibilityPart {
    /// "eligible" | "not-eligible" | "unknown"
    pub state: &'static str,
    pub timeline: Option<u32>,
    pub reason: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerdictPart {
    /// `Verdict::kind()`: "holding", "acquiring", "stale-primary", …
    pub kind: &'static str,
    /// "ok" | "warning" | "critical"
    pub severity: Severity,
    /// What `vip-arbiter check` exits with for it.
    pub check_exit: u8,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepPart {
    /// 1, 2, …: the order they would run in.
    pub n: usize,
    /// `Step::kind()`: "write_claim", "assign_cloud", "verify_cloud", "add_kernel",
    /// "remove_kernel", "fence"
    pub kind: &'static str,
    /// An acquire step: its failure stops the rest of the plan.
    pub acquire: bool,
    /// What it is for.
    pub what: String,
    /// The call it would make (an EC2 API call, the `ip` equivalent of the netlink
    /// request, or the fence command).
    pub call: String,
    /// "write_claim": the claim written.
    pub claim: Option<ClaimPart>,
    /// "add_kernel": the prefix the address gets.
    pub prefix_len: Option<u8>,
    /// "fence": the ENI fenced against.
    pub holder: Option<String>,
}

impl PlanReport {
    pub fn new(ctx: &PlanContext, obs: &Observation, elig: &Eligibility, plan: &Plan) -> Self {
        PlanReport {
            format: FORMAT,
            node_id: ctx.node_id,
            vip: ctx.vip.to_string(),
            interface: ctx.interface.clone(),
            prefix_len: ctx.prefix_len,
            mode: if ctx.ec2.is_some() {
                "ec2"
            } else {
                "kernel-only"
            },
            eni: ctx.ec2.as_ref().map(|e| e.eni.clone()),
            subnet: ctx.ec2.as_ref().map(|e| e.subnet.clone()),
            postgres: pg_part(&obs.pg),
            repmgr: repmgr_part(ctx, &obs.pg),
            kernel: kernel_part(ctx, &obs.kernel),
            ec2: cloud_part(ctx, &obs.cloud),
            marks: marks_part(&obs.marks),
            eligibility: eligibility_part(elig),
            verdict: verdict_part(&plan.verdict),
            steps: plan
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| step_part(ctx, &obs.kernel, i + 1, s))
                .collect(),
            converged: plan.steps.is_empty()
                && plan.verdict.severity() == crate::core::plan::Severity::Ok,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The operator's form: one `label: value` line per source, then the verdict and
    /// the steps.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "# vip-arbiter plan: node {}, VIP {}/{} on {}, {}{}; nothing was changed\n",
            self.node_id,
            self.vip,
            self.prefix_len,
            self.interface,
            self.mode,
            match (&self.eni, &self.subnet) {
                (Some(eni), Some(subnet)) => format!(" ({eni} in {subnet})"),
                _ => String::new(),
            }
        );
        let mut row = |label: &str, value: &str| out.push_str(&format!("{label:<14}{value}\n"));
        row("postgresql:", &self.postgres.text);
        row("repmgr.nodes:", &self.repmgr.text);
        row("kernel:", &self.kernel.text);
        row("ec2:", &self.ec2.text);
        if self.marks.state != "not-read" {
            row("marks:", &self.marks.text);
        }
        row("eligibility:", &self.eligibility.text);
        row("verdict:", &self.verdict.text);
        row(
            "severity:",
            &format!(
                "{} (check exits {})",
                self.verdict.severity.as_str().to_ascii_uppercase(),
                self.verdict.check_exit
            ),
        );
        match (self.steps.is_empty(), self.converged) {
            (true, true) => row("steps:", "none (converged)"),
            (true, false) => row(
                "steps:",
                &format!(
                    "none (not converged: the verdict is {})",
                    self.verdict.severity.as_str().to_ascii_uppercase()
                ),
            ),
            _ => {}
        }
        for s in &self.steps {
            row(
                &format!("step {}:", s.n),
                &format!("{}  # {}: {}", s.call, s.kind, s.what),
            );
        }
        out
    }
}

fn pg_part(pg: &PgView) -> PgPart {
    match pg {
        PgView::Unknown(reason) => PgPart {
            role: "unknown",
            timeline: None,
            reason: Some(reason.clone()),
            text: format!("unknown: {reason}"),
        },
        PgView::Known {
            role: PgRole::Primary { timeline },
            ..
        } => PgPart {
            role: "primary",
            timeline: Some(*timeline),
            reason: None,
            text: format!("primary (not in recovery), timeline {timeline}"),
        },
        PgView::Known {
            role: PgRole::Standby,
            ..
        } => PgPart {
            role: "standby",
            timeline: None,
            reason: None,
            text: "standby (in recovery)".into(),
        },
    }
}

fn repmgr_part(ctx: &PlanContext, pg: &PgView) -> RepmgrPart {
    let PgView::Known { repmgr, .. } = pg else {
        return RepmgrPart {
            says: "unknown",
            other_primary: None,
            active_primary: None,
            text: "unknown (PostgreSQL not reachable)".into(),
        };
    };
    let n = ctx.node_id;
    let (says, other, text) = match repmgr {
        RepmgrSays::SelfPrimary => (
            "self-primary",
            None,
            format!("node {n} is the active primary"),
        ),
        RepmgrSays::SelfNotPrimary => (
            "self-not-primary",
            None,
            format!("node {n} is a standby row"),
        ),
        RepmgrSays::SelfWitness => (
            "self-witness",
            None,
            format!("node {n} is repmgr's witness"),
        ),
        RepmgrSays::SelfInactive => (
            "self-inactive",
            None,
            format!("node {n} is a primary row marked inactive"),
        ),
        RepmgrSays::OtherPrimary(id) => (
            "other-primary",
            Some(*id),
            format!("node {id} is an active primary too"),
        ),
        RepmgrSays::NotRegistered => ("not-registered", None, format!("no row for node {n}")),
        RepmgrSays::NoMetadata => (
            "no-metadata",
            None,
            "the table does not exist in this database".into(),
        ),
    };
    let text = match ctx.repmgr_primary {
        Some(p) => format!("{text} (active primary: node {p})"),
        None => format!("{text} (no active primary)"),
    };
    RepmgrPart {
        says,
        other_primary: other,
        active_primary: ctx.repmgr_primary,
        text,
    }
}

fn kernel_part(ctx: &PlanContext, k: &KernelView) -> KernelPart {
    let (vip, dev) = (ctx.vip, &ctx.interface);
    match k {
        KernelView::Present { prefix_len } => KernelPart {
            state: "present",
            prefix_len: Some(*prefix_len),
            reason: None,
            text: format!("{vip}/{prefix_len} is on {dev}"),
        },
        KernelView::Absent => KernelPart {
            state: "absent",
            prefix_len: None,
            reason: None,
            text: format!("{vip} is not on {dev}"),
        },
        KernelView::Unknown(reason) => KernelPart {
            state: "unknown",
            prefix_len: None,
            reason: Some(reason.clone()),
            text: format!("unknown: {reason}"),
        },
    }
}

fn marks_part(m: &MarkView) -> MarksPart {
    let none = MarksPart {
        state: "not-read",
        marks: vec![],
        code: None,
        reason: None,
        text: "not read this pass".into(),
    };
    match m {
        MarkView::NotRead => none,
        MarkView::Read { marks } => {
            let mut sorted = marks.clone();
            sorted.sort_by_key(|c| c.node_id);
            MarksPart {
                state: "read",
                marks: sorted.iter().map(claim_part).collect(),
                text: if sorted.is_empty() {
                    "none on the subnet".into()
                } else {
                    sorted
                        .iter()
                        .map(|c| format!("node {}: {c}", c.node_id))
                        .collect::<Vec<_>>()
                        .join("; ")
                },
                ..none
            }
        }
        MarkView::Unknown { code, reason, .. } => MarksPart {
            state: "unknown",
            code: code.clone(),
            reason: Some(reason.clone()),
            text: match code {
                Some(code) => format!("unknown: {reason} ({code})"),
                None => format!("unknown: {reason}"),
            },
            ..none
        },
    }
}

fn cloud_part(ctx: &PlanContext, c: &CloudView) -> CloudPart {
    let part = |state, holder: Option<&str>, claim: Option<&ClaimTag>, text: String| CloudPart {
        state,
        holder: holder.map(str::to_owned),
        claim: claim.map(claim_tag_part),
        code: None,
        reason: None,
        text,
    };
    let ours = ctx.ec2.as_ref().map_or("our ENI", |e| e.eni.as_str());
    match c {
        CloudView::Disabled => part("disabled", None, None, "disabled (kernel-only mode)".into()),
        CloudView::NotChecked => part("not-checked", None, None, "not asked this pass".into()),
        CloudView::Me { claim } => part(
            "me",
            Some(ours),
            Some(claim),
            format!("held by our ENI {ours}, {}", claim_text(claim)),
        ),
        CloudView::Other { eni, claim } => part(
            "other",
            Some(eni),
            Some(claim),
            format!("held by {eni}, {}", claim_text(claim)),
        ),
        CloudView::Nobody => part("nobody", None, None, format!("no ENI holds {}", ctx.vip)),
        CloudView::Unknown { code, reason, .. } => CloudPart {
            code: code.clone(),
            reason: Some(reason.clone()),
            ..part(
                "unknown",
                None,
                None,
                match code {
                    Some(code) => format!("unknown: {reason} ({code})"),
                    None => format!("unknown: {reason}"),
                },
            )
        },
    }
}

fn claim_text(t: &ClaimTag) -> String {
    match t {
        ClaimTag::Absent => "no claim tag".into(),
        ClaimTag::Valid(c) => format!("claim {c}"),
        ClaimTag::Invalid(why) => format!("unreadable claim tag ({why})"),
    }
}

fn claim_tag_part(t: &ClaimTag) -> ClaimPart {
    match t {
        ClaimTag::Absent => ClaimPart {
            state: "absent",
            value: None,
            timeline: None,
            node_id: None,
            reason: None,
        },
        ClaimTag::Valid(c) => claim_part(c),
        ClaimTag::Invalid(why) => ClaimPart {
            state: "invalid",
            value: None,
            timeline: None,
            node_id: None,
            reason: Some(why.clone()),
        },
    }
}

fn claim_part(c: &Claim) -> ClaimPart {
    ClaimPart {
        state: "valid",
        value: Some(c.to_string()),
        timeline: Some(c.timeline),
        node_id: Some(c.node_id),
        reason: None,
    }
}

fn eligibility_part(e: &Eligibility) -> EligibilityPart {
    match e {
        Eligibility::Eligible { timeline } => EligibilityPart {
            state: "eligible",
            timeline: Some(*timeline),
            reason: None,
            text: format!("eligible (timeline {timeline})"),
        },
        Eligibility::NotEligible(why) => EligibilityPart {
            state: "not-eligible",
            timeline: None,
            reason: Some(why.clone()),
            text: format!("not eligible: {why}"),
        },
        Eligibility::Unknown(why) => EligibilityPart {
            state: "unknown",
            timeline: None,
            reason: Some(why.clone()),
            text: format!("unknown: {why}"),
        },
    }
}

/// No match: every verdict, present and future, brings its kind, severity and text.
fn verdict_part(v: &Verdict) -> VerdictPart {
    let severity = v.severity();
    VerdictPart {
        kind: v.kind(),
        severity,
        check_exit: severity as u8,
        text: v.to_string(),
    }
}

fn step_part(ctx: &PlanContext, kernel: &KernelView, n: usize, s: &Step) -> StepPart {
    let (vip, dev) = (ctx.vip, &ctx.interface);
    let eni = ctx.ec2.as_ref().map_or("our ENI", |e| e.eni.as_str());
    let subnet = ctx.ec2.as_ref().map_or("our subnet", |e| e.subnet.as_str());
    let present = match kernel {
        KernelView::Present { prefix_len } => Some(*prefix_len),
        _ => None,
    };
    let mut part = StepPart {
        n,
        kind: s.kind(),
        acquire: s.is_acquire(),
        what: String::new(),
        call: String::new(),
        claim: None,
        prefix_len: None,
        holder: None,
    };
    let (what, call) = match s {
        Step::WriteClaim(c) => {
            part.claim = Some(claim_part(c));
            (
                "write our claim on our ENI and our mark on the subnet before taking the VIP"
                    .to_owned(),
                format!(
                    "CreateTags {}={c} {}={c} on {eni} {subnet}",
                    claim::tag_key(vip),
                    claim::mark_key(vip, c.node_id)
                ),
            )
        }
        Step::AssignCloud => (
            "take the VIP at EC2 (moves it from any other ENI)".into(),
            format!("AssignPrivateIpAddresses {vip} to {eni} AllowReassignment=true"),
        ),
        Step::VerifyCloud => (
            "confirm that EC2 now shows our ENI as the holder".into(),
            format!(
                "DescribeNetworkInterfaces addresses.private-ip-address={vip} subnet-id={subnet} (must show {eni})"
            ),
        ),
        Step::AddKernel { prefix_len } => {
            part.prefix_len = Some(*prefix_len);
            let add = format!("ip addr add {vip}/{prefix_len} dev {dev}");
            match present {
                Some(p) if p != *prefix_len => (
                    format!("replace the address (/{p} now) with /{prefix_len}"),
                    format!("ip addr del {vip}/{p} dev {dev}; {add}"),
                ),
                _ => ("add the VIP to the interface".into(), add),
            }
        }
        Step::PruneMarks(marks) => (
            format!(
                "prune the marks of node ids repmgr no longer knows, below the highest mark ({})",
                marks
                    .iter()
                    .map(|m| format!("node {} at timeline {}", m.node_id, m.timeline))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "DeleteTags {} on {subnet}",
                marks
                    .iter()
                    .map(|m| format!("{}={m}", claim::mark_key(vip, m.node_id)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
        Step::ReleaseCloud => (
            "hand the VIP back at EC2: this node is fenced".into(),
            format!("UnassignPrivateIpAddresses {vip} from {eni}"),
        ),
        Step::RemoveKernel => (
            "remove the VIP from the interface".into(),
            format!(
                "ip addr del {vip}/{} dev {dev}",
                present.unwrap_or(ctx.prefix_len)
            ),
        ),
        Step::Fence { holder } => {
            part.holder = Some(holder.clone());
            (
                format!("run the fence command once for this incident ({holder} holds the VIP)"),
                match &ctx.fence_command {
                    Some(cmd) => format!(
                        "/bin/sh -c {cmd:?} with VIP_FENCE_HOLDER_ENI={holder} VIP_FENCE_VIP={vip} VIP_FENCE_NODE_ID={}",
                        ctx.node_id
                    ),
                    None => "(no fence_command configured)".into(),
                },
            )
        }
    };
    part.what = what;
    part.call = call;
    part
}

#[cfg(test)]
#[path = "plan_report_tests.rs"]
mod tests;
