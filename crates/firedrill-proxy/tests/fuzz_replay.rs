//! Replays every saved input of the `proxy_api` fuzz target (fuzz/corpus/proxy_api
//! and fuzz/regressions/proxy_api) through the entry function the target calls,
//! so what the fuzzer found stays fixed on stable.

#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn corpus_and_regressions_replay() {
    replay::replay("proxy_api", firedrill_proxy::fuzz_api);
}
