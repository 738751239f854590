//! Every example in examples/ parses and validates: its lab, if it has one,
//! and its drill.

use firedrill_spec::{validate_drill, validate_lab, LoadedSpec};

#[test]
fn examples_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("examples dir") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        // Objectives files (`firedrill watch`, `assess`: [[domain]] tables)
        // have their own format and their own tests
        // (crates/firedrill-watch/tests/config.rs, crates/firedrill/tests/assess.rs).
        let text = std::fs::read_to_string(&p).expect("read example");
        if text.lines().any(|l| l.trim() == "[[domain]]") {
            continue;
        }
        let spec = LoadedSpec::load(&p).unwrap_or_else(|e| panic!("{e}"));
        let mut errs = if spec.file.lab.is_some() {
            validate_lab(&spec, &firedrill_stores::specs())
        } else {
            Vec::new()
        };
        errs.extend(validate_drill(&spec, None, &firedrill_stores::specs()));
        assert!(errs.is_empty(), "{}", spec.fail(errs));
        n += 1;
    }
    assert!(n >= 3, "expected the three PostgreSQL examples, found {n}");
}
