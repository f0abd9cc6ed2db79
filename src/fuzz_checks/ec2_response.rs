//! An EC2 answer as bytes: the first byte picks the HTTP status, the rest is the body.
//! It goes through the real SDK client (its XML deserialisers, error parsing) into our
//! adapter, for all three calls the daemon makes. Whatever the body: no panic, an
//! error status is never read as an answer, and "the VIP is on our ENI" only comes
//! from a body that names our ENI and the VIP.

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use crate::adapters::ec2::Ec2;
use crate::core::claim::Claim;
use crate::core::observation::CloudView;
use crate::health::metrics::Metrics;
use crate::pass::act::StepError;
use crate::pass::observe::CloudSource;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);
const OWN_ENI: &str = "eni-0123456789abcdef0";

/// Answers every request with the same status and body.
#[derive(Debug, Clone)]
struct Canned {
    status: u16,
    body: Arc<Vec<u8>>,
}

impl HttpConnector for Canned {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let status = StatusCode::try_from(self.status).expect("a valid status");
        let body = SdkBody::from(self.body.as_ref().clone());
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, body)))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The adapter over a client whose every call gets this status and body.
fn canned_ec2(status: u16, body: &[u8]) -> Ec2 {
    let canned = Canned {
        status,
        body: Arc::new(body.to_vec()),
    };
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDFUZZ",
            "fuzz-secret",
            None,
            None,
            "fuzz",
        ))
        .retry_config(RetryConfig::disabled())
        .http_client(http_client_fn(move |_, _| {
            SharedHttpConnector::new(canned.clone())
        }))
        .build();
    Ec2::new(
        aws_sdk_ec2::Client::from_conf(conf),
        VIP,
        OWN_ENI.into(),
        "subnet-0a1b2c3d".into(),
        Arc::new(Metrics::default()),
    )
}

/// What the daemon would conclude from this answer to DescribeNetworkInterfaces
/// (the VIP 10.0.1.100, our ENI eni-0123456789abcdef0). For the seed tests.
pub fn observe_canned(status: u16, body: &[u8]) -> CloudView {
    runtime().block_on(canned_ec2(status, body).observe())
}

pub fn ec2_response(data: &[u8]) {
    let [pick, body @ ..] = data else {
        return;
    };
    let status = [200, 200, 400, 503][usize::from(pick % 4)];
    let ec2 = canned_ec2(status, body);
    let text = String::from_utf8_lossy(body);
    runtime().block_on(async {
        let view = ec2.observe().await;
        match &view {
            CloudView::Unknown { reason, .. } => assert!(!reason.is_empty()),
            _ if status != 200 => panic!("HTTP {status} read as an answer: {view:?}"),
            CloudView::Me { .. } => {
                assert!(
                    text.contains(OWN_ENI) && text.contains("10.0.1.100"),
                    "{view:?}"
                );
            }
            CloudView::Other { eni, .. } => {
                assert!(eni == "unknown ENI" || text.contains(eni.as_str()), "{eni}");
                assert_ne!(eni, OWN_ENI);
            }
            CloudView::Nobody => {}
            CloudView::Disabled | CloudView::NotChecked => panic!("{view:?}"),
        }
        let claim = Claim {
            timeline: 3,
            node_id: 1,
            system_id: Some(7),
        };
        for result in [
            ec2.tag(claim, false).await.map_err(StepError::from),
            ec2.assign_here().await.map_err(StepError::from),
            ec2.unassign_here().await.map_err(StepError::from),
            ec2.read_marks(false)
                .await
                .map(|_| ())
                .map_err(StepError::from),
        ] {
            match result {
                Ok(()) => assert_eq!(status, 200, "HTTP {status} read as success"),
                Err(e) => assert!(!e.message.is_empty()),
            }
        }
    });
}
