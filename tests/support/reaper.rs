//! The one cleanup guard of the suite. A [`Reaper`] owns what a test started (child
//! processes, and cleanup steps for namespaces, PostgreSQL clusters, files) and undoes
//! it on drop, newest first, also when the test panics. For the case where the test
//! process dies without unwinding (SIGKILL from a timeout), it can hold a watchdog: a
//! shell in its own process group (a kill of the test's group spares it) blocked on
//! stdin, which runs its script once that pipe closes, i.e. when this process is gone
//! however it went. On an ordinary drop the steps have already run, so the script finds
//! nothing left to do.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

enum Item {
    Child(Child),
    Step(Box<dyn FnOnce()>),
}

#[derive(Default)]
pub struct Reaper {
    items: Vec<Item>,
    watchdog: Option<Child>,
}

impl Reaper {
    /// A guard with nothing in it yet and no watchdog.
    pub fn new() -> Reaper {
        Reaper::default()
    }

    /// A guard whose watchdog (`label` in `ps`) runs `/bin/sh -c script label args…`
    /// when this process is gone.
    pub fn watching<I, S>(label: &str, script: &str, args: I) -> Reaper
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let watchdog = Command::new("/bin/sh")
            .args(["-c", script, label])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the {label} watchdog: {e}"));
        Reaper {
            items: Vec::new(),
            watchdog: Some(watchdog),
        }
    }

    /// Own `child`: SIGKILLed and waited for on drop (or by `reap`).
    pub fn own(&mut self, child: Child) -> &mut Reaper {
        self.items.push(Item::Child(child));
        self
    }

    /// Run `step` on drop (or by `reap`), before the steps and children added earlier.
    pub fn then(&mut self, step: impl FnOnce() + 'static) -> &mut Reaper {
        self.items.push(Item::Step(Box::new(step)));
        self
    }

    /// The child owned last, if it is still owned.
    pub fn child(&self) -> Option<&Child> {
        self.items.iter().rev().find_map(|i| match i {
            Item::Child(c) => Some(c),
            Item::Step(_) => None,
        })
    }

    /// `child`, to wait on.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.items.iter_mut().rev().find_map(|i| match i {
            Item::Child(c) => Some(c),
            Item::Step(_) => None,
        })
    }

    /// Every child still owned, oldest first.
    pub fn children_mut(&mut self) -> impl Iterator<Item = &mut Child> {
        self.items.iter_mut().filter_map(|i| match i {
            Item::Child(c) => Some(c),
            Item::Step(_) => None,
        })
    }

    /// Give up the child owned last (the caller stops it in its own way).
    pub fn take_child(&mut self) -> Option<Child> {
        let at = self
            .items
            .iter()
            .rposition(|i| matches!(i, Item::Child(_)))?;
        match self.items.remove(at) {
            Item::Child(c) => Some(c),
            Item::Step(_) => unreachable!("rposition found a child"),
        }
    }

    /// Undo everything owned so far, now, newest first; the watchdog stays.
    pub fn reap(&mut self) {
        while let Some(item) = self.items.pop() {
            match item {
                Item::Child(c) => kill(c),
                Item::Step(step) => step(),
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.reap();
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take()); // EOF: it finds nothing left to do and exits
            let _ = watchdog.wait();
        }
    }
}

/// SIGKILL `child` and wait for it.
pub fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGTERM `child` and wait up to `limit` for it to exit (its exit code); past that,
/// SIGKILL it and panic with `what`.
pub fn terminate(mut child: Child, limit: Duration, what: &str) -> Option<i32> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        if started.elapsed() > limit {
            kill(child);
            panic!("{what} did not stop within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
