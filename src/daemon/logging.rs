//! tracing setup: journald when running under systemd (JOURNAL_STREAM set), human
//! text on stderr otherwise. The level can be changed on reload.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Changes the level of the running subscriber.
pub struct LevelHandle(reload::Handle<EnvFilter, Registry>);

impl LevelHandle {
    pub fn set(&self, level: &str) -> Result<(), String> {
        let filter = filter_for(level)?;
        self.0.reload(filter).map_err(|e| e.to_string())
    }
}

/// Caps for other crates' log targets (a target matches a prefix, so `aws_smithy`
/// covers every `aws_smithy_*` crate and `hyper` also `hyper_util`/`hyper_rustls`).
/// They hold whatever `log_level` says, and `RUST_LOG` is not read, so no setting
/// turns them up. What they would print below the cap (checked in their sources):
/// * `aws_sigv4` (off: it has no WARN or ERROR events at all): at TRACE the request
///   being signed, the signing parameters (the access key id, the session token's
///   presence), the canonical request and the string to sign.
/// * `aws_smithy` (runtime, runtime-api, http-client, http): at TRACE every request
///   and response as sent (the Authorization header's credential scope), "resolved
///   identity" with the access key id; at INFO "refreshing the identity to ..." (the
///   same); at DEBUG endpoint parameters and retries.
/// * `aws_config`, `aws_runtime`, `aws_credential_types`, `aws_types`, `aws_sdk`: at
///   INFO "loaded base credentials" with the access key id; IMDS and SSO token steps
///   at DEBUG and TRACE. Their WARN and ERROR lines carry no credential.
/// * `hyper`, `h2`, `rustls`: at DEBUG and TRACE connection internals, headers and
///   frames (hyper and h2 trace request heads).
/// * `tokio_postgres`, `postgres_protocol`: at DEBUG statements and parameters.
///
/// Their WARN and ERROR lines still come through: a failing credential provider or a
/// TLS failure is worth seeing, and those messages name no secret.
pub const CAPS: &[(&str, &str)] = &[
    ("aws_sigv4", "off"),
    ("aws_smithy", "warn"),
    ("aws_config", "warn"),
    ("aws_runtime", "warn"),
    ("aws_credential_types", "warn"),
    ("aws_types", "warn"),
    ("aws_sdk", "warn"),
    ("hyper", "warn"),
    ("h2", "warn"),
    ("rustls", "warn"),
    ("tokio_postgres", "warn"),
    ("postgres_protocol", "warn"),
];

/// The filter directives: every other crate at warn, the capped ones at their cap,
/// our own crate at `level`.
pub fn directives(level: &str) -> String {
    let mut d = String::from("warn");
    for (target, cap) in CAPS {
        d.push_str(&format!(",{target}={cap}"));
    }
    d.push_str(&format!(",vip_arbiter={level}"));
    d
}

fn filter_for(level: &str) -> Result<EnvFilter, String> {
    // Built from our directives only: RUST_LOG is deliberately not consulted.
    EnvFilter::builder()
        .with_regex(false)
        .parse(directives(level))
        .map_err(|e| format!("log_level {level:?}: {e}"))
}

/// Install the global subscriber. Call once.
pub fn init(level: &str) -> Result<LevelHandle, String> {
    let (filter, handle) = reload::Layer::new(filter_for(level)?);
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let journald = if under_systemd {
        tracing_journald::layer().ok()
    } else {
        None
    };
    let output = match journald {
        Some(j) => j.with_syslog_identifier("vip-arbiter".into()).boxed(),
        None => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(LevelHandle(handle))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Collects what the fmt layer writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const SECRET: &str = "aws-secret-planted-9d2c";

    /// TRACE, DEBUG and INFO events carrying a secret, under each (literal) target.
    macro_rules! below_warn {
        ($($target:literal),* $(,)?) => {$(
            tracing::trace!(target: $target, secret = SECRET, "{} {SECRET}", $target);
            tracing::debug!(target: $target, secret = SECRET, "{} {SECRET}", $target);
            tracing::info!(target: $target, secret = SECRET, "{} {SECRET}", $target);
        )*};
    }

    #[test]
    fn trace_level_never_unlocks_the_capped_crates() {
        let out = Capture::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(filter_for("trace").expect("filter"))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || writer.clone())
                    .with_ansi(false),
            );
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "vip_arbiter::daemon", "own-trace-line");
            tracing::warn!(target: "aws_smithy_runtime::client", "sdk-warn-line");
            below_warn!(
                "aws_sigv4::http_request::sign",
                "aws_smithy_runtime::client::orchestrator",
                "aws_smithy_runtime_api::client::interceptors",
                "aws_smithy_http_client::hyper_1",
                "aws_config::profile::credentials",
                "aws_config::imds::client::token",
                "aws_runtime::auth::sigv4",
                "aws_credential_types::provider",
                "aws_types::sdk_config",
                "aws_sdk_ec2::config",
                "aws_sdk_sts::config",
                "hyper::proto::h1::role",
                "hyper_util::client::legacy::pool",
                "h2::codec::framed_write",
                "rustls::client::hs",
                "tokio_postgres::connect_raw",
                "postgres_protocol::authentication::sasl",
            );
            tracing::error!(target: "aws_sigv4::http_request::sign", "sigv4-error-line");
        });
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        assert!(text.contains("own-trace-line"), "{text}");
        assert!(text.contains("sdk-warn-line"), "WARN still passes: {text}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(
            !text.contains("sigv4-error-line"),
            "aws_sigv4 is off: {text}"
        );
    }

    #[test]
    fn every_level_builds_a_filter_with_the_caps() {
        for level in ["error", "warn", "info", "debug", "trace"] {
            let d = directives(level);
            assert!(d.starts_with("warn,aws_sigv4=off,"), "{d}");
            assert!(d.ends_with(&format!(",vip_arbiter={level}")), "{d}");
            filter_for(level).expect("valid");
        }
    }
}
