//! The `[aws]` table, every problem collected (no early return: issue 19).

use std::path::PathBuf;
use std::time::Duration;

use super::{HOUR, Problems};
use crate::config::AwsSettings;
use crate::config::raw;

pub(super) fn validate_aws(p: &mut Problems, a: &raw::RawAws) -> Option<AwsSettings> {
    let id_like = |key: &str, v: &Option<String>, prefix: &str, p: &mut Problems| match v {
        Some(s)
            if !(s.starts_with(prefix)
                && s.len() > prefix.len()
                && s[prefix.len()..].chars().all(|c| c.is_ascii_hexdigit())) =>
        {
            p.0.push(format!("aws.{key}: {s:?} does not look like {prefix}<hex>"));
        }
        _ => {}
    };
    id_like("eni_id", &a.eni_id, "eni-", p);
    id_like("subnet_id", &a.subnet_id, "subnet-", p);
    if a.fence_command
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        p.0.push("aws.fence_command: is empty (remove the key to disable fencing)".into());
    }
    // Every value is checked before any is given up on: one line per problem.
    let verify_interval = p.duration(
        "aws.verify_interval",
        &a.verify_interval,
        Duration::from_secs(5),
        HOUR,
    );
    let cloud_unknown_hold = p.duration(
        "aws.cloud_unknown_hold",
        &a.cloud_unknown_hold,
        Duration::ZERO,
        HOUR,
    );
    let consistency_bound = p.duration(
        "aws.consistency_bound",
        &a.consistency_bound,
        Duration::ZERO,
        HOUR,
    );
    if !a.state_file.starts_with('/') {
        p.0.push(format!(
            "aws.state_file: {:?} is not an absolute path",
            a.state_file
        ));
    }
    let (verify_interval, cloud_unknown_hold, consistency_bound) =
        (verify_interval?, cloud_unknown_hold?, consistency_bound?);
    Some(AwsSettings {
        enabled: a.enabled,
        region: a.region.clone(),
        eni_id: a.eni_id.clone(),
        subnet_id: a.subnet_id.clone(),
        verify_interval,
        cloud_unknown_hold,
        consistency_bound,
        state_file: PathBuf::from(&a.state_file),
        fence_command: a.fence_command.clone(),
    })
}
