//! User commands in `run.json`: each run of a command fault's inject, probe
//! and heal on its fault's entry, and the recovery's command and
//! verify_command on the trial, with exit status, timing and output tail.

use firedrill_ledger::{CommandPurpose, CommandRun, Micros};
use serde::{Deserialize, Serialize};

/// One run of one user command. Times are seconds relative to the
/// disaster, like the rest of the trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEntry {
    pub purpose: CommandPurpose,
    /// The program (`sh -c` for a string); the whole text is in the spec.
    pub program: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub start_s: f64,
    pub duration_s: f64,
    /// None: killed, timed out or never started.
    pub exit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last bytes of its output, known secrets blanked.
    #[serde(default)]
    pub output_tail: String,
}

impl CommandEntry {
    pub(crate) fn of(run: &CommandRun, rel: impl Fn(Micros) -> f64) -> CommandEntry {
        CommandEntry {
            purpose: run.purpose,
            program: run.program.clone(),
            node: run.node.clone(),
            start_s: rel(run.t_start),
            duration_s: run.t_done.saturating_sub(run.t_start) as f64 / 1e6,
            exit: run.exit,
            signal: run.signal,
            timed_out: run.timed_out,
            error: run.error.clone(),
            output_tail: run.output_tail.clone(),
        }
    }
}
