//! host_check.rs's unit tests: the unit file's keys, readability by modes and owners.
use super::*;

#[test]
fn the_shipped_unit_runs_as_postgres_with_protect_home() {
    let mut f = UnitFacts::default();
    parse_unit(SHIPPED_UNIT, &mut f);
    assert_eq!(f.user.as_deref(), Some("postgres"));
    assert_eq!(f.group.as_deref(), Some("postgres"));
    assert!(f.protect_home);
    // A drop-in overrides, the last assignment wins; other sections do not count.
    parse_unit(
        "[Unit]\nUser=nobody\n[Service]\nUser=repmgr\nProtectHome=read-only\nEnvironment=PGPASSFILE=/etc/pw \"A=b\"\n",
        &mut f,
    );
    assert_eq!(f.user.as_deref(), Some("repmgr"));
    assert!(!f.protect_home);
    assert_eq!(
        f.environment,
        [
            ("PGPASSFILE".to_owned(), "/etc/pw".to_owned()),
            ("A".to_owned(), "b".to_owned())
        ]
    );
}

#[test]
fn readability_follows_modes_owners_and_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let me = Uid::effective().as_raw();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").expect("write");
    let set = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    let gid = std::fs::metadata(&file).expect("stat").gid();
    let stranger = ServiceUser {
        name: "stranger".into(),
        uid: me.wrapping_add(12345),
        gid: 4_000_000,
        gids: vec![4_000_000],
        home: None,
    };
    let member = ServiceUser {
        gids: vec![gid],
        ..stranger.clone()
    };
    set(dir.path(), 0o755);
    set(&file, 0o644);
    assert_eq!(readable_by(&file, &stranger), Ok(()));
    set(&file, 0o640);
    assert!(readable_by(&file, &stranger).is_err_and(|e| e.contains("no read permission")));
    assert_eq!(readable_by(&file, &member), Ok(()));
    set(&file, 0o644);
    set(dir.path(), 0o700);
    let e = readable_by(&file, &stranger).unwrap_err();
    assert!(e.contains("no search permission"), "{e}");
    assert!(readable_by(&dir.path().join("none"), &stranger).is_err());
}
