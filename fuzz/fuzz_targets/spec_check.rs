//! Spec parse and validation, as `firedrill drill` runs them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static STORES: std::sync::OnceLock<firedrill_spec::Stores> = std::sync::OnceLock::new();
    let stores = STORES.get_or_init(firedrill_stores::specs);
    if let Err(e) = firedrill_spec::fuzz_check(data, stores) {
        panic!("{e}");
    }
});
