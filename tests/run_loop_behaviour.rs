//! The loop over fakes, in real time with short intervals: kicks coalesce, a reload
//! with a broken config keeps the old one, stop honours `on_stop`, a second signal
//! forces the stop, and the health snapshot is published after each pass.

mod support;

use support::testbed::rt;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use support::fakes::{self, Fake};
use vip_arbiter::core::decide::Policy;
use vip_arbiter::core::observation::{PgRole, PgView, RepmgrSays};
use vip_arbiter::daemon::shutdown::Shutdown;
use vip_arbiter::health::metrics::Metrics;
use vip_arbiter::health::state::{HealthState, Identity};
use vip_arbiter::pass::reconcile::{Limits, World};
use vip_arbiter::pass::run_loop::{self, Control, LoopConfig, Reload};

fn cfg(interval: Duration, release_on_stop: bool) -> LoopConfig {
    LoopConfig {
        policy: Policy {
            node_id: 1,
            prefix_len: 32,
            pg_unknown_hold: Duration::from_secs(10),
            cloud: None,
        },
        interval,
        limits: Limits {
            observe: Duration::from_secs(1),
            cloud: Duration::from_secs(1),
            step: Duration::from_secs(1),
        },
        state_file: None,
        release_on_stop,
    }
}

type Slot = Arc<std::sync::Mutex<Result<LoopConfig, String>>>;

/// Hands out whatever the test put in the slot; counts calls.
struct ScriptedReload {
    next: Result<LoopConfig, String>,
    calls: Arc<AtomicU32>,
}

struct SlotReload {
    slot: Slot,
    calls: Arc<AtomicU32>,
}

impl Reload for SlotReload {
    fn reload(&mut self) -> Result<LoopConfig, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.slot.lock().expect("lock").clone()
    }
}

struct Harness {
    state: fakes::Shared,
    health: Arc<HealthState>,
    shutdown: Shutdown,
}

fn passes(h: &Harness) -> u64 {
    h.health.current().map_or(0, |s| s.pass_count)
}

/// What `POST /kick` does.
fn kick(h: &Harness) {
    vip_arbiter::health::server::HealthSource::kick(h.health.as_ref());
}

/// Run the loop until `script` returns, then stop it and wait for it to finish.
async fn with_loop<F, Fut>(config: LoopConfig, reload: ScriptedReload, script: F) -> Harness
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    with_world(fakes::shared(), config, reload, rx, |h, _| script(h)).await
}

/// The loop over a given fake world (so a test can restart the daemon on the same one),
/// with SIGHUPs from `hangups` and the reload's next answer in the `Slot`.
async fn with_world<F, Fut>(
    state: fakes::Shared,
    config: LoopConfig,
    reload: ScriptedReload,
    hangups: tokio::sync::mpsc::Receiver<()>,
    script: F,
) -> Harness
where
    F: FnOnce(Arc<Harness>, Slot) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let slot: Slot = Arc::new(std::sync::Mutex::new(reload.next));
    let reload = SlotReload {
        slot: slot.clone(),
        calls: reload.calls,
    };
    let (health, kicks) = HealthState::new(Arc::new(Metrics::default()));
    let shutdown = Shutdown::new();
    let f = Fake(state.clone());
    let mut world = World {
        pg: f.clone(),
        kernel: f.clone(),
        cloud: f.clone(),
        fencer: f,
    };
    let ctl = Control {
        health: health.clone(),
        identity: Identity {
            node_id: 1,
            vip: "10.77.0.100".into(),
            interface: "ens5".into(),
        },
        kicks,
        shutdown: shutdown.clone(),
        reload,
        hangups: Some(hangups),
        journals: vip_arbiter::daemon::journal_for,
    };
    let h = Arc::new(Harness {
        state,
        health,
        shutdown,
    });
    let looping = run_loop::run(&mut world, config, ctl);
    let driver = async {
        script(h.clone(), slot).await;
        h.shutdown.trigger();
    };
    tokio::join!(looping, driver);
    Arc::try_unwrap(h).unwrap_or_else(|_| panic!("harness still shared"))
}

fn no_reload() -> ScriptedReload {
    ScriptedReload {
        next: Err("not used".into()),
        calls: Arc::new(AtomicU32::new(0)),
    }
}

#[test]
fn kick_burst_is_one_pass() {
    let h = rt().block_on(with_loop(
        cfg(Duration::from_secs(3600), false),
        no_reload(),
        |h| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(passes(&h), 1, "startup pass only");
            for _ in 0..50 {
                kick(&h);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(passes(&h), 2, "50 kicks in a burst make one pass");
            kick(&h);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(passes(&h), 3, "a later kick makes another");
        },
    ));
    let snap = h.health.current().expect("snapshot");
    assert_eq!(snap.verdict_kind, "holding");
    assert!(snap.converged);
}

