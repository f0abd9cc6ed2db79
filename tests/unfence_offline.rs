//! `vip-arbiter unfence` with no daemon running clears the fence in the state file's
//! journal and records the claim it was cleared from (so the next start neither fences
//! again from it nor runs `fence_command` again); the rest of the journal is kept.
//! Needs no root, no PostgreSQL and no EC2: only the config and the state file.

use std::process::Command;

use vip_arbiter::adapters::state_file::StateFile;
use vip_arbiter::core::claim::Claim;
use vip_arbiter::core::decide::{Fenced, Memory};
use vip_arbiter::pass::journal::{Journal as _, boot_time};

mod support;

#[test]
fn unfence_without_a_daemon_edits_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let repmgr = dir.path().join("repmgr.conf");
    std::fs::write(&repmgr, "node_id=1\nnode_name='n1'\nconninfo='host=/nonexistent dbname=repmgr user=repmgr'\ndata_directory='/nonexistent'\n").expect("repmgr.conf");
    let config = dir.path().join("vip-arbiter.toml");
    std::fs::write(
        &config,
        format!(
            "vip = \"10.77.0.100\"\ninterface = \"ens5\"\nprefix_len = 32\nrepmgr_config = {repmgr:?}\n\
             socket = {:?}\n[aws]\nenabled = true\nregion = \"us-east-1\"\neni_id = \"eni-0123456789abcdef0\"\n\
             subnet_id = \"subnet-0123456789abcdef0\"\nstate_file = {state:?}\n",
            dir.path().join("no-daemon.sock")
        ),
    )
    .expect("config");
    let by = Claim {
        timeline: 6,
        node_id: 2,
        system_id: None,
    };
    let mut mem = Memory {
        fenced: Some(Fenced {
            by,
            holder: "eni-0other".into(),
        }),
        ..Memory::default()
    };
    mem.cloud.held_max = Some(5);
    StateFile::new(&state)
        .save(&mem, boot_time())
        .expect("journal");

    let run = || {
        Command::new(support::testbed::arbiter_bin())
            .args(["--config"])
            .arg(&config)
            .arg("unfence")
            .output()
            .expect("run vip-arbiter unfence")
    };
    let out = run();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("cleared the fence in"), "{text}");
    let kept = StateFile::new(&state)
        .load(boot_time())
        .expect("readable")
        .expect("still there");
    assert!(kept.complete);
    assert_eq!(kept.memory.fenced, None);
    assert_eq!(kept.memory.overridden, Some(by));
    assert_eq!(
        kept.memory.cloud.held_max,
        Some(5),
        "the rest of the journal is kept"
    );
    // Again: nothing to clear, still 0.
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("not fenced"), "{text}");
}
