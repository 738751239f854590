//! Replays every saved input of the `spec_check` fuzz target (fuzz/corpus/spec_check
//! and fuzz/regressions/spec_check) through the entry function the target calls,
//! so what the fuzzer found stays fixed on stable.

#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn corpus_and_regressions_replay() {
    replay::replay("spec_check", |d| {
        firedrill_spec::fuzz_check(d, &firedrill_stores::specs())
    });
}
