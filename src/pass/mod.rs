//! One pass and the loop that runs passes: the observer traits and `gather()`
//! (`observe`), the actuator traits and `execute()` (`act`), one pass
//! (`reconcile`: observe → decide → act → settle) and the forever loop (`run_loop`).
//! Generic over the traits, so the tests drive them with fakes.

pub mod act;
pub mod observe;
pub mod reconcile;
pub mod run_loop;
