//! The engine's event stream. Every output (progress line, events.jsonl,
//! run.json, summary) is a consumer of these events.

use crate::{Analysis, Micros, ObjectiveCheck, Verdict};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DrillEvent {
    DrillStarted {
        drill: String,
        trials: u32,
        /// Wall-clock anchor for display: RFC 3339 UTC time of drill start.
        wall_clock: String,
        target: String,
    },
    TrialStarted {
        trial: u32,
    },
    /// The trial moved to a new phase: warmup, steady, fault, recovering,
    /// stabilising, audit, done.
    Phase {
        trial: u32,
        t_us: Micros,
        phase: String,
    },
    /// Emitted about every second while the workload runs.
    Progress {
        trial: u32,
        t_us: Micros,
        ops_per_s: f64,
        ok: u64,
        fail: u64,
        unknown: u64,
    },
    FaultInjected {
        trial: u32,
        step: usize,
        action: String,
        node: String,
        t_start: Micros,
        t_done: Option<Micros>,
        error: Option<String>,
        /// What the fault did, in the store's terms (the bad transaction's
        /// xid and LSN, the WAL segment taken out of the archive).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    FaultHealed {
        trial: u32,
        step: usize,
        action: String,
        node: String,
        t_start: Micros,
        t_done: Micros,
        error: Option<String>,
    },
    Recovery {
        trial: u32,
        action: String,
        node: Option<String>,
        t_start: Micros,
        t_done: Micros,
        error: Option<String>,
    },
    Detected {
        trial: u32,
        t_us: Micros,
        how: String,
    },
    LagSample {
        trial: u32,
        t_us: Micros,
        node: String,
        lag_us: Micros,
    },
    Audit {
        trial: u32,
        node: String,
        rows: u64,
    },
    Warning {
        trial: Option<u32>,
        message: String,
    },
    /// A user command ended: a command fault's inject, probe or heal, the
    /// recovery command, or its verify_command.
    Command {
        trial: u32,
        run: crate::CommandRun,
    },
    TrialFinished {
        trial: u32,
        analysis: Box<Analysis>,
        check: ObjectiveCheck,
        verdict: Verdict,
    },
    /// A capability trial: one domain's own figures, before the trial's
    /// `TrialFinished` (which carries the capability's).
    DomainFinished {
        trial: u32,
        domain: String,
        analysis: Box<Analysis>,
        check: ObjectiveCheck,
        verdict: Verdict,
        /// The domain has objectives of its own (else it is reported only).
        judged: bool,
    },
    DrillFinished {
        verdict: Verdict,
    },
}
