//! sd_notify messages, each behind a named function. Without NOTIFY_SOCKET they do
//! nothing. NOTIFY_SOCKET is never unset, so STATUS, WATCHDOG and STOPPING keep
//! working after READY.
//!
//! The watchdog is fed after every completed pass and, while the loop waits between
//! passes, every half of `WATCHDOG_USEC` (`watchdog_feed_interval`), so a long
//! `interval` never trips `WatchdogSec=`; nothing feeds it during a pass, so a wedged
//! pass still does.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// After each completed pass: the watchdog is fed by progress, not by a timer.
pub fn pass_done(status: &str) {
    send(&[NotifyState::Watchdog, NotifyState::Status(status)]);
}

/// How often to feed the watchdog while waiting: half of `WATCHDOG_USEC`, as
/// sd_watchdog_enabled(3) advises; None when systemd asked for no watchdog, or
/// asked it of another process (`WATCHDOG_PID` set and not ours).
pub fn watchdog_feed_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

/// WATCHDOG=1 alone: the loop is alive and waiting for its next pass.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// STATUS= alone (e.g. what start-up is waiting for, before READY).
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn reloading() {
    send(&[NotifyState::Reloading]);
}

pub fn reloaded(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}
