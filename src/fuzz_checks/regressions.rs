//! The fuzz targets' checks (src/fuzz_checks) over every committed input: the seed
//! corpus (fuzz/seeds/<target>/) and every input a fuzzer ever crashed on
//! (fuzz/regressions/<target>/, one file each, named for what it found). So a crash,
//! once fixed, stays fixed in the ordinary suite, without cargo-fuzz. Also checks
//! that the seeds really reach the interesting paths (a seed that only ever hits an
//! early error would make the short fuzz runs in CI worthless).

use std::path::{Path, PathBuf};

use super::TARGETS;

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    v
}

#[test]
fn every_seed_and_saved_crash_passes_its_check() {
    let mut replayed = 0;
    for (target, check) in TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for path in seeds.iter().chain(&inputs("regressions", target)) {
            let data = std::fs::read(path).expect("read input");
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{target}: {} fails its check", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 20, "{replayed}");
}

#[test]
fn seeds_reach_the_paths_that_matter() {
    use crate::config;
    use crate::core::claim::{self, Claim};
    use crate::core::observation::{ClaimTag, CloudView, FailureKind};
    use crate::fuzz_checks::observe_canned;
    let seed = |t: &str, n: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/seeds")
                .join(t)
                .join(n),
        )
        .expect("seed")
    };
    let full = String::from_utf8(seed("config", "full.toml")).expect("utf-8");
    let s = config::from_text(&full, Vec::new()).expect("the full seed is a valid config");
    assert!(s.aws.enabled && s.aws.fence_command.is_some());
    let with_env = String::from_utf8(seed("config", "with-env")).expect("utf-8");
    let (toml, _) = with_env.split_once('\0').expect("env part");
    assert!(config::from_text(toml, Vec::new()).is_ok());
    let conf = String::from_utf8(seed("repmgr_conf", "typical.conf")).expect("utf-8");
    let map = crate::config::repmgr_conf::parse(&conf).expect("parses");
    assert_eq!(map.get("escaped").map(String::as_str), Some("it's"));
    assert!(matches!(
        claim::parse(&String::from_utf8(seed("claim_tag", "valid")).expect("utf-8")),
        ClaimTag::Valid(_)
    ));
    // The EC2 seeds are answers the SDK really parses, each to the view it stands for.
    let ec2 = |name: &str| {
        let data = seed("ec2_response", name);
        let status = [200, 200, 400, 503][usize::from(data[0] % 4)];
        observe_canned(status, &data[1..])
    };
    let tag = |timeline, node_id| {
        ClaimTag::Valid(Claim {
            timeline,
            node_id,
            system_id: None,
        })
    };
    assert_eq!(ec2("me.xml"), CloudView::Me { claim: tag(3, 1) });
    assert_eq!(
        ec2("other.xml"),
        CloudView::Other {
            eni: "eni-0fedcba9876543210".into(),
            claim: tag(4, 2)
        }
    );
    assert_eq!(ec2("nobody.xml"), CloudView::Nobody);
    assert!(matches!(
        ec2("two-holders.xml"),
        CloudView::Unknown {
            kind: FailureKind::Transient,
            code: None,
            ..
        }
    ));
    assert!(matches!(
        ec2("unauthorized.xml"),
        CloudView::Unknown { kind: FailureKind::NeedsOperator, code: Some(c), .. }
            if c == "UnauthorizedOperation"
    ));
    assert!(matches!(
        ec2("throttled.xml"),
        CloudView::Unknown { kind: FailureKind::Throttled, code: Some(c), .. }
            if c == "RequestLimitExceeded"
    ));
}
