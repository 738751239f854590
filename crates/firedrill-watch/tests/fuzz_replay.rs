//! Replays every saved input of the `watch_objectives` fuzz target (fuzz/corpus/watch_objectives
//! and fuzz/regressions/watch_objectives) through the entry function the target calls,
//! so what the fuzzer found stays fixed on stable.

#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn corpus_and_regressions_replay() {
    replay::replay("watch_objectives", |d| {
        firedrill_watch::fuzz_objectives(firedrill_stores::watch_kinds(), d)
    });
}
