//! Replays every saved input of the `ledger_decode` fuzz target (fuzz/corpus/ledger_decode
//! and fuzz/regressions/ledger_decode) through the entry function the target calls,
//! so what the fuzzer found stays fixed on stable.

use std::path::{Path, PathBuf};

fn inputs(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("ledger_decode");
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
        "fuzz/corpus/ledger_decode is empty or missing"
    );
    let mut failed = Vec::new();
    for f in corpus.iter().chain(inputs("regressions").iter()) {
        let data = std::fs::read(f).expect("read a saved fuzz input");
        if let Err(e) = firedrill_ledger::fuzz_decode(&data) {
            failed.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
