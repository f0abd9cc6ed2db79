//! The journal: what a safety or liveness rule depends on, kept across restarts.
//!
//! `decide()`'s memory (its journaled part, `Memory::journaled`) is written before
//! the EC2 step it protects (the write-ahead intent, `decide::intend`) and after
//! every pass that changed it, and read at start. The file adapter lives in
//! `adapters::state_file`; `InMemory` is the double the tests use.

use crate::core::decide::{Memory, Policy};
use crate::core::observation::Tick;

/// Where the journal is kept.
pub trait Journal {
    /// The memory the last run left, at the clock of this run (`now`): `Ok(None)`
    /// when there is none yet, `Err` when there is one that cannot be read. Either
    /// way the daemon starts careful (`Memory::careful`), as it does from a journal
    /// that kept only part of the memory (`Loaded::complete` false: a fence file
    /// written before the journal).
    fn load(&mut self, now: Tick) -> Result<Option<Loaded>, String>;
    /// Keep `mem` (already journaled), durably, before returning `Ok`.
    fn save(&mut self, mem: &Memory, now: Tick) -> Result<(), String>;
}

/// What a journal held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub memory: Memory,
    pub complete: bool,
}

impl<J: Journal + ?Sized> Journal for Box<J> {
    fn load(&mut self, now: Tick) -> Result<Option<Loaded>, String> {
        (**self).load(now)
    }
    fn save(&mut self, mem: &Memory, now: Tick) -> Result<(), String> {
        (**self).save(mem, now)
    }
}

/// No journal (kernel-only mode): nothing kept, nothing fails.
#[derive(Debug, Default)]
pub struct Nowhere;

impl Journal for Nowhere {
    fn load(&mut self, _now: Tick) -> Result<Option<Loaded>, String> {
        Ok(None)
    }
    fn save(&mut self, _mem: &Memory, _now: Tick) -> Result<(), String> {
        Ok(())
    }
}

/// The in-memory double: what was saved last, and a switch that makes saves fail.
#[derive(Debug, Default, Clone)]
pub struct InMemory {
    pub saved: Option<Memory>,
    pub saves: u32,
    pub fail: Option<String>,
}

impl Journal for InMemory {
    fn load(&mut self, _now: Tick) -> Result<Option<Loaded>, String> {
        Ok(self.saved.clone().map(|memory| Loaded {
            memory,
            complete: true,
        }))
    }
    fn save(&mut self, mem: &Memory, _now: Tick) -> Result<(), String> {
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        self.saves += 1;
        self.saved = Some(mem.clone());
        Ok(())
    }
}

/// The clock `decide()` gets its `Tick` from: time since boot (CLOCK_BOOTTIME), which
/// goes on across a daemon restart and through a suspend, so the journal's times
/// mean the same after a restart. (After a reboot the journal adapter moves them.)
pub fn boot_time() -> Tick {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(std::time::Duration::from)
        .unwrap_or_default()
}

/// The journal with the last memory it kept: saves only what changed.
pub struct Kept<J> {
    inner: J,
    last: Option<Memory>,
    /// The last save failed (and why): the verdict is CRITICAL until one succeeds.
    pub failing: Option<String>,
}

impl<J: Journal> Kept<J> {
    pub fn new(inner: J) -> Self {
        Kept {
            inner,
            last: None,
            failing: None,
        }
    }

    pub fn inner(&self) -> &J {
        &self.inner
    }

    /// Load at start; the memory to start from and what to say about it: the
    /// journal's, or a careful start (`Memory::fresh` with no journal yet,
    /// `Memory::careful` with one that cannot be read).
    pub fn start(&mut self, now: Tick, policy: &Policy) -> (Memory, Start) {
        let careful = Memory::careful(now, policy);
        match self.inner.load(now) {
            Ok(Some(Loaded {
                memory,
                complete: true,
            })) => {
                self.last = Some(memory.journaled());
                (memory, Start::Journal)
            }
            Ok(Some(Loaded { memory, .. })) => (
                Memory {
                    fenced: memory.fenced,
                    ..careful
                },
                Start::Partial,
            ),
            Ok(None) => (Memory::fresh(now, policy), Start::NoJournal),
            Err(e) => (careful, Start::Unreadable(e)),
        }
    }

    /// Keep `mem`'s journaled part if it changed. `Err` when it could not be kept.
    pub fn keep(&mut self, mem: &Memory, now: Tick) -> Result<(), String> {
        let j = mem.journaled();
        if self.last.as_ref() == Some(&j) && self.failing.is_none() {
            return Ok(());
        }
        match self.inner.save(&j, now) {
            Ok(()) => {
                self.last = Some(j);
                self.failing = None;
                Ok(())
            }
            Err(e) => {
                self.failing = Some(e.clone());
                Err(e)
            }
        }
    }
}

/// How the journal was found at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Journal,
    /// Only the fence (a file from before the journal): careful, fence kept.
    Partial,
    NoJournal,
    Unreadable(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keeps_only_what_changed_and_remembers_a_failure() {
        let mut k = Kept::new(InMemory::default());
        let policy = Policy {
            node_id: 1,
            prefix_len: 32,
            pg_unknown_hold: Duration::ZERO,
            cloud: None,
        };
        let (m, start) = k.start(Duration::ZERO, &policy);
        assert_eq!(start, Start::NoJournal);
        k.keep(&m, Duration::ZERO).unwrap();
        k.keep(&m, Duration::ZERO).unwrap();
        assert_eq!(k.inner().saves, 1);
        let mut m2 = m.clone();
        m2.cloud.took_at = Some(Duration::from_secs(5));
        k.inner.fail = Some("ENOSPC".into());
        assert!(k.keep(&m2, Duration::ZERO).is_err());
        assert_eq!(k.failing.as_deref(), Some("ENOSPC"));
        k.inner.fail = None;
        k.keep(&m2, Duration::ZERO).unwrap();
        assert!(k.failing.is_none());
        assert_eq!(
            k.inner().saved.as_ref().unwrap().cloud.took_at,
            Some(Duration::from_secs(5))
        );
        // Only the journaled part is kept: the settled answer and the backoff are not.
        let mut m3 = m2.clone();
        m3.cloud.failures = 3;
        k.keep(&m3, Duration::ZERO).unwrap();
        assert_eq!(k.inner().saves, 2);
    }

    #[test]
    fn the_boot_clock_runs() {
        let a = boot_time();
        std::thread::sleep(Duration::from_millis(5));
        assert!(boot_time() > a && a > Duration::ZERO);
    }
}
