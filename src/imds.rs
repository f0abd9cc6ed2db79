//! IMDSv2 discovery: this instance, its region, and the ENI and subnet behind the
//! configured interface, matched by that interface's own MAC (never "the first MAC").
//! A minimal IMDSv2 client (token PUT, then GETs with the token; a 401 fetches a new
//! token once) over plain HTTP, since IMDS is plain HTTP on a link-local address. The
//! endpoint honours `AWS_EC2_METADATA_SERVICE_ENDPOINT` like the SDK does.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    let mac = mac.to_ascii_lowercase();
    let session = Session {
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        token: std::sync::Mutex::new(None),
    };
    tokio::time::timeout(limit, fetch(&session, &mac))
        .await
        .unwrap_or(Err(ImdsError::Timeout(limit.as_millis())))
}

/// Token lifetime we ask for; discovery takes well under a second.
const TOKEN_TTL_SECONDS: u32 = 60;
const CALL_LIMIT: Duration = Duration::from_secs(2);

/// An IMDSv2 session: one token, fetched again when IMDS answers 401.
struct Session {
    endpoint: String,
    token: std::sync::Mutex<Option<String>>,
}

impl Session {
    async fn token(&self, fresh: bool) -> Result<String, ImdsError> {
        if !fresh && let Some(t) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(t);
        }
        let ttl = format!("X-aws-ec2-metadata-token-ttl-seconds: {TOKEN_TTL_SECONDS}");
        let (status, body) = self.http("PUT", "/latest/api/token", &ttl).await?;
        if status != 200 {
            return Err(ImdsError::Other {
                path: "/latest/api/token".into(),
                message: format!("token request answered HTTP {status}"),
            });
        }
        let token = body.trim().to_owned();
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(token)
    }

    async fn get(&self, path: &str) -> Result<String, ImdsError> {
        let full = format!("{BASE}{path}");
        for fresh in [false, true] {
            let header = format!("X-aws-ec2-metadata-token: {}", self.token(fresh).await?);
            match self.http("GET", &full, &header).await? {
                (200, body) => return Ok(body.trim().to_owned()),
                (401, _) if !fresh => continue,
                (404, _) => return Err(ImdsError::Missing { path: full }),
                (status, _) => {
                    return Err(ImdsError::Other {
                        path: full,
                        message: format!("HTTP {status}"),
                    });
                }
            }
        }
        Err(ImdsError::Other {
            path: full,
            message: "HTTP 401 even with a fresh token".into(),
        })
    }

    /// One HTTP/1.1 exchange (IMDS is plain HTTP on a link-local address).
    async fn http(
        &self,
        method: &str,
        path: &str,
        header: &str,
    ) -> Result<(u16, String), ImdsError> {
        let unreachable = |message: String| ImdsError::Unreachable {
            endpoint: self.endpoint.clone(),
            message,
        };
        let (authority, target) = connect_target(&self.endpoint).map_err(unreachable)?;
        let exchange = async {
            let mut stream = TcpStream::connect(&target)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{header}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream
                .write_all(req.as_bytes())
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let mut raw = Vec::new();
            stream
                .take(1 << 20)
                .read_to_end(&mut raw)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            Ok::<_, ImdsError>(raw)
        };
        let raw = tokio::time::timeout(CALL_LIMIT, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(unreachable(format!(
                    "no answer within {} ms",
                    CALL_LIMIT.as_millis()
                )))
            })?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| unreachable("malformed HTTP answer".into()))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| unreachable("malformed status line".into()))?;
        Ok((status, body.to_owned()))
    }
}

async fn fetch(session: &Session, mac: &str) -> Result<NicIdentity, ImdsError> {
    let get = |path: String| async move { session.get(&path).await };
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

/// `http://host[:port][/...]` → (authority for the Host header, `host:port` to connect
/// to). The port defaults to 80: the SDK's own default, `http://169.254.169.254`, has none.
fn connect_target(endpoint: &str) -> Result<(&str, String), String> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("{endpoint}: only http:// endpoints are supported"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    if authority.is_empty() {
        return Err(format!("{endpoint}: no host"));
    }
    let target = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, target))
}

#[cfg(test)]
mod tests {
    use super::connect_target;

    #[test]
    fn endpoints_without_a_port_use_80() {
        let t = |e| connect_target(e).map(|(_, t)| t);
        assert_eq!(t("http://169.254.169.254"), Ok("169.254.169.254:80".into()));
        assert_eq!(
            t("http://169.254.169.254/"),
            Ok("169.254.169.254:80".into())
        );
        assert_eq!(t("http://127.0.0.1:8111"), Ok("127.0.0.1:8111".into()));
        assert_eq!(t("http://[fd00:ec2::254]"), Ok("[fd00:ec2::254]:80".into()));
        assert_eq!(
            t("http://[fd00:ec2::254]:81/x"),
            Ok("[fd00:ec2::254]:81".into())
        );
        assert!(t("https://169.254.169.254").is_err());
        assert!(t("http://").is_err());
    }
}