#[test]
fn interval_drives_passes_without_kicks() {
    rt().block_on(with_loop(
        cfg(Duration::from_millis(100), false),
        no_reload(),
        |h| async move {
            tokio::time::sleep(Duration::from_millis(1050)).await;
            let n = passes(&h);
            assert!(
                (5..=12).contains(&n),
                "about ten passes in a second at 100 ms: {n}"
            );
        },
    ));
}

#[test]
fn a_promotion_repmgr_has_not_recorded_is_followed_closely_then_the_pace_returns() {
    let h = rt().block_on(with_loop(
        cfg(Duration::from_secs(3600), false),
        no_reload(),
        |h| async move {
            // A standby at a 1 h interval: the startup pass, then nothing.
            h.state.lock().expect("lock").pg = Some(fakes::standby());
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(passes(&h), 1, "startup pass only");
            // Promoted: out of recovery, repmgr still says standby. A kick makes the
            // loop see it; from then on it looks every FOLLOW_INTERVAL (100 ms).
            h.state.lock().expect("lock").pg = Some(PgView::Known {
                role: PgRole::Primary { timeline: 2 },
                repmgr: RepmgrSays::SelfNotPrimary,
            });
            kick(&h);
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let following = passes(&h);
            assert!(
                following >= 5,
                "passes about every 100 ms while the promotion is pending: {following}"
            );
            assert_eq!(h.state.lock().expect("lock").kernel, None, "nothing added");
            // repmgr records it: the next follow-up pass takes the VIP, then the 1 h
            // interval is back.
            h.state.lock().expect("lock").pg = Some(fakes::primary(2));
            tokio::time::sleep(Duration::from_millis(400)).await;
            let after = passes(&h);
            assert_eq!(h.state.lock().expect("lock").kernel, Some(32), "VIP added");
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(passes(&h), after, "no passes at the 1 h pace");
            // The pass that added the VIP said `acquiring`; the next one holds.
            kick(&h);
            tokio::time::sleep(Duration::from_millis(100)).await;
        },
    ));
    let snap = h.health.current().expect("snapshot");
    assert_eq!(snap.verdict_kind, "holding");
}

#[test]
fn stop_keeps_the_address_by_default_and_releases_on_request() {
    // 200 ms of passes at 50 ms, then stop.
    let run_then_stop = |release_on_stop| {
        rt().block_on(with_loop(
            cfg(Duration::from_millis(50), release_on_stop),
            no_reload(),
            |_| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
        ))
    };
    let h = run_then_stop(false);
    assert_eq!(
        h.state.lock().expect("lock").kernel,
        Some(32),
        "on_stop = keep"
    );
    let h = run_then_stop(true);
    let w = h.state.lock().expect("lock");
    assert_eq!(w.kernel, None, "on_stop = release");
    assert_eq!(w.kernel_ops.last(), Some(&"remove"));
}

