//! The evidence a finished run leaves beside `run.json`: `report.html`,
//! `junit.xml`, and its row in the history database.
//!
//! These read the *saved* `run.json`, not the events: what a user sees in
//! the HTML, what CI sees in JUnit and what the history indexes are then
//! exactly what `firedrill report RUN_DIR` re-renders later.

use std::path::{Path, PathBuf};

use firedrill_ledger::events::DrillEvent;

use crate::history::History;
use crate::html::{render_html, HTML_FILE};
use crate::junit::{render_junit, JUNIT_FILE};
use crate::record::{RunRecord, RUN_FILE};
use crate::{ReportError, Reporter};

/// Writes `report.html` into `run_dir`.
pub fn write_html(run: &RunRecord, run_dir: &Path) -> Result<PathBuf, ReportError> {
    write_atomic(&run_dir.join(HTML_FILE), &render_html(run))
}

/// Writes `junit.xml` into `run_dir`.
pub fn write_junit(run: &RunRecord, run_dir: &Path) -> Result<PathBuf, ReportError> {
    write_atomic(&run_dir.join(JUNIT_FILE), &render_junit(run)?)
}

/// Through a temporary file and a rename, so a CI job collecting
/// artifacts never picks up half a file.
pub fn write_atomic(path: &Path, text: &str) -> Result<PathBuf, ReportError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(|source| ReportError::Io {
        op: "write",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| ReportError::Io {
        op: "rename",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(path.to_path_buf())
}

/// A reporter placed after the [`RunCollector`](crate::RunCollector) in a
/// [`Fanout`](crate::Fanout): when the stream ends it reads the run.json
/// the collector wrote and produces the rest of the evidence.
pub struct RunArtifacts {
    run_dir: PathBuf,
    history: Option<PathBuf>,
    started: bool,
}

impl RunArtifacts {
    /// `history`: the database to index the run in (None: do not index).
    pub fn new(run_dir: impl Into<PathBuf>, history: Option<PathBuf>) -> Self {
        RunArtifacts {
            run_dir: run_dir.into(),
            history,
            started: false,
        }
    }
}

impl Reporter for RunArtifacts {
    fn event(&mut self, ev: &DrillEvent) -> Result<(), ReportError> {
        if matches!(ev, DrillEvent::DrillStarted { .. }) {
            self.started = true;
        }
        Ok(())
    }

    /// Each output is attempted even if an earlier one failed; the first
    /// error is returned.
    fn finish(&mut self) -> Result<(), ReportError> {
        if !self.started || !self.run_dir.join(RUN_FILE).exists() {
            return Ok(());
        }
        let run = RunRecord::load(&self.run_dir)?;
        let mut first = None;
        if let Err(e) = write_html(&run, &self.run_dir) {
            first.get_or_insert(e);
        }
        if let Err(e) = write_junit(&run, &self.run_dir) {
            first.get_or_insert(e);
        }
        if let Some(db) = &self.history {
            if let Err(e) = History::open(db).and_then(|mut h| h.record(&run, &self.run_dir)) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
