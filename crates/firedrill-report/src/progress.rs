//! The live one-line progress display. A drill runs for minutes with the
//! store deliberately broken; a person at a terminal wants to see that it
//! is alive and which phase it is in. Logs and CI get nothing from it.

use std::io::IsTerminal;
use std::time::Duration;

use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{Micros, Verdict};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{ReportError, Reporter};

/// What the line shows, kept apart from the bar so it can be tested
/// without a terminal.
#[derive(Debug, Clone, Default, PartialEq)]
struct Line {
    trials: u32,
    trial: u32,
    t_us: Micros,
    ops_per_s: f64,
    errors: u64,
    phase: String,
}

impl Line {
    fn render(&self) -> String {
        format!(
            "trial {}/{}  {:.1}s  {:.0} ops/s  errors {}  phase: {}",
            self.trial,
            self.trials,
            self.t_us as f64 / 1e6,
            self.ops_per_s,
            self.errors,
            self.phase
        )
    }
}

/// A spinner on stderr updated from `Progress` and `Phase` events; when
/// stderr is not a terminal there is no bar at all, so nothing is printed.
pub struct Progress {
    bar: Option<ProgressBar>,
    line: Line,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Visible only when stderr is a terminal.
    pub fn new() -> Self {
        if std::io::stderr().is_terminal() {
            Progress::visible()
        } else {
            Progress::hidden()
        }
    }

    /// Never draws anything (for `--quiet`, tests and non-terminals).
    pub fn hidden() -> Self {
        Progress {
            bar: None,
            line: Line::default(),
        }
    }

    fn visible() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        // Ticks keep the spinner moving while the store hangs and no
        // progress event arrives: that is exactly when a person worries.
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress {
            bar: Some(bar),
            line: Line::default(),
        }
    }

    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// The text of the line as it is (or would be) shown.
    pub fn message(&self) -> String {
        self.line.render()
    }

    fn redraw(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(self.line.render());
        }
    }

    fn println(&self, text: String) {
        if let Some(bar) = &self.bar {
            bar.println(text);
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for Progress {
    fn event(&mut self, ev: &DrillEvent) -> Result<(), ReportError> {
        match ev {
            DrillEvent::DrillStarted { trials, .. } => {
                // Nothing to show until a trial starts ("trial 0/3" is noise).
                self.line.trials = *trials;
                return Ok(());
            }
            DrillEvent::TrialStarted { trial } => {
                self.line = Line {
                    trials: self.line.trials,
                    trial: *trial,
                    phase: "starting".into(),
                    ..Line::default()
                };
            }
            DrillEvent::Phase {
                trial, t_us, phase, ..
            } => {
                self.line.trial = *trial;
                self.line.t_us = *t_us;
                self.line.phase = phase.clone();
            }
            DrillEvent::Progress {
                trial,
                t_us,
                ops_per_s,
                fail,
                unknown,
                ..
            } => {
                self.line.trial = *trial;
                self.line.t_us = *t_us;
                self.line.ops_per_s = *ops_per_s;
                self.line.errors = fail + unknown;
            }
            DrillEvent::TrialFinished {
                trial,
                analysis,
                verdict,
                ..
            } => {
                // Leave one permanent line per trial above the spinner.
                let rto = analysis
                    .rto
                    .achieved_s
                    .map_or("never recovered".to_string(), |v| format!("{v:.2} s"));
                self.println(format!(
                    "trial {trial}/{}: {}  RPO {:.2} s ({} lost)  RTO {rto}",
                    self.line.trials,
                    match verdict {
                        Verdict::Pass => "PASS",
                        Verdict::Fail => "FAIL",
                        Verdict::Inconclusive => "INCONCLUSIVE",
                    },
                    analysis.rpo.achieved_s,
                    analysis.rpo.lost
                ));
            }
            DrillEvent::DrillFinished { .. } => {
                self.clear();
                return Ok(());
            }
            _ => return Ok(()),
        }
        self.redraw();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ReportError> {
        self.clear();
        Ok(())
    }
}

impl Drop for Progress {
    /// An error path that skips `finish` must not leave a spinner thread
    /// drawing over the error message.
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_is_hidden_off_a_terminal() {
        if !std::io::stderr().is_terminal() {
            assert!(!Progress::new().is_visible());
        }
    }

    #[test]
    fn line_follows_progress_and_phase_events() {
        let mut p = Progress::hidden();
        assert!(!p.is_visible());
        let evs = [
            DrillEvent::DrillStarted {
                drill: "d".into(),
                trials: 3,
                wall_clock: "t".into(),
                target: "x".into(),
            },
            DrillEvent::TrialStarted { trial: 1 },
            DrillEvent::Progress {
                trial: 1,
                t_us: 12_340_000,
                ops_per_s: 842.4,
                ok: 10_000,
                fail: 5,
                unknown: 12,
            },
            DrillEvent::Phase {
                trial: 1,
                t_us: 12_340_001,
                phase: "recovering".into(),
            },
        ];
        for ev in &evs {
            p.event(ev).unwrap();
        }
        assert_eq!(
            p.message(),
            "trial 1/3  12.3s  842 ops/s  errors 17  phase: recovering"
        );
        p.event(&DrillEvent::TrialStarted { trial: 2 }).unwrap();
        assert_eq!(
            p.message(),
            "trial 2/3  0.0s  0 ops/s  errors 0  phase: starting"
        );
        p.finish().unwrap();
        assert!(!p.is_visible());
    }
}
