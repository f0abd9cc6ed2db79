//! EC2's errors: the one place that reads AWS error codes. A failed call keeps its
//! code for display (logs, health, `plan`) and gets a `FailureKind`, which is all the
//! core and the pass look at.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::core::observation::FailureKind;
use crate::pass::act::StepError;

/// The caller lacks the IAM permission for the action.
const UNAUTHORIZED: &str = "UnauthorizedOperation";
/// A dry run that would have succeeded.
const DRY_RUN_OK: &str = "DryRunOperation";
/// EC2 does not know our ENI (also what `describe_own_eni` says when EC2 answers
/// without it).
pub const ENI_NOT_FOUND: &str = "InvalidNetworkInterfaceID.NotFound";
/// Codes that mean "EC2 does not show it (yet)": retried at start-up.
const NOT_FOUND: &[&str] = &[ENI_NOT_FOUND, "InvalidSubnetID.NotFound"];
/// Not an AWS code: the SDK found no credentials (no instance profile, no
/// environment, no profile file). The most likely first-run mistake; no retry fixes it.
pub const NO_CREDENTIALS: &str = "NoCredentials";
/// The ENI has no room for another secondary private IP (its instance type's limit).
const IP_LIMIT: &str = "PrivateIpAddressLimitExceeded";
/// EC2 refused a value: for the assign, the VIP is not in this ENI's subnet.
const INVALID_VALUE: &str = "InvalidParameterValue";
/// Codes that no retry will fix: an operator must act (missing IAM permission, bad
/// credentials, wrong ENI or subnet id, an ENI without room for the VIP, a VIP outside
/// the ENI's subnet). They are tried again no faster than once a `verify_interval`.
const NEEDS_OPERATOR: &[&str] = &[
    UNAUTHORIZED,
    NO_CREDENTIALS,
    "AuthFailure",
    "InvalidClientTokenId",
    "OptInRequired",
    "Blocked",
    IP_LIMIT,
    INVALID_VALUE,
    "InvalidParameterCombination",
    "TagLimitExceeded",
];
/// Prefixes of codes that need an operator too (a malformed or unknown id).
const NEEDS_OPERATOR_PREFIXES: &[&str] = &["InvalidNetworkInterfaceID", "InvalidSubnetID"];
/// EC2 asks us to slow down.
const THROTTLED: &[&str] = &["RequestLimitExceeded", "Throttling", "ThrottlingException"];
/// EC2 failed on its side: the call may or may not have been carried out.
const SERVER_SIDE: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
];

/// Did EC2 answer no (nothing was carried out)? Any code but a server-side failure;
/// no code means no answer (a timeout, a transport error): it may have gone through.
pub fn refused(code: Option<&str>) -> bool {
    code.is_some_and(|c| !SERVER_SIDE.contains(&c))
}

/// What an AWS error code (or its absence: a timeout, a transport error, an answer
/// that made no sense) means for the decision.
pub fn kind_of(code: Option<&str>) -> FailureKind {
    let Some(code) = code else {
        return FailureKind::Transient;
    };
    if NOT_FOUND.contains(&code) {
        FailureKind::NotFound
    } else if NEEDS_OPERATOR.contains(&code)
        || NEEDS_OPERATOR_PREFIXES.iter().any(|p| code.starts_with(p))
    {
        FailureKind::NeedsOperator
    } else if THROTTLED.contains(&code) {
        FailureKind::Throttled
    } else {
        FailureKind::Transient
    }
}

/// A failed EC2 call: the action, the AWS error code (when EC2 sent one) and text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{action}: {message}")]
pub struct Ec2Error {
    pub action: &'static str,
    pub code: Option<String>,
    pub message: String,
}

impl Ec2Error {
    pub(crate) fn from_sdk<E, R>(action: &'static str, e: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let (code, message) = match e {
            SdkError::ServiceError(se) => (
                se.err().code().map(str::to_owned),
                se.err().message().unwrap_or("service error").to_owned(),
            ),
            SdkError::TimeoutError(_) => (None, "timed out".to_owned()),
            _ if mentions_credentials(e) => (
                Some(NO_CREDENTIALS.to_owned()),
                "no AWS credentials: attach an instance profile with the policy in \
                 /usr/share/doc/vip-arbiter/iam-policy.json (docs/operations.md, IAM policy and \
                 instance role)"
                    .to_owned(),
            ),
            SdkError::DispatchFailure(_) => (None, format!("cannot reach EC2: {}", one_line(e))),
            other => (other.code().map(str::to_owned), one_line(other)),
        };
        Ec2Error {
            action,
            code,
            message,
        }
    }

    /// The metrics label for this failure.
    pub(crate) fn label(&self) -> &str {
        self.code.as_deref().unwrap_or("transport")
    }

    pub fn kind(&self) -> FailureKind {
        kind_of(self.code.as_deref())
    }

    pub fn needs_operator(&self) -> bool {
        self.kind().needs_operator()
    }

    /// EC2 does not show the ENI or the subnet (yet).
    pub fn not_found(&self) -> bool {
        self.kind() == FailureKind::NotFound
    }

    /// The call lacks its IAM permission.
    pub fn unauthorized(&self) -> bool {
        self.code.as_deref() == Some(UNAUTHORIZED)
    }

    /// A dry run that would have succeeded.
    pub fn dry_run_ok(&self) -> bool {
        self.code.as_deref() == Some(DRY_RUN_OK)
    }
}

