//! Placeholder: being implemented (see DESIGN.md measurement semantics).
use crate::*;

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

pub fn analyze(_ops: &[Op], _timeline: &Timeline, _audit: &AuditSet, _slo: &Slo) -> Analysis {
    todo!()
}

pub fn check(_analysis: &Analysis, _objectives: &Objectives) -> (ObjectiveCheck, Verdict) {
    todo!()
}

pub fn aggregate(_values: &[f64]) -> Option<Percentiles> {
    todo!()
}
