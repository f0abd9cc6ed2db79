//! The journal on disk (`aws.state_file`): one small JSON file, written whole and
//! durably (temp file, fsync, rename, fsync of the directory), so a daemon killed at
//! any point finds either the old journal or the new one, never half of one.
//!
//! Times are `Tick`s on the boot clock (`pass::journal::boot_time`); the file also
//! keeps the boot id and the wall clock it was written at. Loaded in the same boot,
//! times are used as they are; after a reboot each is moved by the wall-clock time
//! that passed, and never later than "now" (a time that cannot be placed counts as
//! just now: every wait it starts is as long as it can be, never shorter).
//!
//! Files written before the journal (the bare fence, `{"by":…,"holder":…}`) are read
//! as a journal that keeps only the fence.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::decide::{Fenced, Memory};
use crate::core::observation::Tick;
use crate::pass::journal::{Journal, Loaded};

const VERSION: u32 = 2;

#[derive(serde::Serialize, serde::Deserialize)]
struct OnDisk {
    version: u32,
    boot_id: String,
    /// The boot clock and the wall clock (seconds since the epoch) at the write.
    tick: Duration,
    wall: f64,
    memory: Memory,
}

/// The state file at `path`.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    /// This boot's id, read once (it cannot change while the process runs).
    boot_id: String,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile {
            path: path.into(),
            boot_id: boot_id(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Move a time of another boot onto this one: `then` was `saved_tick - t` before the
/// write, and the write was `elapsed` ago by the wall clock.
fn carry(t: Tick, saved_tick: Tick, elapsed: Duration, now: Tick) -> Tick {
    let ago = saved_tick.saturating_sub(t) + elapsed;
    now.saturating_sub(ago).min(now)
}

impl StateFile {
    fn parse(&self, text: &str, now: Tick) -> Result<Loaded, String> {
        let complete = |memory| Loaded {
            memory,
            complete: true,
        };
        if let Ok(d) = serde_json::from_str::<OnDisk>(text) {
            if d.version > VERSION {
                return Err(format!(
                    "written by a newer vip-arbiter (version {})",
                    d.version
                ));
            }
            if !d.boot_id.is_empty() && d.boot_id == self.boot_id && d.tick <= now {
                return Ok(complete(d.memory));
            }
            let elapsed =
                Duration::try_from_secs_f64((wall_now() - d.wall).max(0.0)).unwrap_or_default();
            return Ok(complete(
                d.memory.map_ticks(|t| carry(t, d.tick, elapsed, now)),
            ));
        }
        match serde_json::from_str::<Fenced>(text) {
            Ok(f) => Ok(Loaded {
                memory: Memory {
                    fenced: Some(f),
                    ..Memory::default()
                },
                complete: false,
            }),
            Err(e) => Err(format!("unreadable: {e}")),
        }
    }

    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }
}

impl Journal for StateFile {
    fn load(&mut self, now: Tick) -> Result<Option<Loaded>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        self.parse(&text, now)
            .map(Some)
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    fn save(&mut self, mem: &Memory, now: Tick) -> Result<(), String> {
        let d = OnDisk {
            version: VERSION,
            boot_id: self.boot_id.clone(),
            tick: now,
            wall: wall_now(),
            memory: mem.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&d).map_err(|e| e.to_string())?;
        self.write(&bytes)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::claim::Claim;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn sample() -> Memory {
        let mut m = Memory::default();
        m.cloud.took_at = Some(S(1000));
        m.cloud.took_timeline = Some(6);
        m.cloud.held_max = Some(6);
        m.cloud.claimed_at = Some(Claim {
            timeline: 6,
            node_id: 2,
            system_id: Some(7),
        });
        m.overridden = Some(Claim {
            timeline: 5,
            node_id: 1,
            system_id: None,
        });
        m
    }

    #[test]
    fn round_trips_in_the_same_boot() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = StateFile::new(dir.path().join("state.json"));
        assert_eq!(f.load(S(2000)).unwrap(), None);
        f.save(&sample(), S(1001)).unwrap();
        let l = f.load(S(2000)).unwrap().unwrap();
        assert!(l.complete);
        assert_eq!(l.memory, sample());
        assert!(!dir.path().join("state.tmp").exists());
    }

    #[test]
    fn after_a_reboot_times_move_back_by_the_wall_clock_never_later_than_now() {
        let f = StateFile::new("/nonexistent");
        let d = OnDisk {
            version: VERSION,
            boot_id: "another boot".into(),
            tick: S(1010),
            wall: wall_now() - 100.0,
            memory: sample(),
        };
        // 10 s before the write, the write 100 s ago: 110 s before now (5000 s).
        let m = f
            .parse(&serde_json::to_string(&d).unwrap(), S(5000))
            .unwrap()
            .memory;
        let took = m.cloud.took_at.unwrap();
        assert!(took >= S(4889) && took <= S(4891), "{took:?}");
        // Booted 30 s ago: what cannot be placed counts as at boot (never in the future).
        let m = f
            .parse(&serde_json::to_string(&d).unwrap(), S(30))
            .unwrap()
            .memory;
        assert_eq!(m.cloud.took_at, Some(Duration::ZERO));
        assert_eq!(m.cloud.took_timeline, Some(6));
    }

    #[test]
    fn reads_the_old_fence_file_and_refuses_garbage() {
        let f = StateFile::new("/nonexistent");
        let old = r#"{"by":{"timeline":6,"node_id":2,"system_id":null},"holder":"eni-1"}"#;
        let l = f.parse(old, S(1)).unwrap();
        assert!(!l.complete, "only the fence: a careful start");
        assert_eq!(l.memory.fenced.unwrap().by.timeline, 6);
        assert!(f.parse("{\"half", S(1)).is_err());
        let newer = serde_json::json!({"version": 99, "boot_id": "", "tick": {"secs": 1, "nanos": 0}, "wall": 0.0, "memory": {}});
        assert!(
            f.parse(&newer.to_string(), S(1))
                .unwrap_err()
                .contains("newer")
        );
    }

    #[test]
    fn a_write_that_cannot_happen_is_an_error_not_a_panic() {
        let mut f = StateFile::new("/proc/vip-arbiter-no/state.json");
        assert!(f.save(&sample(), S(1)).is_err());
    }
}
