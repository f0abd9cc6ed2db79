//! Backoff for failing cloud calls: exponential with jitter, pure arithmetic.
//!
//! Schedule with the defaults (base 1 s, factor 2, cap 30 s) before jitter:
//! 1 s, 2 s, 4 s, 8 s, 16 s, 30 s, 30 s, ... Jitter scales each delay by a factor in
//! [0.5, 1.0], so many nodes throttled together do not retry in step. The caller
//! supplies the random number, so the schedule is testable without a clock or RNG.
//! A success resets the failure count.

use std::time::Duration;

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
