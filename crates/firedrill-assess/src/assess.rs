//! One row per (domain or capability, disruption, measure): the bound the
//! mechanisms allow, the evidence on record, the live exposure, and the
//! verdict that follows, with advice when it is not `meets`.

use crate::advice::{advise, Advice};
use crate::compose::{self, Part};
use crate::derive::{domain_bound, secs, Bound, DomainBound};
use crate::evidence::{summarize, Evidence, EvidenceState, RowEvidence};
use crate::kind::Moves;
use crate::live::Live;
use crate::model::*;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Meets,
    Unproven,
    AtRisk,
    CannotMeet,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Meets => "meets",
            Verdict::Unproven => "unproven",
            Verdict::AtRisk => "at risk",
            Verdict::CannotMeet => "cannot meet",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Rpo,
    Rto,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Rpo => "RPO",
            Measure::Rto => "RTO",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowLive {
    pub probed: bool,
    /// RPO rows: the watched exposure of this objective, if watched.
    pub exposure_s: Option<f64>,
    pub probe_up: Option<bool>,
    pub mismatches: Vec<String>,
    /// For each mismatch, the change that makes the server and the
    /// declaration agree.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<String>,
    /// For each mismatch, the figures it moves and whether it is a
    /// restore's setting (else a failover's).
    #[serde(skip)]
    pub moves: Vec<(Moves, bool)>,
    pub unreachable: Vec<String>,
}

impl RowLive {
    /// Only the mismatches that can move `m` of a row recovered by a
    /// restore (`restore`) or by a failover.
    fn for_measure(mut self, m: Measure, restore: bool) -> RowLive {
        let keep: Vec<bool> = self
            .moves
            .iter()
            .map(|(x, r)| *r == restore && if m == Measure::Rpo { x.rpo() } else { x.rto() })
            .collect();
        let pick = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| x)
                .collect()
        };
        self.mismatches = pick(self.mismatches);
        self.fixes = pick(self.fixes);
        let mut k = keep.iter();
        self.moves.retain(|_| *k.next().unwrap_or(&false));
        self
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub subject: String,
    /// `domain` or `capability`.
    pub kind: &'static str,
    /// The objective's key as written.
    pub objective: String,
    pub disruption: String,
    pub measure: Measure,
    pub target_s: f64,
    pub bound: String,
    pub lower_s: Option<f64>,
    pub strict: bool,
    pub upper_s: Option<f64>,
    pub trace: Vec<String>,
    /// Capabilities: the dependency (RPO) or path (RTO) that dominates.
    pub dominant: Vec<String>,
    pub evidence: RowEvidence,
    pub live: RowLive,
    pub verdict: Verdict,
    /// Why the verdict is not better.
    pub reasons: Vec<String>,
    pub advice: Option<Advice>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub file: String,
    pub probed: bool,
    pub rows: Vec<Row>,
    pub counts: BTreeMap<&'static str, usize>,
}

impl Report {
    /// 0 all meet; 1 any cannot meet or at risk (or unproven with `strict`).
    pub fn exit_code(&self, strict: bool) -> u8 {
        let bad = self.rows.iter().any(|r| {
            matches!(r.verdict, Verdict::CannotMeet | Verdict::AtRisk)
                || (strict && r.verdict == Verdict::Unproven)
        });
        u8::from(bad)
    }
}

