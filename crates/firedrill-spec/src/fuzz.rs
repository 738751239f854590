//! The fuzzing entry of the spec checks, shared by
//! `fuzz/fuzz_targets/spec_check.rs` and the replay test in
//! firedrill-stores (which has the store registry), so a saved crash
//! replays on stable CI.

use crate::{
    validate_drill, validate_file, validate_lab, Diagnostic, LoadedSpec, SpecError, Stores,
};
use std::path::Path;

/// What `firedrill drill`/`lab up` do to a spec file before anything
/// starts: parse, then every validation, then render the message. `Err`
/// says which property broke: checks never panic, and a diagnostic's
/// `line:column` is a place inside the file (0:0 only for problems of the
/// file as a whole).
#[doc(hidden)]
pub fn fuzz_check(data: &[u8], stores: &Stores) -> Result<(), String> {
    // The binary reads files with read_to_string: not UTF-8 is a read error.
    let Ok(source) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let path = Path::new("fuzz.toml");
    let spec = match LoadedSpec::parse(path, source.to_string()) {
        Ok(s) => s,
        Err(SpecError::Invalid(d)) => {
            let _ = d.to_string();
            return fuzz_located(source, &d.items);
        }
        Err(e) => return Err(format!("parse gave a non-parse error: {e}")),
    };
    let mut all = validate_file(&spec, stores);
    if spec.file.lab.is_some() {
        all.extend(validate_lab(&spec, stores));
    }
    if spec.file.drill.is_some() {
        all.extend(validate_drill(&spec, None, stores));
    }
    let _ = spec.fail(all.clone()).to_string();
    fuzz_located(source, &all)
}

/// The place property of [`fuzz_check`], for every checker of a file
/// that reports [`Diagnostic`]s (watch's objectives file too).
#[doc(hidden)]
pub fn fuzz_located(source: &str, items: &[Diagnostic]) -> Result<(), String> {
    let lines: Vec<&str> = source.split('\n').collect();
    for d in items {
        if d.message.trim().is_empty() {
            return Err(format!("empty message at {}:{}", d.line, d.col));
        }
        if d.line == 0 {
            if d.col != 0 {
                return Err(format!("column {} without a line: {}", d.col, d.message));
            }
            continue;
        }
        let Some(text) = lines.get(d.line - 1) else {
            return Err(format!("line {} past the end: {}", d.line, d.message));
        };
        if d.col == 0 || d.col > text.chars().count() + 1 {
            return Err(format!(
                "column {}:{} off the line: {}",
                d.line, d.col, d.message
            ));
        }
    }
    Ok(())
}
