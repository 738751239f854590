//! Replays every saved input of the `ledger_decode` fuzz target (fuzz/corpus/ledger_decode
//! and fuzz/regressions/ledger_decode) through the entry function the target calls,
//! so what the fuzzer found stays fixed on stable.

#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn corpus_and_regressions_replay() {
    replay::replay("ledger_decode", firedrill_ledger::fuzz_decode);
}

/// The seeds are the real formats, not noise the decoders refuse at once.
#[test]
fn the_seeds_decode() {
    let seed = |name: &str| {
        std::fs::read(
            replay::inputs("corpus", "ledger_decode")
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
