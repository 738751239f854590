//! The drills on record, as assess needs them: plain data the binary fills
//! from the run history, so this crate never opens the database.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Drill name → its runs, oldest first.
    pub drills: BTreeMap<String, Vec<RunFigures>>,
}

#[derive(Debug, Clone)]
pub struct RunFigures {
    pub run_dir: String,
    pub started_at: String,
    pub trials: Vec<TrialFigures>,
}

#[derive(Debug, Clone)]
pub struct TrialFigures {
    /// Inconclusive trials prove nothing either way.
    pub inconclusive: bool,
    pub rpo_s: f64,
    /// The drill's own RPO check and objective: a drill whose objective is
    /// at least as strict that says "not met" (a zombie loss, any loss
    /// under RPO 0) breaches this objective too, whatever its window.
    pub drill_rpo_met: Option<bool>,
    pub drill_rpo_objective_s: Option<f64>,
    /// None: never recovered.
    pub rto_s: Option<f64>,
}

/// What the history says about one row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowEvidence {
    /// The drills linked to the objective that have runs.
    pub drills: Vec<String>,
    /// The latest run of each, newest first.
    pub latest: Vec<String>,
    /// Worst achieved figure over those latest runs (`None`: no judged
    /// trial, or one never recovered for RTO: `never_recovered`).
    pub worst_s: Option<f64>,
    pub never_recovered: bool,
    /// Judged trials of every run within this objective / judged trials.
    pub met: u32,
    pub judged: u32,
    pub state: EvidenceState,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceState {
    /// No judged trial on record.
    None,
    /// Every judged trial of the latest runs is within the objective.
    Proven,
    /// A judged trial of a latest run breached it.
    Breached,
}

fn within(t: &TrialFigures, rpo: bool, objective: f64) -> bool {
    if rpo {
        let stricter_failed = t.drill_rpo_met == Some(false)
            && t.drill_rpo_objective_s.is_some_and(|o| o <= objective);
        t.rpo_s <= objective && !stricter_failed
    } else {
        t.rto_s.is_some_and(|r| r <= objective)
    }
}

/// Evidence for an RPO (`rpo = true`) or RTO objective of `objective` s.
pub fn summarize(ev: &Evidence, drills: &[String], rpo: bool, objective: f64) -> RowEvidence {
    let mut out = RowEvidence {
        drills: vec![],
        latest: vec![],
        worst_s: None,
        never_recovered: false,
        met: 0,
        judged: 0,
        state: EvidenceState::None,
    };
    let mut latest_judged = 0;
    let mut latest_breach = false;
    for name in drills {
        let Some(runs) = ev.drills.get(name).filter(|r| !r.is_empty()) else {
            continue;
        };
        out.drills.push(name.clone());
        for r in runs {
            for t in r.trials.iter().filter(|t| !t.inconclusive) {
                out.judged += 1;
                out.met += within(t, rpo, objective) as u32;
            }
        }
        if let Some(last) = runs
            .iter()
            .rev()
            .find(|r| r.trials.iter().any(|t| !t.inconclusive))
        {
            out.latest
                .push(format!("{} ({})", last.run_dir, last.started_at));
            for t in last.trials.iter().filter(|t| !t.inconclusive) {
                latest_judged += 1;
                latest_breach |= !within(t, rpo, objective);
                let fig = if rpo { Some(t.rpo_s) } else { t.rto_s };
                match fig {
                    Some(f) => out.worst_s = Some(out.worst_s.map_or(f, |w: f64| w.max(f))),
                    None => out.never_recovered = true,
                }
            }
        }
    }
    out.state = if latest_breach {
        EvidenceState::Breached
    } else if latest_judged > 0 {
        EvidenceState::Proven
    } else {
        EvidenceState::None
    };
    out
}
