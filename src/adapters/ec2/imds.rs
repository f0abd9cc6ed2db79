//! IMDSv2 discovery: this instance, its region, and the ENI and subnet behind the
//! configured interface, matched by that interface's own MAC (never "the first MAC").
//!
//! A minimal IMDSv2 client over plain HTTP/1.1 (IMDS is plain HTTP on a link-local
//! address): a token PUT, then GETs carrying the token; a 401 fetches a new token once.
//! Not `aws_config::imds::Client`: its token cache only expires by the TTL it was told
//! and a 401 is retried with the same cached token, so a token IMDS stops honouring
//! early fails every later call on that client (tried against a fake IMDS like the one in
//! tests/imds_discovery.rs: 1 PUT, 13 GETs, 3 of 4 calls failed after ~4 s of retries each).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::health::http;

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
    #[error("interface MAC {mac} is not among this instance's interfaces (IMDS lists: {})", .known.join(", "))]
    NoSuchMac { mac: String, known: Vec<String> },
    #[error("IMDS at {endpoint} gave no complete answer within {} ms (in a container, the instance's metadata hop limit may be too low)", .limit.as_millis())]
    Timeout { endpoint: String, limit: Duration },
    #[error("IMDS {path}: {message}")]
    Other { path: String, message: String },
}

const BASE: &str = "/latest/meta-data/";
const TOKEN_PATH: &str = "/latest/api/token";
/// Token lifetime we ask for; discovery takes well under a second.
const TOKEN_TTL_SECONDS: u32 = 60;
/// Attempts per request when the connection fails or IMDS answers 5xx.
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_ANSWER: usize = 1 << 20;

/// Discover through `AWS_EC2_METADATA_SERVICE_ENDPOINT` (the variable the SDK
/// honours), else `http://169.254.169.254`. The SDK's profile key and IPv6 endpoint
/// mode are not read.
pub async fn discover(mac: &str, limit: Duration) -> Result<NicIdentity, ImdsError> {
    discover_at(&endpoint(), mac, limit).await
}

fn endpoint() -> String {
    std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "http://169.254.169.254".into())
}

/// `AWS_EC2_METADATA_DISABLED=true` (the SDK's variable): the operator said there is
/// no IMDS to ask. Only the optional look-ups honour it (the start-up cross-check's
/// instance id); discovery, which cannot do without IMDS, still tries.
pub fn disabled() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// This instance's id alone (through the same endpoint as `discover`), bounded by
/// `limit`: for the start-up check that a configured ENI is attached here.
pub async fn instance_id(limit: Duration) -> Result<String, ImdsError> {
    instance_id_at(&endpoint(), limit).await
}

pub async fn instance_id_at(endpoint: &str, limit: Duration) -> Result<String, ImdsError> {
    let mut session = session(endpoint)?;
    let endpoint = session.endpoint.clone();
    tokio::time::timeout(limit, session.get("instance-id"))
        .await
        .unwrap_or(Err(ImdsError::Timeout { endpoint, limit }))
}

fn session(endpoint: &str) -> Result<Session, ImdsError> {
    let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
    let (host, target) = connect_target(&endpoint).map_err(|message| ImdsError::Unreachable {
        endpoint: endpoint.clone(),
        message,
    })?;
    Ok(Session {
        host: host.to_owned(),
        target,
        token: None,
        endpoint,
    })
}

/// Discover through an explicit endpoint; the whole discovery is bounded by `limit`.
pub async fn discover_at(
    endpoint: &str,
    mac: &str,
    limit: Duration,
) -> Result<NicIdentity, ImdsError> {
    let mut session = session(endpoint)?;
    let endpoint = session.endpoint.clone();
    let mac = mac.trim().to_ascii_lowercase();
    tokio::time::timeout(limit, fetch(&mut session, &mac))
        .await
        .unwrap_or(Err(ImdsError::Timeout { endpoint, limit }))
}

async fn fetch(s: &mut Session, mac: &str) -> Result<NicIdentity, ImdsError> {
    let instance_id = s.get("instance-id").await?;
    let region = s.get("placement/region").await?;
    let known: Vec<String> = s
        .get("network/interfaces/macs/")
        .await?
        .lines()
        .map(|l| l.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    if !known.iter().any(|k| k == mac) {
        return Err(ImdsError::NoSuchMac {
            mac: mac.to_owned(),
            known,
        });
    }
    let nic = |item: &str| format!("network/interfaces/macs/{mac}/{item}");
    let eni_id = s.get(&nic("interface-id")).await?;
    let subnet_id = s.get(&nic("subnet-id")).await?;
    let subnet_cidr = match s.get(&nic("subnet-ipv4-cidr-block")).await {
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

/// An IMDSv2 session: one token, fetched again when IMDS answers 401.
struct Session {
    endpoint: String,
    /// The Host header.
    host: String,
    /// `host:port` to connect to.
    target: String,
    token: Option<String>,
}

impl Session {
    async fn token(&mut self) -> Result<String, ImdsError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let ttl = format!("X-aws-ec2-metadata-token-ttl-seconds: {TOKEN_TTL_SECONDS}");
        let token = match self.request("PUT", TOKEN_PATH, &ttl).await? {
            (200, body) if !body.trim().is_empty() => body.trim().to_owned(),
            (status, _) => {
                let hint = if status == 403 {
                    " (IMDS disabled?)"
                } else {
                    ""
                };
                return Err(ImdsError::Other {
                    path: TOKEN_PATH.into(),
                    message: format!("token request answered HTTP {status}{hint}"),
                });
            }
        };
        self.token = Some(token.clone());
        Ok(token)
    }

    async fn get(&mut self, path: &str) -> Result<String, ImdsError> {
        let full = format!("{BASE}{path}");
        let mut fresh = false;
        loop {
            let header = format!("X-aws-ec2-metadata-token: {}", self.token().await?);
            let (status, body) = self.request("GET", &full, &header).await?;
            let message = match status {
                200 => return Ok(body.trim().to_owned()),
                401 if !fresh => {
                    self.token = None;
                    fresh = true;
                    continue;
                }
                401 => "HTTP 401 even with a fresh token".to_owned(),
                404 => return Err(ImdsError::Missing { path: full }),
                _ => format!("HTTP {status}"),
            };
            return Err(ImdsError::Other {
                path: full,
                message,
            });
        }
    }

    /// One request, retried with backoff when the connection fails or IMDS answers 5xx.
    async fn request(
        &self,
        method: &str,
        path: &str,
        header: &str,
    ) -> Result<(u16, String), ImdsError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let last = attempt >= ATTEMPTS;
            match self.exchange(method, path, header).await {
                Ok((status, _)) if status >= 500 && !last => {}
                Ok(answer) => return Ok(answer),
                Err(message) if last => {
                    return Err(ImdsError::Unreachable {
                        endpoint: self.endpoint.clone(),
                        message: format!("{method} {path}: {message} ({ATTEMPTS} attempts)"),
                    });
                }
                Err(_) => {}
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    /// One HTTP/1.1 exchange; the answer ends at its Content-Length (or at EOF
    /// without one), so a server that keeps the connection open is fine. Read and
    /// parsed by `health::http`, the one HTTP/1.x parser.
    async fn exchange(
        &self,
        method: &str,
        path: &str,
        header: &str,
    ) -> Result<(u16, String), String> {
        let mut stream = TcpStream::connect(&self.target)
            .await
            .map_err(|e| e.to_string())?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{header}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.host
        );
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        http::read_response(&mut stream, MAX_ANSWER)
            .await
            .map(|r| (r.status, r.body))
            .map_err(|e| e.to_string())
    }
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
