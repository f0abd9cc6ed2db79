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

fn filter_for(level: &str) -> Result<EnvFilter, String> {
    // Only our own crate logs at the configured level; dependencies stay at warn.
    EnvFilter::try_new(format!("warn,vip_arbiter={level}"))
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