/// Every domain's and capability's rows.
pub fn assess(a: &Architecture, ev: &Evidence, live: Option<&Live>) -> Report {
    let mut rows = Vec::new();
    for d in &a.domains {
        for o in &d.objectives {
            let mut b = domain_bound(a, d, &o.disruption);
            let imp = crate::derive::impact(a, d, &o.disruption);
            crate::factors::annotate(d, &imp, &mut b, ev);
            let l = live.map(|l| live_of(l, std::slice::from_ref(&d.name), Some(&o.key)));
            push_rows(
                &mut rows,
                a,
                Subject::Domain(d),
                o,
                &b,
                vec![],
                vec![],
                ev,
                l,
            );
        }
    }
    let mut memo = BTreeMap::new();
    for (ci, c) in a.capabilities.iter().enumerate() {
        for o in &c.objectives {
            let (rpo, rto) = capability_bound(a, ci, &o.disruption, &mut memo);
            let domains = must_domains(a, ci);
            let l = live.map(|l| live_of(l, &domains, None));
            let b = DomainBound {
                rpo: rpo.bound,
                rto: rto.bound,
            };
            push_rows(
                &mut rows,
                a,
                Subject::Capability(c),
                o,
                &b,
                rpo.dominant,
                rto.dominant,
                ev,
                l,
            );
        }
    }
    let mut counts = BTreeMap::new();
    for v in [
        Verdict::Meets,
        Verdict::Unproven,
        Verdict::AtRisk,
        Verdict::CannotMeet,
    ] {
        counts.insert(v.as_str(), rows.iter().filter(|r| r.verdict == v).count());
    }
    Report {
        file: a.path.display().to_string(),
        probed: live.is_some(),
        rows,
        counts,
    }
}