#[test]
fn broken_reload_keeps_old_config_and_good_one_applies() {
    let calls = Arc::new(AtomicU32::new(0));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let reload = ScriptedReload {
        next: Err("vip: \"x\" is not an IPv4 address".into()),
        calls: calls.clone(),
    };
    let fast = cfg(Duration::from_millis(50), false);
    rt().block_on(with_world(
        fakes::shared(),
        cfg(Duration::from_secs(3600), false),
        reload,
        rx,
        |h, reload_next| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(()).await.expect("hangup");
            tokio::time::sleep(Duration::from_millis(300)).await;
            // The refused reload left the 1 h interval in force: only startup + the reload pass.
            assert_eq!(passes(&h), 2, "old config kept");
            *reload_next.lock().expect("lock") = Ok(fast);
            tx.send(()).await.expect("hangup");
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                passes(&h) >= 5,
                "new 50 ms interval applied: {}",
                passes(&h)
            );
        },
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn pg_down_is_reported_and_counted() {
    let h = rt().block_on(with_loop(
        cfg(Duration::from_millis(50), false),
        no_reload(),
        |h| async move {
            tokio::time::sleep(Duration::from_millis(120)).await;
            h.state.lock().expect("lock").pg = None;
            tokio::time::sleep(Duration::from_millis(200)).await;
        },
    ));
    let snap = h.health.current().expect("snapshot");
    assert_eq!(snap.verdict_kind, "pg-unknown-holding");
    assert_eq!(snap.role, "unknown");
    assert!(!snap.converged);
    assert_eq!(snap.check_line().0, 1, "WARNING while holding");
    let metrics = h.health.metrics.prometheus();
    assert!(
        metrics.contains("vip_arbiter_observer_failures_total{observer=\"pg\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vip_arbiter_verdict{verdict=\"pg-unknown-holding\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_wedged_pass_is_abandoned_on_the_second_signal() {
    let mut config = cfg(Duration::from_millis(100), false);
    config.limits.observe = Duration::from_secs(3600);
    let started = std::time::Instant::now();
    let h = rt().block_on(with_loop(config, no_reload(), |h| async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        h.state.lock().expect("lock").pg_hangs = true;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stuck_at = passes(&h);
        h.shutdown.trigger();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            passes(&h),
            stuck_at,
            "the wedged pass is still running after the first signal"
        );
        // The driver's own trigger after this closure is the second signal: forced.
    }));
    assert!(h.shutdown.is_shutting_down());
    // Without the force the loop would wait STOP_GRACE for the wedged pass.
    assert!(
        started.elapsed() < run_loop::STOP_GRACE,
        "forced stop took {:?}",
        started.elapsed()
    );
}

/// A fenced node stays fenced across a daemon restart (the fence file), runs the
/// fence command once per incident in all, and is cleared by `POST /unfence`.
#[test]
fn a_fence_outlives_a_restart_runs_the_fence_command_once_and_unfence_clears_it() {
    use vip_arbiter::core::claim::Claim;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fence.json");
    let mut config = cfg(Duration::from_millis(100), false);
    config.policy.cloud = Some(vip_arbiter::core::decide::CloudPolicy {
        verify_interval: Duration::from_secs(30),
        cloud_unknown_hold: Duration::from_secs(300),
        consistency_bound: Duration::from_secs(60),
        backoff: vip_arbiter::core::backoff::Backoff::default(),
        fence_configured: true,
    });
    config.state_file = Some(file.clone());
    let world = fakes::shared();
    {
        let mut w = world.lock().expect("lock");
        w.pg = Some(fakes::primary(5));
        w.kernel = Some(32);
        w.holder = None;
        // Node 2 took the VIP at timeline 6; its instance (and ENI) are gone, its
        // mark on the subnet stays.
        w.marks.insert(
            2,
            Claim {
                timeline: 6,
                node_id: 2,
                system_id: None,
            },
        );
    }
    let run = |world: fakes::Shared, script: Script| {
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        rt().block_on(with_world(
            world,
            config.clone(),
            no_reload(),
            rx,
            move |h, _| script(h),
        ))
    };
    let h = run(world.clone(), |h| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                h.health.current().expect("snapshot").verdict_kind,
                "stale-primary"
            );
        })
    });
    drop(h);
    assert!(file.exists(), "the fence is on disk");
    {
        let w = world.lock().expect("lock");
        assert_eq!(w.fences, vec!["node 2 (mark on the subnet)".to_owned()]);
        assert_eq!(w.kernel, None, "kernel address removed");
        assert_eq!(w.holder, None, "never took the VIP");
    }
    // The mark is gone now (deleted by hand, or not visible): after a restart the node
    // is still fenced, and the fence command does not run again.
    world.lock().expect("lock").marks.clear();
    run(world.clone(), |h| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                h.health.current().expect("snapshot").verdict_kind,
                "stale-primary"
            );
            // The operator clears it: the next pass takes the VIP (nothing forbids it now).
            vip_arbiter::health::server::HealthSource::unfence(h.health.as_ref());
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                h.health.current().expect("snapshot").verdict_kind,
                "holding"
            );
        })
    });
    // The journal stays, without the fence, and remembers the claim it was cleared
    // from: a restart does not fence again from that claim nor run the command again.
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("the journal")).expect("json");
    assert!(kept["memory"]["fenced"].is_null(), "{kept}");
    assert_eq!(kept["memory"]["overridden"]["timeline"], 6, "{kept}");
    let w = world.lock().expect("lock");
    assert_eq!(w.fences.len(), 1, "the fence command ran once in all");
    assert_eq!(w.holder.as_deref(), Some(fakes::ME));
}

/// The EC2-mode config the journal tests run with, its state file at `file`.
fn journaled(file: &std::path::Path) -> LoopConfig {
    let mut config = cfg(Duration::from_millis(100), false);
    config.policy.cloud = Some(vip_arbiter::core::decide::CloudPolicy {
        verify_interval: Duration::from_secs(30),
        cloud_unknown_hold: Duration::from_secs(300),
        consistency_bound: Duration::from_secs(60),
        backoff: vip_arbiter::core::backoff::Backoff::default(),
        fence_configured: false,
    });
    config.state_file = Some(file.to_owned());
    config
}

