//! The watch objectives file: parse, validate, render rules and metrics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = firedrill_watch::fuzz_objectives(firedrill_stores::watch_kinds(), data) {
        panic!("{e}");
    }
});
