//! The fuzzing entry of the objectives file, shared by
//! `fuzz/fuzz_targets/watch_objectives.rs` and the replay test, so a saved
//! crash replays on stable CI.

use crate::{board::Board, config, metrics, rules, status, WatchError, WatchKind};
use std::path::Path;
use std::time::Instant;

/// What `firedrill watch` does with an objectives file before probing:
/// parse and validate it with the store kinds `kinds`, then render the
/// rules, the metrics page and the status table of the plan. `Err` says
/// which property broke: nothing panics, and every diagnostic's
/// `line:column` is inside the file (0:0 only for the file as a whole).
#[doc(hidden)]
pub fn fuzz_objectives(kinds: &[&dyn WatchKind], data: &[u8]) -> Result<(), String> {
    let Ok(source) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let items = match config::parse_checked(kinds, Path::new("fuzz.toml"), source.to_string()) {
        Ok((_, Ok(plan))) => {
            let board = Board::new(&plan);
            let now = Instant::now();
            let _ = rules::render(&plan);
            let _ = metrics::render(&plan, &board, now);
            let _ = status::render(&plan, &board, now);
            return Ok(());
        }
        Ok((_, Err(items))) => items,
        Err(WatchError::Invalid(d)) => d.items,
        Err(e) => return Err(format!("parse gave a non-parse error: {e}")),
    };
    firedrill_spec::fuzz_located(source, &items)
}
