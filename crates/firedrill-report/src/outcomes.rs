//! Each declared objective of each trial, judged: the one model the HTML
//! table, JUnit and the history all read, so they never disagree.

use firedrill_ledger::Verdict;

use crate::record::{RunRecord, TrialRecord};
use crate::render::{reason_label, secs};

/// Which objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    Rpo,
    Rto,
}

impl Objective {
    pub fn key(self) -> &'static str {
        match self {
            Objective::Rpo => "rpo",
            Objective::Rto => "rto",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Objective::Rpo => "RPO",
            Objective::Rto => "RTO",
        }
    }
}

/// How one objective fared in one trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Met,
    Violated,
    /// The trial proved nothing about it (aborted, phantoms, not checked).
    Inconclusive,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveOutcome {
    pub trial: u32,
    pub objective: Objective,
    pub target_s: f64,
    /// None for an RTO when the service never recovered.
    pub achieved_s: Option<f64>,
    pub outcome: Outcome,
    /// "achieved 1.99 s, objective <= 1.00 s", then the check's reasons.
    pub message: String,
}

/// Every declared objective for every trial, in trial order, RPO first.
pub fn objective_outcomes(run: &RunRecord) -> Vec<ObjectiveOutcome> {
    let mut out = Vec::new();
    for t in &run.trials {
        if let Some(target) = run.objectives.rpo_s {
            out.push(judge(t, Objective::Rpo, target, Some(t.rpo.achieved_s)));
        }
        if let Some(target) = run.objectives.rto_s {
            out.push(judge(t, Objective::Rto, target, t.rto.achieved_s));
        }
    }
    out
}

fn judge(
    t: &TrialRecord,
    objective: Objective,
    target_s: f64,
    achieved: Option<f64>,
) -> ObjectiveOutcome {
    let met = match objective {
        Objective::Rpo => t.check.rpo_met,
        Objective::Rto => t.check.rto_met,
    };
    let outcome = match (t.verdict, met) {
        (Verdict::Inconclusive, _) | (_, None) => Outcome::Inconclusive,
        (_, Some(true)) => Outcome::Met,
        (_, Some(false)) => Outcome::Violated,
    };
    let achieved_text = achieved.map_or("never recovered".to_string(), secs);
    let mut message = format!(
        "{} achieved {achieved_text}, objective <= {}",
        objective.label(),
        secs(target_s)
    );
    let reasons: Vec<&String> = t
        .check
        .reasons
        .iter()
        .filter(|r| outcome == Outcome::Inconclusive || reason_label(r) == objective.key())
        .collect();
    for r in reasons {
        message.push_str("; ");
        message.push_str(r);
    }
    if outcome == Outcome::Inconclusive {
        if met.is_none() && t.verdict != Verdict::Inconclusive {
            message.push_str("; not checked");
        }
        for w in &t.warnings {
            message.push_str("; ");
            message.push_str(w);
        }
    }
    ObjectiveOutcome {
        trial: t.trial,
        objective,
        target_s,
        achieved_s: achieved,
        outcome,
        message,
    }
}
