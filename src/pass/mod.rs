//! One pass and the loop that runs passes: the observer traits and `gather()`
//! (`observe`), the actuator traits and `execute()` (`act`), one pass
//! (`reconcile`: observe → decide → act → settle), the journal trait that keeps
//! memory across restarts (`journal`) and the forever loop (`run_loop`).
//! Generic over the traits, so the tests drive them with fakes.

pub mod act;
pub mod journal;
pub mod observe;
pub mod reconcile;
pub mod run_loop;

/// Jitter for backoff schedules: the low bits of the wall clock, mixed. Spread is
/// all that matters. `core::backoff` only scales a delay by the number it is given.
pub fn jitter() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        .wrapping_mul(2_654_435_761)
}
