//! The layout and its documentation tell the same story: docs/architecture.md's module
//! map names every source file under src/ and nothing else, each file opens with a
//! `//!` line saying what it holds, and lib.rs's "Layout" section names every
//! top-level module lib.rs declares. So the map cannot drift from the tree again.

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files ending in `.{ext}` below `dir`, as paths relative to `base`.
fn files_ending(dir: &Path, ext: &str, base: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}")) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files_ending(&path, ext, base, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            let rel = path.strip_prefix(base).expect("under the base");
            out.insert(rel.to_string_lossy().into_owned());
        }
    }
}

fn source_files(dir: &Path, out: &mut BTreeSet<String>) {
    files_ending(dir, "rs", root(), out);
}

/// The `src/…` paths in the first column of the module map's table.
fn mapped_files() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("architecture.md");
    let (_, after) = doc
        .split_once("\n## Module map\n")
        .expect("a '## Module map' section");
    let section = after.split("\n## ").next().unwrap_or(after);
    let mut files = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).expect("a first column");
        for path in first.split('`').skip(1).step_by(2) {
            assert!(
                path.starts_with("src/"),
                "not a source path in the map: {path}"
            );
            assert!(
                files.insert(path.to_string()),
                "named twice in the map: {path}"
            );
        }
    }
    files
}

#[test]
fn the_module_map_names_every_source_file_and_no_other() {
    let mut tree = BTreeSet::new();
    source_files(&root().join("src"), &mut tree);
    let map = mapped_files();
    let missing: Vec<_> = tree.difference(&map).collect();
    let stale: Vec<_> = map.difference(&tree).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/architecture.md's module map is out of date:\n  not in the map: {missing:?}\n  \
         in the map but not in src/: {stale:?}"
    );
}

#[test]
fn every_source_file_says_what_it_holds() {
    let mut tree = BTreeSet::new();
    source_files(&root().join("src"), &mut tree);
    let undocumented: Vec<_> = tree
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(root().join(f)).expect("read");
            !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "these files do not open with a //! line: {undocumented:?}"
    );
}

#[test]
fn lib_rs_layout_names_every_top_level_module() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("lib.rs");
    let (layout, _) = lib
        .split_once("\npub mod ")
        .expect("lib.rs declares modules");
    assert!(
        layout.contains("//! # Layout"),
        "lib.rs opens without a Layout section"
    );
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.len() >= 6, "{declared:?}");
    for m in declared {
        assert!(
            layout.contains(&format!("[`{m}`]")),
            "lib.rs's Layout section does not name `{m}`"
        );
        let dir = root().join("src").join(m);
        assert!(
            dir.join("mod.rs").is_file(),
            "top-level module `{m}` is not a folder (src/{m}/mod.rs): the folders are the layers"
        );
    }
}

/// proptest keeps failing seeds in `proptest-regressions/<path under src/>.txt` and
/// replays only the file at its source's path: a seed file whose source moved is read
/// by nothing (the layout change orphaned two that way). Every seed file has its source.
#[test]
fn every_saved_proptest_seed_file_has_its_source() {
    let mut seeds = BTreeSet::new();
    let dir = root().join("proptest-regressions");
    files_ending(&dir, "txt", &dir, &mut seeds);
    assert!(!seeds.is_empty(), "no saved seeds at all under {dir:?}");
    for seed in &seeds {
        let source = root()
            .join("src")
            .join(Path::new(seed).with_extension("rs"));
        assert!(
            source.is_file(),
            "proptest-regressions/{seed} has no source at {source:?}: move it beside its test's path"
        );
    }
}