pub enum Subject<'a> {
    Domain(&'a Domain),
    Capability(&'a Capability),
}

/// Every domain a capability's writes must survive in, through nested capabilities.
fn must_domains(a: &Architecture, ci: usize) -> Vec<String> {
    let mut out = Vec::new();
    for d in &a.capabilities[ci].depends {
        match d.target {
            Target::Domain(i) if i < a.domains.len() => out.push(a.domains[i].name.clone()),
            Target::Capability(c) if c < a.capabilities.len() && c != ci => {
                out.extend(must_domains(a, c))
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

type Memo = BTreeMap<(usize, String), (compose::Composed, compose::Composed)>;

/// The composed bounds of capability `ci` under `dis`.
pub fn capability_bound(
    a: &Architecture,
    ci: usize,
    dis: &Disruption,
    memo: &mut Memo,
) -> (compose::Composed, compose::Composed) {
    if let Some(m) = memo.get(&(ci, dis.name().to_string())) {
        return m.clone();
    }
    let c = &a.capabilities[ci];
    let mut parts = Vec::new();
    for d in &c.depends {
        let (rpo, rto) = match d.target {
            Target::Domain(i) if i < a.domains.len() => {
                let b = domain_bound(a, &a.domains[i], dis);
                (b.rpo, b.rto)
            }
            // Validation rejects cycles, so this recursion ends.
            Target::Capability(k) if k < a.capabilities.len() && k != ci => {
                let (r, t) = capability_bound(a, k, dis, memo);
                (r.bound, t.bound)
            }
            _ => (Bound::unknown("unresolved"), Bound::unknown("unresolved")),
        };
        parts.push(Part {
            name: d.name.clone(),
            must_survive: d.how == How::MustSurvive,
            rpo,
            rto,
            extra: d.rebuild.map_or(0.0, |r| r.as_secs_f64()),
            after: d.after.clone(),
        });
    }
    let r = compose::rpo(&parts);
    let t = compose::rto(&parts);
    memo.insert((ci, dis.name().to_string()), (r.clone(), t.clone()));
    (r, t)
}

fn live_of(l: &Live, domains: &[String], key: Option<&str>) -> RowLive {
    let mut out = RowLive {
        probed: true,
        exposure_s: None,
        probe_up: None,
        mismatches: vec![],
        fixes: vec![],
        moves: vec![],
        unreachable: vec![],
    };
    for name in domains {
        let Some(dl) = l.domains.get(name) else {
            continue;
        };
        let prefix = if domains.len() > 1 {
            format!("{name}: ")
        } else {
            String::new()
        };
        out.mismatches
            .extend(dl.mismatches.iter().map(|m| format!("{prefix}{}", m.what)));
        out.fixes
            .extend(dl.mismatches.iter().map(|m| format!("{prefix}{}", m.fix)));
        out.moves
            .extend(dl.mismatches.iter().map(|m| (m.moves, m.restore)));
        if !dl.reached {
            out.unreachable.push(name.clone());
        }
        if let Some((e, up)) = key.and_then(|k| dl.exposure.get(k)) {
            out.exposure_s = Some(*e);
            out.probe_up = Some(*up);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn push_rows(
    rows: &mut Vec<Row>,
    a: &Architecture,
    subject: Subject<'_>,
    o: &Objective,
    b: &DomainBound,
    rpo_dom: Vec<String>,
    rto_dom: Vec<String>,
    ev: &Evidence,
    live: Option<RowLive>,
) {
    // Recovered by a restore: corruption, or a loss no replica survives.
    let restore = match &subject {
        Subject::Domain(d) => matches!(
            crate::derive::impact(a, d, &o.disruption),
            crate::derive::Impact::Corruption | crate::derive::Impact::Total(_)
        ),
        Subject::Capability(_) => {
            o.disruption == crate::model::Disruption::Standard(crate::model::Standard::Corruption)
        }
    };
    let (name, kind) = match &subject {
        Subject::Domain(d) => (d.name.clone(), "domain"),
        Subject::Capability(c) => (c.name.clone(), "capability"),
    };
    let live = live.unwrap_or(RowLive {
        probed: false,
        exposure_s: None,
        probe_up: None,
        mismatches: vec![],
        fixes: vec![],
        moves: vec![],
        unreachable: vec![],
    });
    for (measure, target, bound, dominant) in [
        (Measure::Rpo, o.rpo, &b.rpo, rpo_dom),
        (Measure::Rto, o.rto, &b.rto, rto_dom),
    ] {
        let Some(target) = target else { continue };
        let t = target.as_secs_f64();
        let evidence = summarize(ev, &o.drills, measure == Measure::Rpo, t);
        let mut row_live = live.clone().for_measure(measure, restore);
        if measure == Measure::Rto {
            row_live.exposure_s = None;
            row_live.probe_up = None;
        }
        let (verdict, reasons) = verdict(measure, t, bound, &evidence, &row_live);
        let mut row = Row {
            subject: name.clone(),
            kind,
            objective: o.key.clone(),
            disruption: o.disruption.name().to_string(),
            measure,
            target_s: t,
            bound: bound.describe(),
            lower_s: bound.lower.is_finite().then_some(bound.lower),
            strict: bound.strict,
            upper_s: bound.upper,
            trace: bound.trace.clone(),
            dominant,
            evidence,
            live: row_live,
            verdict,
            reasons,
            advice: None,
        };
        if verdict != Verdict::Meets {
            row.advice = Some(advise(a, &subject, o, &row));
        }
        rows.push(row);
    }
}

/// The verdict of one row and the reasons for it.
pub fn verdict(
    m: Measure,
    target: f64,
    bound: &Bound,
    ev: &RowEvidence,
    live: &RowLive,
) -> (Verdict, Vec<String>) {
    let name = m.as_str();
    if bound.cannot(target) {
        return (
            Verdict::CannotMeet,
            vec![format!(
                "the mechanisms allow {name} {}, the objective is {}",
                bound.describe(),
                secs(target)
            )],
        );
    }
    let mut risk = Vec::new();
    if bound.worst_exceeds(target) {
        risk.push(format!(
            "the declared worst case is {} > {}",
            secs(bound.upper.unwrap_or(f64::INFINITY)),
            secs(target)
        ));
    }
    if ev.state == EvidenceState::Breached {
        let worst = if ev.never_recovered {
            "never recovered".to_string()
        } else {
            ev.worst_s.map_or("-".into(), secs)
        };
        risk.push(format!(
            "the latest drill breached it: worst {name} {worst} > {}",
            secs(target)
        ));
    }
    for mm in &live.mismatches {
        risk.push(format!("mismatch: {mm}"));
    }
    for u in &live.unreachable {
        risk.push(format!("{u}: no node answered the probe"));
    }
    if let Some(e) = live.exposure_s {
        if e > target {
            risk.push(format!("live exposure {} > {}", secs(e), secs(target)));
        }
    }
    if live.probe_up == Some(false) {
        risk.push("a watch source is down: the live exposure is unknown".into());
    }
    if !risk.is_empty() {
        return (Verdict::AtRisk, risk);
    }
    match ev.state {
        EvidenceState::Proven => (Verdict::Meets, vec![]),
        _ => (
            Verdict::Unproven,
            vec!["the bound fits, but no recorded drill covers it".into()],
        ),
    }
}
