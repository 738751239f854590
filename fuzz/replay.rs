//! Shared by each crate's `tests/fuzz_replay.rs` (included with `#[path]`):
//! the saved inputs of one fuzz target and their replay through the entry
//! function the target calls, so what the fuzzer found stays fixed on stable.

use std::path::{Path, PathBuf};

/// The files of fuzz/`kind`/`target` (kind: corpus or regressions), sorted;
/// none when the folder is missing (git keeps no empty folder).
#[allow(dead_code)]
pub fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    v
}

/// Runs every corpus and regression input of `target` through `entry`;
/// fails on an empty corpus or on any input the entry rejects.
pub fn replay(target: &str, entry: impl Fn(&[u8]) -> Result<(), String>) {
    let corpus = inputs("corpus", target);
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} is empty or missing"
    );
    let mut failed = Vec::new();
    for f in corpus.iter().chain(inputs("regressions", target).iter()) {
        let data = std::fs::read(f).expect("read a saved fuzz input");
        if let Err(e) = entry(&data) {
            failed.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
