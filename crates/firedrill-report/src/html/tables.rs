//! The page's tables: objectives, percentiles across trials, and each
//! trial's figures and fault steps — the exact numbers the charts only show.

use std::fmt::Write as _;

use crate::outcomes::{objective_outcomes, Objective, Outcome};
use crate::record::{RunRecord, TrialRecord};
use crate::render::{opt_signed, recovery_timeout, secs, signed};

use super::esc;

/// A PASS / FAIL / INCONCLUSIVE badge for an objective outcome.
fn outcome_badge(o: Outcome) -> &'static str {
    match o {
        Outcome::Met => "<span class=\"badge pass\">PASS</span>",
        Outcome::Violated => "<span class=\"badge fail\">FAIL</span>",
        Outcome::Inconclusive => "<span class=\"badge inconclusive\">INCONCLUSIVE</span>",
    }
}

/// The objectives section: one row per objective over all trials, then
/// one per trial and objective with the reason, so a failure is explained
/// where it is reported.
pub(super) fn objectives(h: &mut String, run: &RunRecord) {
    h.push_str("<h2>Objectives</h2>\n");
    let outcomes = objective_outcomes(run);
    if run.objectives.rpo_s.is_none() && run.objectives.rto_s.is_none() {
        h.push_str("<p>No objectives declared: the figures below are not checked.</p>\n");
        return;
    }
    h.push_str(
        "<table class=\"objectives\">\n<tr><th>objective</th><th>target</th><th>trials met</th>\
         <th>worst achieved</th><th>result</th></tr>\n",
    );
    for obj in [Objective::Rpo, Objective::Rto] {
        let rows: Vec<_> = outcomes.iter().filter(|o| o.objective == obj).collect();
        let Some(first) = rows.first() else { continue };
        let met = rows.iter().filter(|o| o.outcome == Outcome::Met).count();
        let worst = if rows.iter().any(|o| o.achieved_s.is_none()) {
            "never recovered".to_string()
        } else {
            rows.iter()
                .filter_map(|o| o.achieved_s)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
                .map_or("-".into(), secs)
        };
        let overall = if rows.iter().any(|o| o.outcome == Outcome::Violated) {
            Outcome::Violated
        } else if rows.iter().any(|o| o.outcome == Outcome::Inconclusive) {
            Outcome::Inconclusive
        } else {
            Outcome::Met
        };
        let _ = writeln!(
            h,
            "<tr data-objective=\"{}\"><td>{}</td><td class=\"num\">&le; {}</td>\
             <td class=\"num\">{met} of {}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            obj.key(),
            obj.label(),
            secs(first.target_s),
            rows.len(),
            esc(&worst),
            outcome_badge(overall)
        );
    }
    h.push_str("</table>\n");
    h.push_str(
        "<table class=\"objective-trials\">\n<tr><th>trial</th><th>objective</th><th>target</th>\
         <th>achieved</th><th>result</th><th>why</th></tr>\n",
    );
    for o in &outcomes {
        let _ = writeln!(
            h,
            "<tr data-trial=\"{}\" data-objective=\"{}\"><td>{}</td><td>{}</td>\
             <td class=\"num\">&le; {}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            o.trial,
            o.objective.key(),
            o.trial,
            o.objective.label(),
            secs(o.target_s),
            o.achieved_s.map_or("never recovered".into(), secs),
            outcome_badge(o.outcome),
            esc(&o.message)
        );
    }
    h.push_str("</table>\n");
}

/// p50 / p95 / max of the achieved figures over a run of several trials,
/// and how many trials never recovered (they have no RTO to rank).
pub(super) fn percentiles(h: &mut String, run: &RunRecord) {
    let s = &run.summary;
    h.push_str(
        "<table class=\"percentiles\"><tr><th></th><th>p50</th><th>p95</th><th>max</th></tr>\n",
    );
    let rows = [
        ("RPO achieved", s.rpo_achieved_s),
        ("RPO predicted", s.rpo_predicted_s),
        ("RTO", s.rto_s),
    ];
    for (name, p) in rows {
        let cells = p.map_or(["-".to_string(), "-".into(), "-".into()], |p| {
            [secs(p.p50), secs(p.p95), secs(p.max)]
        });
        let _ = writeln!(
            h,
            "<tr><th>{name}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            cells[0], cells[1], cells[2]
        );
    }
    h.push_str("</table>\n");
    if s.not_recovered > 0 {
        let _ = writeln!(
            h,
            "<p>{} of {} trials never recovered within recovery_timeout.</p>",
            s.not_recovered, s.trials
        );
    }
}