/// An error and its sources as one line: each cause's own text once, joined by
/// ": ", whitespace folded, at most 300 characters (never a Debug dump).
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    let mut line = parts.join(": ");
    if line.len() > 300 {
        let cut = (0..=297)
            .rev()
            .find(|&i| line.is_char_boundary(i))
            .unwrap_or(0);
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

/// Does the error chain say the SDK had no credentials to sign with?
fn mentions_credentials(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string().to_ascii_lowercase();
        let debug = format!("{err:?}");
        if text.contains("credential") || debug.contains("CredentialsNotLoaded") {
            return true;
        }
        next = err.source();
    }
    false
}

/// A step error from a failed call: `message` for the logs, `detail` (the message,
/// with the code when it does not say it already) for the verdict.
pub fn step_error(message: String, code: Option<String>) -> StepError {
    let detail = match &code {
        Some(code) if !message.contains(code.as_str()) => format!("{message} ({code})"),
        _ => message.clone(),
    };
    StepError {
        kind: kind_of(code.as_deref()),
        refused: refused(code.as_deref()),
        message,
        code,
        detail,
    }
}

impl From<Ec2Error> for StepError {
    fn from(e: Ec2Error) -> Self {
        let message = if e.unauthorized() {
            let tagged = if matches!(
                e.action,
                "CreateTags" | "AssignPrivateIpAddresses" | "UnassignPrivateIpAddresses"
            ) {
                " (the shipped policy allows it only on an ENI and subnet tagged vip-arbiter-cluster: a tool that manages tags may have removed it)"
            } else {
                ""
            };
            format!(
                "{}: not allowed: grant IAM action ec2:{}{tagged} ({})",
                e.action, e.action, e.message
            )
        } else if let Some(hint) = what_to_do(e.code.as_deref()) {
            format!(
                "{}: {} ({}): {hint}",
                e.action,
                e.message,
                e.code.as_deref().unwrap_or_default()
            )
        } else if let Some(code) = e.code.as_deref() {
            format!("{}: {} ({code})", e.action, e.message)
        } else {
            e.to_string()
        };
        step_error(message, e.code)
    }
}

