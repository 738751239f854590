//! Placeholder for `analyze`: being implemented (see DESIGN.md measurement semantics).
use crate::*;

/// p50 / p95 / max across trials.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

pub fn analyze(_ops: &[Op], _timeline: &Timeline, _audit: &AuditSet, _slo: &Slo) -> Analysis {
    todo!()
}

/// Checks one trial against the objectives: a trial passes when
/// achieved_rpo ≤ rpo, zombie_lost == 0, (rpo == 0 ⇒ lost == 0), and
/// achieved_rto ≤ rto (a service that never recovered fails any rto).
/// Phantoms mean the audit read something firedrill never wrote: the
/// measurement cannot be trusted, so the verdict is inconclusive.
pub fn check(a: &Analysis, o: &Objectives) -> (ObjectiveCheck, Verdict) {
    let mut c = ObjectiveCheck::default();
    if let Some(rpo) = o.rpo_us {
        let rpo_s = rpo as f64 / 1e6;
        let mut met = true;
        if a.rpo.achieved_s > rpo_s + 1e-9 {
            met = false;
            c.reasons.push(format!(
                "achieved RPO {:.3} s exceeds the objective {:.3} s",
                a.rpo.achieved_s, rpo_s
            ));
        }
        if a.rpo.zombie_lost > 0 {
            met = false;
            c.reasons.push(format!(
                "{} writes acknowledged after the fault were lost (zombie writes)",
                a.rpo.zombie_lost
            ));
        }
        if rpo == 0 && a.rpo.lost > 0 {
            met = false;
            c.reasons.push(format!(
                "RPO objective is 0 but {} acknowledged writes were lost",
                a.rpo.lost
            ));
        }
        c.rpo_met = Some(met);
    }
    if let Some(rto) = o.rto_us {
        let rto_s = rto as f64 / 1e6;
        let met = match a.rto.achieved_s {
            Some(v) if v <= rto_s + 1e-9 => true,
            Some(v) => {
                c.reasons.push(format!(
                    "achieved RTO {v:.3} s exceeds the objective {rto_s:.3} s"
                ));
                false
            }
            None => {
                c.reasons
                    .push("the service never met its SLO again within recovery_timeout".into());
                false
            }
        };
        c.rto_met = Some(met);
    }
    let verdict = if a.rpo.phantoms > 0 {
        c.reasons.push(format!(
            "{} ids in the store were never written by this trial: the audit is not trustworthy",
            a.rpo.phantoms
        ));
        Verdict::Inconclusive
    } else if c.rpo_met == Some(false) || c.rto_met == Some(false) {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    (c, verdict)
}

/// Nearest-rank percentiles; None for no values.
pub fn aggregate(values: &[f64]) -> Option<Percentiles> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| {
        let r = (p * v.len() as f64).ceil() as usize;
        v[r.clamp(1, v.len()) - 1]
    };
    Some(Percentiles {
        p50: rank(0.50),
        p95: rank(0.95),
        max: v[v.len() - 1],
    })
}