type Script = fn(Arc<Harness>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// One daemon run over `world` with `config`, for `script`'s length.
fn daemon_run(world: &fakes::Shared, config: &LoopConfig, script: Script) {
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    rt().block_on(with_world(
        world.clone(),
        config.clone(),
        no_reload(),
        rx,
        move |h, _| script(h),
    ));
}

fn verdict(h: &Harness) -> String {
    h.health.current().expect("snapshot").verdict_kind.clone()
}

/// One daemon run over `world`: after a few passes its verdict is `want`.
fn run_expecting(world: &fakes::Shared, config: &LoopConfig, want: &'static str, after: Duration) {
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    rt().block_on(with_world(
        world.clone(),
        config.clone(),
        no_reload(),
        rx,
        move |h, _| async move {
            tokio::time::sleep(after).await;
            assert_eq!(verdict(&h), want);
        },
    ));
}

/// A state file in a fresh directory, the EC2-mode config that keeps it, a fake world.
fn journal_world() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    LoopConfig,
    fakes::Shared,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let config = journaled(&file);
    (dir, file, config, fakes::shared())
}

/// Issue 18: a daemon killed after a takeover starts again knowing it: the journal
/// (write-ahead, then settled) keeps when it assigned, so a "nobody" read within the
/// bound after that assign is not taken at once (it may predate the assign and hide
/// a node that took the VIP since), exactly as if the daemon had not stopped.
#[test]
fn a_restart_continues_from_the_journal() {
    use vip_arbiter::core::claim::Claim;
    let (_dir, file, config, world) = journal_world();
    {
        let mut w = world.lock().expect("lock");
        w.pg = Some(fakes::primary(6));
        w.holder = Some(fakes::OTHER.into());
        let old = Claim {
            timeline: 5,
            node_id: 2,
            system_id: None,
        };
        w.tags.insert(fakes::OTHER.into(), old);
        w.marks.insert(2, old);
    }
    run_expecting(&world, &config, "holding", Duration::from_millis(300));
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("journal")).expect("json");
    assert_eq!(kept["memory"]["cloud"]["took_timeline"], 6, "{kept}");
    // The VIP vanishes (an ENI detached, a read that lags): after the restart the node
    // waits the bound from its own assign instead of taking it at once.
    world.lock().expect("lock").holder = None;
    run_expecting(&world, &config, "ec2-settling", Duration::from_millis(300));
    assert_eq!(world.lock().expect("lock").holder, None, "not taken again");
    // Without the journal (deleted), a careful start waits too: its mark is there.
    std::fs::remove_file(&file).expect("rm");
    run_expecting(&world, &config, "ec2-settling", Duration::from_millis(300));
    assert_eq!(world.lock().expect("lock").holder, None, "not taken again");
}

/// Issue 18, sequence 1: the holder's daemon restarts while every EC2 call fails. The
/// address stays (the VPC still delivers to this ENI) and is CRITICAL only past the
/// hold; before, the first failed describe with an empty memory removed it.
#[test]
fn a_restart_during_an_ec2_outage_keeps_the_address() {
    let (_dir, file, config, world) = journal_world();
    {
        let mut w = world.lock().expect("lock");
        w.pg = Some(fakes::primary(5));
        w.holder = Some(fakes::ME.into());
        w.kernel = Some(32);
    }
    run_expecting(&world, &config, "holding", Duration::from_millis(300));
    for journal in [true, false] {
        if !journal {
            std::fs::remove_file(&file).expect("rm");
        }
        {
            let mut w = world.lock().expect("lock");
            w.ec2_failures = 1_000;
            w.ec2_failure_code = "ServiceUnavailable".into();
        }
        run_expecting(&world, &config, "cloud-unknown", Duration::from_millis(500));
        let w = world.lock().expect("lock");
        assert_eq!(w.kernel, Some(32), "journal {journal}: the address stays");
        assert!(!w.kernel_ops.contains(&"remove"), "{:?}", w.kernel_ops);
    }
}

/// A takeover that cannot be journaled first is not made, and the verdict is
/// CRITICAL until the state file can be written again.
#[test]
fn an_unwritable_state_file_blocks_the_takeover_and_is_critical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("no-such-dir").join("state.json");
    let config = journaled(&file);
    let world = fakes::shared();
    {
        let mut w = world.lock().expect("lock");
        w.pg = Some(fakes::primary(3));
        w.holder = None;
    }
    daemon_run(&world, &config, |h| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let s = h.health.current().expect("snapshot");
            assert_eq!(s.verdict_kind, "action-failed");
            assert_eq!(s.severity, "critical");
            assert!(s.verdict.contains("write_state_file"), "{}", s.verdict);
        })
    });
    {
        let w = world.lock().expect("lock");
        assert_eq!(w.holder, None);
        assert!(
            !w.ec2_calls.contains(&"AssignPrivateIpAddresses"),
            "{:?}",
            w.ec2_calls
        );
        assert!(!w.ec2_calls.contains(&"CreateTags"), "{:?}", w.ec2_calls);
    }
    // The directory appears: the next run takes the VIP.
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    run_expecting(&world, &config, "holding", Duration::from_millis(300));
}

