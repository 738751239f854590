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

/// The seeds are the real formats, not noise the decoders refuse at once.
#[test]
fn the_seeds_decode() {
    let seed = |name: &str| {
        std::fs::read(
            inputs("corpus")
                .iter()
                .find(|p| p.ends_with(name))
                .expect(name),
        )
        .expect(name)
    };
    assert_eq!(
        firedrill_ledger::codec::decode(&seed("ledger-typical"))
            .unwrap()
            .len(),
        50
    );
    assert_eq!(
        firedrill_ledger::codec::decode_ids(&seed("ids-dense"))
            .unwrap()
            .len(),
        199
    );
    assert_eq!(
        firedrill_ledger::codec::decode_positions(&seed("positions"))
            .unwrap()
            .len(),
        40
    );
    let p = firedrill_ledger::journal::Partial::recover(&seed("journal")).unwrap();
    assert_eq!(
        (p.ops.len(), p.frames, p.stop),
        (2, 3, Some(firedrill_ledger::journal::Stop::Clean))
    );
    assert_eq!(p.timeline.lag_samples.len(), 1);
    let torn = firedrill_ledger::journal::Partial::recover(&seed("journal-torn")).unwrap();
    assert_eq!(torn.frames, 2);
}
