//! Backoff for failing cloud calls: exponential with jitter, pure arithmetic.
//!
//! Schedule with the defaults (base 1 s, factor 2, cap 30 s) before jitter:
//! 1 s, 2 s, 4 s, 8 s, 16 s, 30 s, 30 s, ... Jitter scales each delay by a factor in
//! [0.5, 1.0], so many nodes throttled together do not retry in step. The caller
//! supplies the random number, so the schedule is testable without a clock or RNG.
//! A success resets the failure count.
//!
//! `delay_for` picks the schedule by the failure's cause: throttling backs off long
//! (the account's limit is shared by every tool in it), EC2 unavailable backs off
//! short while a takeover is pending (the VIP moves within a second or two of EC2's
//! return), and a refusal no retry fixes is tried no faster than once a
//! `verify_interval`.

use std::time::Duration;

use crate::core::observation::FailureKind;

/// Throttled calls: 2 s, 4 s … up to this, jittered.
pub const THROTTLED_MAX: Duration = Duration::from_secs(120);
/// EC2 unavailable (5xx, a timeout, no connection) while a takeover is pending.
pub const PENDING_MAX: Duration = Duration::from_secs(2);

/// The wait after `failures` consecutive failures of `kind`.
pub fn delay_for(
    backoff: &Backoff,
    kind: FailureKind,
    pending_takeover: bool,
    verify_interval: Duration,
    failures: u32,
    jitter: u32,
) -> Duration {
    match kind {
        FailureKind::NeedsOperator | FailureKind::NotFound => {
            backoff.delay(failures, jitter).max(verify_interval)
        }
        FailureKind::Throttled => Backoff {
            base: backoff.base.max(Duration::from_secs(2)),
            max: backoff.max.max(THROTTLED_MAX),
        }
        .delay(failures, jitter),
        FailureKind::Transient if pending_takeover => Backoff {
            base: backoff.base,
            max: backoff.max.min(PENDING_MAX),
        }
        .delay(failures, jitter),
        FailureKind::Transient => backoff.delay(failures, jitter),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Delay before the next try after `failures` consecutive failures (≥ 1).
    /// `jitter` is any u32; it picks a point in [0.5, 1.0] of the full delay.
    pub fn delay(&self, failures: u32, jitter: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        let fraction = 0.5 + 0.5 * (f64::from(jitter) / f64::from(u32::MAX));
        full.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_then_caps() {
        let b = Backoff::default();
        let full: Vec<u64> = (1..=8).map(|n| b.delay(n, u32::MAX).as_secs()).collect();
        assert_eq!(full, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.delay(3, 0), Duration::from_secs(2));
        assert_eq!(b.delay(u32::MAX, u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn each_cause_has_its_schedule() {
        let b = Backoff::default();
        let vi = Duration::from_secs(30);
        let full = |kind, pending, n| delay_for(&b, kind, pending, vi, n, u32::MAX).as_secs();
        // Throttling: long, and longer than the plain schedule.
        let throttled: Vec<u64> = (1..=8)
            .map(|n| full(FailureKind::Throttled, true, n))
            .collect();
        assert_eq!(throttled, vec![2, 4, 8, 16, 32, 64, 120, 120]);
        // Unavailable while a takeover is pending: never more than 2 s.
        let pending: Vec<u64> = (1..=6)
            .map(|n| full(FailureKind::Transient, true, n))
            .collect();
        assert_eq!(pending, vec![1, 2, 2, 2, 2, 2]);
        // Unavailable otherwise: the configured schedule.
        assert_eq!(full(FailureKind::Transient, false, 6), 30);
        // A refusal no retry fixes: never faster than verify_interval.
        for n in 1..=8 {
            assert!(full(FailureKind::NeedsOperator, true, n) >= 30);
            assert!(full(FailureKind::NotFound, false, n) >= 30);
        }
    }

    #[test]
    fn jitter_stays_in_band() {
        let b = Backoff::default();
        for j in [0, 1, u32::MAX / 3, u32::MAX / 2, u32::MAX] {
            let d = b.delay(4, j);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }
}
