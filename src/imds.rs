//! IMDSv2 discovery: this instance, its region, and the ENI and subnet behind the
//! configured interface, matched by that interface's own MAC (never "the first MAC").
//! The SDK's IMDS client does the token PUT, refreshes an expired token, retries,
//! and honours `AWS_EC2_METADATA_SERVICE_ENDPOINT`.

use std::time::Duration;

use aws_config::imds::client::Client;
use aws_config::imds::client::error::ImdsError as SdkImdsError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicIdentity {
    pub instance_id: String,
    pub region: String,
    pub mac: String,
    pub eni_id: String,
    pub subnet_id: String,
    pub subnet_cidr: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    #[error("IMDS at {endpoint} unreachable: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("IMDS has no {path} (HTTP 404)")]
    Missing { path: String },
    #[error("interface MAC {mac} is not among the instance's network interfaces ({known})")]
    NoSuchMac { mac: String, known: String },
    #[error("IMDS did not answer within {0} ms")]
    Timeout(u128),
    #[error("IMDS {path}: {message}")]
    Other { path: String, message: String },
}

const BASE: &str = "/latest/meta-data/";

/// Discover through the endpoint the SDK picks (env, profile, or 169.254.169.254).
pub async fn discover(mac: &str, limit: Duration) -> Result<NicIdentity, ImdsError> {
    let endpoint = std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or_else(|_| "http://169.254.169.254".into());
    discover_at(&endpoint, mac, limit).await
}

/// Discover through an explicit endpoint (tests, and `discover`).
pub async fn discover_at(
    endpoint: &str,
    mac: &str,
    limit: Duration,
) -> Result<NicIdentity, ImdsError> {
    let client = Client::builder()
        .endpoint(endpoint)
        .map_err(|e| ImdsError::Unreachable {
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(1))
        .max_attempts(2)
        .build();
    let mac = mac.to_ascii_lowercase();
    tokio::time::timeout(limit, fetch(&client, endpoint, &mac))
        .await
        .unwrap_or(Err(ImdsError::Timeout(limit.as_millis())))
}

async fn fetch(client: &Client, endpoint: &str, mac: &str) -> Result<NicIdentity, ImdsError> {
    let get = |path: String| async move {
        let full = format!("{BASE}{path}");
        client
            .get(full.clone())
            .await
            .map(|v| v.as_ref().trim().to_owned())
            .map_err(|e| classify(e, endpoint, &full))
    };
    let instance_id = get("instance-id".into()).await?;
    let region = get("placement/region".into()).await?;
    let macs = get("network/interfaces/macs/".into()).await?;
    let known: Vec<&str> = macs
        .lines()
        .map(|l| l.trim().trim_end_matches('/'))
        .filter(|l| !l.is_empty())
        .collect();
    if !known.contains(&mac) {
        return Err(ImdsError::NoSuchMac {
            mac: mac.to_owned(),
            known: known.join(", "),
        });
    }
    let nic = |item: &str| format!("network/interfaces/macs/{mac}/{item}");
    let eni_id = get(nic("interface-id")).await?;
    let subnet_id = get(nic("subnet-id")).await?;
    let subnet_cidr = match get(nic("subnet-ipv4-cidr-block")).await {
        Ok(c) => Some(c),
        Err(ImdsError::Missing { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(NicIdentity {
        instance_id,
        region,
        mac: mac.to_owned(),
        eni_id,
        subnet_id,
        subnet_cidr,
    })
}

fn classify(e: SdkImdsError, endpoint: &str, path: &str) -> ImdsError {
    match &e {
        SdkImdsError::ErrorResponse(r) if r.response().status().as_u16() == 404 => {
            ImdsError::Missing {
                path: path.to_owned(),
            }
        }
        SdkImdsError::FailedToLoadToken(_) | SdkImdsError::IoError(_) => ImdsError::Unreachable {
            endpoint: endpoint.to_owned(),
            message: aws_sdk_ec2::error::DisplayErrorContext(&e).to_string(),
        },
        _ => ImdsError::Other {
            path: path.to_owned(),
            message: aws_sdk_ec2::error::DisplayErrorContext(&e).to_string(),
        },
    }
}
