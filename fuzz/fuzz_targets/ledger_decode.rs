//! The ledger, audit-set and positions decoders, and events.jsonl lines.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = firedrill_ledger::fuzz_decode(data) {
        panic!("{e}");
    }
});
