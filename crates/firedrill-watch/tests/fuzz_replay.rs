//! Replays every saved input of the `watch_objectives` fuzz target (fuzz/corpus/watch_objectives
//! and fuzz/regressions/watch_objectives) through the entry function the target calls,
//! so what the fuzzer found stays fixed on stable.

use std::path::{Path, PathBuf};

fn inputs(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("watch_objectives");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    v
}

#[test]
fn corpus_and_regressions_replay() {
    let corpus = inputs("corpus");
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/watch_objectives is empty or missing"
    );
    let mut failed = Vec::new();
    for f in corpus.iter().chain(inputs("regressions").iter()) {
        let data = std::fs::read(f).expect("read a saved fuzz input");
        if let Err(e) = firedrill_watch::fuzz_objectives(firedrill_stores::watch_kinds(), &data) {
            failed.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
