//! The config loader: TOML text, then (after a NUL byte) `KEY=VALUE` lines taken as
//! `VIP_ARBITER_KEY` variables. Either valid settings within the documented bounds,
//! or errors of one line each.

use std::time::Duration;

use crate::config;

pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("VIP_ARBITER_{k}"), v.to_owned()))
        .collect();
    match config::from_text(toml, env) {
        Ok(s) => {
            let within = |d: Duration, lo: u64, hi: u64| {
                (Duration::from_millis(lo)..=Duration::from_millis(hi)).contains(&d)
            };
            assert!(within(s.interval, 100, 60_000), "interval {:?}", s.interval);
            assert!(within(s.pg_timeout, 100, 30_000), "{:?}", s.pg_timeout);
            assert!(within(s.pg_unknown_hold, 0, 3_600_000));
            assert!(within(s.aws.verify_interval, 5_000, 3_600_000));
            assert!(within(s.aws.cloud_unknown_hold, 0, 3_600_000));
            assert!(s.prefix_len.is_none_or(|p| (1..=32).contains(&p)));
            assert!(s.node_id > 0);
            assert!(s.socket.is_absolute());
            assert!(s.socket_mode <= 0o777);
            assert!(!s.redacted_toml().is_empty());
        }
        Err(e) => {
            assert!(!e.0.is_empty(), "an error with no problem in it");
            for line in &e.0 {
                assert!(!line.is_empty() && !line.contains(['\n', '\r']), "{line:?}");
            }
            assert_eq!(e.to_string().lines().count(), e.0.len());
        }
    }
}