/// A trial's RPO, RTO and op figures, one per row: the numbers behind its
/// timeline, in the same units and signs as the text summary.
pub(super) fn trial_figures(h: &mut String, run: &RunRecord, t: &TrialRecord) {
    let r = &t.rpo;
    let p = &t.rto.phases;
    let rto = t.rto.achieved_s.map_or_else(
        || {
            format!(
                "never recovered (recovery_timeout {})",
                recovery_timeout(run)
            )
        },
        secs,
    );
    let span = r.loss_span_s.map_or("-".to_string(), |[a, b]| {
        format!("{} .. {}", signed(a), signed(b))
    });
    let rows: Vec<(&str, String)> = vec![
        ("RPO achieved", secs(r.achieved_s)),
        (
            "RPO predicted (replication lag)",
            r.predicted_s.map_or("-".into(), secs),
        ),
        (
            "lost acknowledged writes",
            format!("{} ({} zombie)", r.lost, r.zombie_lost),
        ),
        ("loss span", span),
        (
            "unknown survived / lost",
            format!("{} / {}", r.unknown_survived, r.unknown_lost),
        ),
        (
            "duplicates / phantoms / fail survived",
            format!("{} / {} / {}", r.duplicates, r.phantoms, r.fail_survived),
        ),
        ("RTO achieved", rto),
        ("incident start", opt_signed(t.rto.incident_s)),
        (
            "impact / detected / first write / recovered",
            format!(
                "{} / {} / {} / {}",
                opt_signed(p.impact_s),
                opt_signed(p.detected_s),
                opt_signed(p.first_write_s),
                opt_signed(p.recovered_s)
            ),
        ),
        (
            "ops ok / fail / unknown",
            format!("{} / {} / {}", t.ops.ok, t.ops.fail, t.ops.unknown),
        ),
    ];
    h.push_str("<h3>Figures</h3>\n<table class=\"figures\">\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{k}</th><td class=\"num\">{}</td></tr>", esc(&v));
    }
    h.push_str("</table>\n");
}

/// A trial's fault steps and recovery action with their times and any
/// error, shown only when there is one, so a failed injection is not missed.
pub(super) fn trial_faults(h: &mut String, t: &TrialRecord) {
    if t.faults.is_empty() && t.recovery.is_none() {
        return;
    }
    h.push_str(
        "<h3>Faults and recovery</h3>\n<table class=\"faults\">\n<tr><th>step</th><th>action</th>\
         <th>node</th><th>injected</th><th>in effect</th><th>healed</th><th>note</th></tr>\n",
    );
    for f in &t.faults {
        let mut note = Vec::new();
        if f.disaster {
            note.push("disaster".to_string());
        }
        if let Some(e) = &f.error {
            note.push(format!("injection failed: {e}"));
        }
        if let Some(e) = &f.heal_error {
            note.push(format!("heal failed: {e}"));
        }
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            f.step + 1,
            esc(&f.action),
            esc(&f.node),
            signed(f.injected_s),
            opt_signed(f.in_effect_s),
            f.healed_s.map_or("not healed".into(), signed),
            esc(&note.join("; "))
        );
    }
    if let Some(rec) = &t.recovery {
        let _ = writeln!(
            h,
            "<tr><td>recovery</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td></td><td>{}</td></tr>",
            esc(&rec.action),
            esc(rec.node.as_deref().unwrap_or("")),
            signed(rec.start_s),
            signed(rec.done_s),
            esc(rec.error.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>\n");
}
