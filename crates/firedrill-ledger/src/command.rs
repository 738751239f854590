//! What a user command did, as the timeline keeps it: a command fault's
//! inject, probe and heal, the recovery command, and the recovery's
//! verification. Its output is kept as a short tail, never its environment
//! (that is where its secrets are).

use crate::Micros;
use serde::{Deserialize, Serialize};

/// Why a command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandPurpose {
    /// A `command` step's `command`.
    Inject,
    /// A `command` step's `in_effect_command`.
    InEffect,
    /// A `command` step's `heal_command`.
    Heal,
    /// `[drill.recovery] command`.
    Recovery,
    /// `[drill.recovery] verify_command`.
    Verify,
}

impl CommandPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandPurpose::Inject => "inject",
            CommandPurpose::InEffect => "in_effect",
            CommandPurpose::Heal => "heal",
            CommandPurpose::Recovery => "recovery",
            CommandPurpose::Verify => "verify",
        }
    }
}

/// One run of one user command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRun {
    pub purpose: CommandPurpose,
    /// The fault step it belongs to (index in the spec's schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The node it was told about (`FIREDRILL_NODE`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The program (`sh -c` for a string); the whole text is in the spec.
    pub program: String,
    pub t_start: Micros,
    pub t_done: Micros,
    /// The exit status; None when it was killed, timed out, or never ran.
    pub exit: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// It ran past its timeout and was killed (its process group).
    #[serde(default)]
    pub timed_out: bool,
    /// It could not be started (no such program, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last bytes of its stdout and stderr, interleaved as they came,
    /// with known secrets replaced by `[redacted]`.
    #[serde(default)]
    pub output_tail: String,
}

impl CommandRun {
    /// Exited 0.
    pub fn ok(&self) -> bool {
        self.exit == Some(0)
    }

    /// One line on what happened: the reason a failure gives.
    pub fn outcome(&self) -> String {
        let secs = self.t_done.saturating_sub(self.t_start) as f64 / 1e6;
        let how = if let Some(e) = &self.error {
            format!("could not start: {e}")
        } else if self.timed_out {
            format!("timed out after {secs:.1} s and was killed")
        } else if let Some(c) = self.exit {
            format!("exited {c} after {secs:.2} s")
        } else if let Some(s) = self.signal {
            format!("was killed by signal {s} after {secs:.2} s")
        } else {
            format!("ended after {secs:.2} s")
        };
        let tail = self.output_tail.trim();
        let last = tail.lines().last().unwrap_or("");
        if last.is_empty() {
            format!("{} ({}) {how}", self.purpose.as_str(), self.program)
        } else {
            format!("{} ({}) {how}: {last}", self.purpose.as_str(), self.program)
        }
    }
}

/// The reason the recovery's verification failed, from the timeline: a
/// verify command that did not exit 0 fails the trial.
pub fn verify_failure(runs: &[CommandRun]) -> Option<String> {
    runs.iter()
        .filter(|r| r.purpose == CommandPurpose::Verify)
        .find(|r| !r.ok())
        .map(|r| format!("the recovery's verify_command failed: {}", r.outcome()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(purpose: CommandPurpose, exit: Option<i32>) -> CommandRun {
        CommandRun {
            purpose,
            step: None,
            node: None,
            program: "check".into(),
            t_start: 1_000_000,
            t_done: 1_250_000,
            exit,
            signal: None,
            timed_out: false,
            error: None,
            output_tail: "ok\nreplica missing\n".into(),
        }
    }

    #[test]
    fn a_failed_verify_is_the_reason() {
        assert_eq!(
            verify_failure(&[run(CommandPurpose::Verify, Some(0))]),
            None
        );
        // Only verify commands count: a failed heal is the heal's record.
        assert_eq!(verify_failure(&[run(CommandPurpose::Heal, Some(1))]), None);
        let why = verify_failure(&[run(CommandPurpose::Verify, Some(3))]).unwrap();
        assert_eq!(
            why,
            "the recovery's verify_command failed: verify (check) exited 3 after 0.25 s: replica missing"
        );
        let mut t = run(CommandPurpose::Verify, None);
        t.timed_out = true;
        assert!(verify_failure(&[t]).unwrap().contains("timed out"));
    }
}
