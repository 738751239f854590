//! `firedrill runs`: the run history.

use crate::Failure;
use firedrill_ledger::Verdict;
use firedrill_report::{render_runs, render_trend, History, RunFilter, RunRecord, HISTORY_FILE};
use std::path::{Path, PathBuf};

/// Where firedrill keeps its state: `$FIREDRILL_STATE_DIR`, else
/// `.firedrill/` under the current directory (where labs live too).
pub fn state_dir() -> PathBuf {
    match std::env::var_os("FIREDRILL_STATE_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(".firedrill"),
    }
}

pub fn history_path() -> PathBuf {
    state_dir().join(HISTORY_FILE)
}

/// Opens the history for reading; a missing file is an empty history, not
/// an error, and is not created just to be listed.
fn open_existing() -> Result<Option<History>, Failure> {
    let path = history_path();
    if !path.exists() {
        return Ok(None);
    }
    History::open(&path)
        .map(Some)
        .map_err(|e| Failure::aborted(e.to_string()))
}

pub fn list(drill: Option<String>, verdict: Option<Verdict>, json: bool) -> Result<u8, Failure> {
    let rows = match open_existing()? {
        Some(h) => h
            .runs(&RunFilter { drill, verdict })
            .map_err(|e| Failure::aborted(e.to_string()))?,
        None => Vec::new(),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Failure::internal(e.to_string()))?
        );
    } else {
        print!("{}", render_runs(&rows));
    }
    Ok(0)
}

pub fn trend(drill: &str, json: bool) -> Result<u8, Failure> {
    let Some(h) = open_existing()? else {
        return Err(Failure::input(format!(
            "no run history at {}: run a drill first",
            history_path().display()
        )));
    };
    if !h
        .knows_drill(drill)
        .map_err(|e| Failure::aborted(e.to_string()))?
    {
        return Err(Failure::input(format!(
            "no runs of drill {drill:?} in {} (see `firedrill runs`)",
            history_path().display()
        )));
    }
    let t = h
        .trend(drill)
        .map_err(|e| Failure::aborted(e.to_string()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&t).map_err(|e| Failure::internal(e.to_string()))?
        );
    } else {
        print!("{}", render_trend(&t));
    }
    Ok(0)
}

pub fn add(dirs: &[PathBuf]) -> Result<u8, Failure> {
    // Check every directory before writing anything.
    let runs = dirs
        .iter()
        .map(|d| {
            RunRecord::load(d)
                .map(|r| (d.as_path(), r))
                .map_err(|e| Failure::input(e.to_string()))
        })
        .collect::<Result<Vec<(&Path, RunRecord)>, Failure>>()?;
    let mut h = History::open(&history_path()).map_err(|e| Failure::aborted(e.to_string()))?;
    for (dir, run) in &runs {
        h.record(run, dir)
            .map_err(|e| Failure::aborted(e.to_string()))?;
        println!("recorded {} ({})", dir.display(), run.drill);
    }
    Ok(0)
}