/// One notification as the test's NOTIFY_SOCKET received it, and when.
struct Note {
    at: std::time::Instant,
    text: String,
}

/// Run `watchdog_child` in a child process (the environment is process-wide) with
/// NOTIFY_SOCKET bound here and WATCHDOG_USEC = 400 ms; collect what it sends.
fn notes_from_child(extra_env: &[(&str, &str)]) -> Vec<Note> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "watchdog_child", "--ignored", "--nocapture"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .envs(extra_env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run child");
    let started = std::time::Instant::now();
    let mut notes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => notes.push(Note {
                at: std::time::Instant::now(),
                text: String::from_utf8_lossy(&buf[..n]).into_owned(),
            }),
            Err(_) => {
                if child.try_wait().expect("child").is_some() {
                    break;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "child did not finish"
        );
    }
    let out = child.wait_with_output().expect("child output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran: {text}");
    notes
}

fn is_watchdog(n: &Note) -> bool {
    n.text.lines().any(|l| l == "WATCHDOG=1")
}

#[test]
fn the_watchdog_is_fed_between_passes_but_not_during_a_wedged_pass() {
    let notes = notes_from_child(&[]);
    let texts: Vec<&str> = notes.iter().map(|n| n.text.as_str()).collect();
    assert!(texts[0].contains("READY=1"), "{texts:?}");
    let hang = notes
        .iter()
        .position(|n| n.text == "X_TEST=hang")
        .unwrap_or_else(|| panic!("no marker: {texts:?}"));
    // Between passes (interval 5 s, so only the startup pass ran): fed every ~200 ms.
    let fed: Vec<std::time::Instant> = notes[..hang]
        .iter()
        .filter(|n| is_watchdog(n))
        .map(|n| n.at)
        .collect();
    assert!(fed.len() >= 6, "about 7 feeds in 1.5 s: {texts:?}");
    let worst = fed
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .expect("two feeds");
    assert!(
        worst <= Duration::from_millis(320),
        "a gap of {worst:?} between feeds (WATCHDOG_USEC 400 ms): {texts:?}"
    );
    // During the wedged pass: nothing, so systemd's watchdog would fire.
    let during: Vec<&str> = notes[hang..]
        .iter()
        .filter(|n| is_watchdog(n))
        .map(|n| n.text.as_str())
        .collect();
    assert!(during.is_empty(), "fed during a wedged pass: {during:?}");
    assert!(
        notes[hang..].iter().any(|n| n.text.contains("STOPPING=1")),
        "{texts:?}"
    );
    assert!(
        notes[hang].at - fed[fed.len() - 1] < Duration::from_millis(400),
        "fed until the pass began"
    );
}

#[test]
fn a_watchdog_meant_for_another_process_is_not_fed_between_passes() {
    let notes = notes_from_child(&[("WATCHDOG_PID", "1")]);
    let texts: Vec<&str> = notes.iter().map(|n| n.text.as_str()).collect();
    let hang = notes
        .iter()
        .position(|n| n.text == "X_TEST=hang")
        .unwrap_or_else(|| panic!("no marker: {texts:?}"));
    let fed = notes[..hang].iter().filter(|n| is_watchdog(n)).count();
    assert_eq!(fed, 1, "only the startup pass's own WATCHDOG=1: {texts:?}");
}

#[test]
#[ignore = "run by the watchdog tests in a child process"]
fn watchdog_child() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let mut config = cfg(Duration::from_secs(5), false);
    config.limits.observe = Duration::from_secs(3600);
    rt().block_on(with_loop(config, no_reload(), |h| async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // A pass that never ends: PostgreSQL never answers and nothing bounds it.
        h.state.lock().expect("lock").pg_hangs = true;
        kick(&h);
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::os::unix::net::UnixDatagram::unbound()
            .expect("socket")
            .send_to(b"X_TEST=hang", &socket)
            .expect("marker");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(passes(&h), 1, "the kicked pass is still running");
        h.shutdown.trigger();
        // The driver's own trigger after this is the second signal: forced.
    }));
}
