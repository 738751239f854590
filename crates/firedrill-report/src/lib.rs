//! Consumers of the engine's `DrillEvent` stream (cargo-nextest style):
//! each output of a drill — `events.jsonl`, `run.json`, the live progress
//! line — is a [`Reporter`], so the engine knows nothing about formats and a
//! saved run can be re-rendered without the store. `report.html`,
//! `junit.xml` and the history row are rendered from the saved `run.json`
//! ([`RunArtifacts`]), so a re-render gives exactly what the drill wrote.

use std::io;
use std::path::PathBuf;

use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::Verdict;

mod artifacts;
mod capability;
mod commands;
mod history;
mod html;
mod jsonl;
mod junit;
mod outcomes;
mod progress;
mod record;
mod render;
mod series;
mod streams;

pub use artifacts::{write_atomic, write_html, write_junit, RunArtifacts};
pub use capability::DomainRecord;
pub use commands::CommandEntry;
pub use history::{
    render_runs, render_trend, History, MeetsRate, RestoreTestRow, RunFilter, RunRow, Trend,
    TrendPoint, HISTORY_FILE,
};
pub use html::{render_html, HTML_FILE};
pub use jsonl::{EventsJsonl, EVENTS_FILE};
pub use junit::{render_junit, JUNIT_FILE};
pub use outcomes::{objective_outcomes, Objective, ObjectiveOutcome, Outcome};
pub use progress::Progress;
pub use record::{
    DetectedEntry, FaultEntry, ObjectivesRecord, PhasePercentiles, ReauditRecord, RecoveryEntry,
    RunCollector, RunMeta, RunRecord, Summary, TrialRecord, RUN_FILE, SCHEMA_VERSION,
};
pub use render::{render_summary, MAX_WIDTH};
pub use series::{load_trial_series, TrialSeries, MAX_POINTS};

/// Everything that can go wrong while writing or reading a run's files.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What we were doing (`create`, `write`, `read`, …), for the message.
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not valid JSON for this schema: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {message}", path.display())]
    Ledger { path: PathBuf, message: String },
    #[error("history {}: {source}", path.display())]
    History {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "history {}: schema {found} is newer than this firedrill understands ({expected})",
        path.display()
    )]
    HistoryVersion {
        path: PathBuf,
        found: i64,
        expected: i64,
    },
    #[error("cannot write JUnit XML: {0}")]
    Junit(String),
    #[error("cannot encode an event or record as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    #[error(
        "{}: schema_version {found} is not supported (this firedrill reads {expected})",
        path.display()
    )]
    SchemaVersion {
        path: PathBuf,
        found: u64,
        expected: u32,
    },
}

impl ReportError {
    pub(crate) fn history(path: &std::path::Path, source: rusqlite::Error) -> Self {
        ReportError::History {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A consumer of the event stream. `finish` is called once after the last
/// event, also when the drill was aborted, so buffered output is never lost.
pub trait Reporter {
    fn event(&mut self, ev: &DrillEvent) -> Result<(), ReportError>;
    fn finish(&mut self) -> Result<(), ReportError> {
        Ok(())
    }
}

impl<R: Reporter + ?Sized> Reporter for Box<R> {
    fn event(&mut self, ev: &DrillEvent) -> Result<(), ReportError> {
        (**self).event(ev)
    }
    fn finish(&mut self) -> Result<(), ReportError> {
        (**self).finish()
    }
}

/// Sends every event to several reporters, so the engine holds just one.
#[derive(Default)]
pub struct Fanout {
    reporters: Vec<Box<dyn Reporter + Send>>,
}

impl Fanout {
    pub fn new(reporters: Vec<Box<dyn Reporter + Send>>) -> Self {
        Fanout { reporters }
    }

    pub fn push(&mut self, reporter: Box<dyn Reporter + Send>) {
        self.reporters.push(reporter);
    }

    pub fn len(&self) -> usize {
        self.reporters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reporters.is_empty()
    }
}

impl Reporter for Fanout {
    /// Every reporter sees every event even if an earlier one failed: a full
    /// disk must not also blank the progress line or lose `run.json`. The
    /// first error is returned.
    fn event(&mut self, ev: &DrillEvent) -> Result<(), ReportError> {
        let mut first = None;
        for r in &mut self.reporters {
            if let Err(e) = r.event(ev) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        let mut first = None;
        for r in &mut self.reporters {
            if let Err(e) = r.finish() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The process exit code for a drill's verdict (DESIGN.md "Exit codes"), so
/// CI can tell a violated objective (1) from a drill that proved nothing (3).
pub fn exit_code(v: Verdict) -> i32 {
    match v {
        Verdict::Pass => 0,
        Verdict::Fail => 1,
        Verdict::Inconclusive => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Count(Arc<Mutex<Vec<&'static str>>>, &'static str, bool);

    impl Reporter for Count {
        fn event(&mut self, _ev: &DrillEvent) -> Result<(), ReportError> {
            self.0.lock().unwrap().push(self.1);
            if self.2 {
                return Err(ReportError::Encode(serde_json::Error::io(
                    io::Error::other("boom"),
                )));
            }
            Ok(())
        }
    }

    #[test]
    fn every_reporter_fits_in_a_fanout() {
        fn send<T: Reporter + Send + 'static>() {}
        send::<EventsJsonl>();
        send::<RunCollector>();
        send::<Progress>();
        send::<Fanout>();
        send::<RunArtifacts>();
    }

    #[test]
    fn exit_codes_follow_design() {
        assert_eq!(exit_code(Verdict::Pass), 0);
        assert_eq!(exit_code(Verdict::Fail), 1);
        assert_eq!(exit_code(Verdict::Inconclusive), 3);
    }

    #[test]
    fn fanout_forwards_to_all_even_after_an_error() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut f = Fanout::new(vec![
            Box::new(Count(seen.clone(), "a", true)),
            Box::new(Count(seen.clone(), "b", false)),
        ]);
        let ev = DrillEvent::TrialStarted { trial: 1 };
        assert!(f.event(&ev).is_err());
        assert_eq!(*seen.lock().unwrap(), vec!["a", "b"]);
        assert!(f.finish().is_ok());
    }
}
