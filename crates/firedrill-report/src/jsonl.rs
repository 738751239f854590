//! `events.jsonl`: the raw event stream, one JSON object per line, so a run
//! can be replayed or inspected with `jq` after the fact.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use firedrill_ledger::events::DrillEvent;

use crate::{ReportError, Reporter};

/// File name inside the run directory.
pub const EVENTS_FILE: &str = "events.jsonl";

/// Appends every event to `<run_dir>/events.jsonl`.
///
/// Written through a buffer (one write call per line) and flushed after
/// every event, so the file is always complete up to the last event.
pub struct EventsJsonl {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventsJsonl {
    /// Opens (appending, never truncating: a resumed run keeps its history)
    /// `<run_dir>/events.jsonl`.
    pub fn create(run_dir: &Path) -> Result<Self, ReportError> {
        let path = run_dir.join(EVENTS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| ReportError::Io {
                op: "open",
                path: path.clone(),
                source,
            })?;
        Ok(EventsJsonl {
            path,
            out: BufWriter::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn flush(&mut self) -> Result<(), ReportError> {
        self.out.flush().map_err(|source| ReportError::Io {
            op: "write",
            path: self.path.clone(),
            source,
        })
    }
}

impl Reporter for EventsJsonl {
    fn event(&mut self, ev: &DrillEvent) -> Result<(), ReportError> {
        // Encode to memory first so a failing encoder never leaves half a line.
        let mut line = serde_json::to_vec(ev).map_err(ReportError::Encode)?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .map_err(|source| ReportError::Io {
                op: "write",
                path: self.path.clone(),
                source,
            })?;
        // Flushed per event (a few dozen a second at most): a user tailing
        // the file, or a watchdog reading it, sees a fault the moment it is
        // injected, and a crash loses nothing.
        self.flush()
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firedrill_ledger::Verdict;

    #[test]
    fn one_line_per_event_flushed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = EventsJsonl::create(dir.path()).unwrap();
        let evs = [
            DrillEvent::TrialStarted { trial: 1 },
            DrillEvent::Phase {
                trial: 1,
                t_us: 5,
                phase: "steady".into(),
            },
        ];
        for ev in &evs {
            r.event(ev).unwrap();
        }
        // Visible at once, to a reader tailing the file.
        let text = std::fs::read_to_string(dir.path().join(EVENTS_FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);
        r.event(&DrillEvent::DrillFinished {
            verdict: Verdict::Pass,
        })
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join(EVENTS_FILE)).unwrap();
        let back: Vec<DrillEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back.len(), 3);
        assert_eq!(back[..2], evs);
        assert!(text
            .lines()
            .next()
            .unwrap()
            .contains(r#""event":"trial_started""#));
        r.finish().unwrap();
    }

    #[test]
    fn missing_run_dir_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = EventsJsonl::create(&dir.path().join("nope")).err().unwrap();
        assert!(matches!(err, ReportError::Io { op: "open", .. }), "{err}");
    }
}
