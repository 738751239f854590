//! The proxy's Toxiproxy HTTP API, requests straight into the router.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = firedrill_proxy::fuzz_api(data) {
        panic!("{e}");
    }
});