/// One line that says what to do about a refusal that will not pass by itself.
fn what_to_do(code: Option<&str>) -> Option<&'static str> {
    match code? {
        IP_LIMIT => Some(
            "this ENI has no room for another secondary private IP: free one or use an instance type with more",
        ),
        INVALID_VALUE => {
            Some("check that the VIP lies in this ENI's subnet (vip-arbiter check-config --online)")
        }
        "TagLimitExceeded" => Some(
            "the subnet or ENI has 50 tags: remove unused ones (vip-arbiter retire-claim for old marks)",
        ),

        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::describe_network_interfaces::DescribeNetworkInterfacesError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    /// A cause with a text and an optional cause of its own.
    #[derive(Debug)]
    struct Cause(&'static str, Option<Box<Cause>>);

    impl std::fmt::Display for Cause {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Cause {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|c| c as _)
        }
    }

    fn dispatch(cause: Cause) -> Ec2Error {
        let e: SdkError<DescribeNetworkInterfacesError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(cause), None));
        Ec2Error::from_sdk("DescribeNetworkInterfaces", &e)
    }

    /// Issue 19, item 7: an SDK error is one line (each cause once, never a Debug
    /// dump), and missing credentials are their own class: CRITICAL at once, with
    /// what to do.
    #[test]
    fn sdk_errors_are_one_line_and_missing_credentials_need_an_operator() {
        let e = dispatch(Cause(
            "error trying to connect",
            Some(Box::new(Cause(
                "tcp connect error:\n  Connection refused (os error 111)",
                None,
            ))),
        ));
        let text = e.to_string();
        assert!(
            !text.contains('\n') && !text.contains("ConnectorError"),
            "{text}"
        );
        assert!(
            text.starts_with("DescribeNetworkInterfaces: cannot reach EC2: ")
                && text.ends_with("tcp connect error: Connection refused (os error 111)"),
            "{text}"
        );
        assert_eq!(e.kind(), FailureKind::Transient);
        let e = dispatch(Cause(
            "failed to load credentials",
            Some(Box::new(Cause(
                "no providers in chain provided credentials",
                None,
            ))),
        ));
        assert_eq!(e.code.as_deref(), Some(NO_CREDENTIALS));
        assert!(e.needs_operator());
        let step = StepError::from(e);
        assert!(
            step.message.contains("no AWS credentials")
                && step.message.contains("attach an instance profile"),
            "{}",
            step.message
        );
        assert!(!step.message.contains('\n'));
        let long = one_line(&Cause(Box::leak("x ".repeat(400).into_boxed_str()), None));
        assert!(long.len() <= 303 && long.ends_with("..."), "{long}");
    }

    #[test]
    fn codes_are_classified_as_before() {
        for code in [
            "UnauthorizedOperation",
            "AuthFailure",
            "InvalidClientTokenId",
            "OptInRequired",
            "Blocked",
            "InvalidNetworkInterfaceID.Malformed",
            "InvalidSubnetID.Malformed",
            "InvalidNetworkInterfaceID.NotFound",
            "InvalidSubnetID.NotFound",
            // Refusals that will not pass by themselves (issue 18, sequence 3).
            "PrivateIpAddressLimitExceeded",
            "InvalidParameterValue",
            "TagLimitExceeded",
        ] {
            assert!(kind_of(Some(code)).needs_operator(), "{code}");
        }
        for code in [None, Some("RequestLimitExceeded"), Some("InternalError")] {
            assert!(!kind_of(code).needs_operator(), "{code:?}");
        }
        assert_eq!(
            kind_of(Some("InvalidSubnetID.NotFound")),
            FailureKind::NotFound
        );
        assert_eq!(
            kind_of(Some("RequestLimitExceeded")),
            FailureKind::Throttled
        );
    }

    #[test]
    fn only_an_answer_that_says_no_is_a_refusal() {
        // EC2 said no: nothing was done.
        for code in [
            "RequestLimitExceeded",
            "UnauthorizedOperation",
            "InvalidParameterValue",
        ] {
            assert!(refused(Some(code)), "{code}");
            assert!(step_error("x".into(), Some(code.into())).refused, "{code}");
        }
        // No answer, or EC2 failed on its side: it may have gone through.
        for code in [None, Some("InternalError"), Some("ServiceUnavailable")] {
            assert!(!refused(code), "{code:?}");
            assert!(!step_error("x".into(), code.map(str::to_owned)).refused);
        }
        assert!(!StepError::plain("timed out after 2s").refused);
    }

    #[test]
    fn a_refusal_that_will_not_pass_says_what_to_do() {
        let e = StepError::from(Ec2Error {
            action: "AssignPrivateIpAddresses",
            code: Some("PrivateIpAddressLimitExceeded".into()),
            message: "Number of private addresses will exceed limit.".into(),
        });
        assert!(e.kind.needs_operator() && e.refused);
        assert!(
            e.detail
                .contains("no room for another secondary private IP"),
            "{}",
            e.detail
        );
        assert_eq!(e.detail.lines().count(), 1);
        let e = StepError::from(Ec2Error {
            action: "AssignPrivateIpAddresses",
            code: Some("InvalidParameterValue".into()),
            message: "Address does not fall within the subnet's address range".into(),
        });
        assert!(e.detail.contains("check-config --online"), "{}", e.detail);
    }

    #[test]
    fn a_refused_claim_names_the_cluster_tag() {
        let e = StepError::from(Ec2Error {
            action: "CreateTags",
            code: Some("UnauthorizedOperation".into()),
            message: "You are not authorized".into(),
        });
        assert!(e.kind.needs_operator());
        assert!(e.detail.contains("vip-arbiter-cluster"), "{}", e.detail);
        assert!(
            e.detail.contains("grant IAM action ec2:CreateTags"),
            "{}",
            e.detail
        );
    }

    #[test]
    fn the_verdict_shows_the_code_once() {
        let e = step_error("verify: nope".into(), Some("Blocked".into()));
        assert_eq!(e.detail, "verify: nope (Blocked)");
        assert!(e.kind.needs_operator());
        let e = step_error("x: y (Blocked)".into(), Some("Blocked".into()));
        assert_eq!(e.detail, "x: y (Blocked)");
    }
}
