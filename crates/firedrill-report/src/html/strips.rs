//! "Across trials": where each trial's achieved RPO and RTO fall against
//! the objective, as strip plots, so a run of many trials shows its spread
//! and outliers at a glance.

use std::fmt::Write as _;

use crate::record::RunRecord;
use crate::render::secs;

use super::chart::{fmt_tick, ticks, Scale, LEFT, RIGHT, W};
use super::esc;
use super::tables;

/// Strip plots of the achieved figures across trials, with the objective.
pub(super) fn distributions(h: &mut String, run: &RunRecord) {
    if run.trials.is_empty() {
        return;
    }
    h.push_str("<h2>Across trials</h2>\n");
    if run.trials.len() > 1 {
        tables::percentiles(h, run);
    }
    let rpo: Vec<(u32, Option<f64>, Option<bool>)> = run
        .trials
        .iter()
        .map(|t| (t.trial, Some(t.rpo.achieved_s), t.check.rpo_met))
        .collect();
    let rto: Vec<(u32, Option<f64>, Option<bool>)> = run
        .trials
        .iter()
        .map(|t| (t.trial, t.rto.achieved_s, t.check.rto_met))
        .collect();
    strip(h, "rpo", "RPO achieved (s)", &rpo, run.objectives.rpo_s);
    strip(h, "rto", "RTO achieved (s)", &rto, run.objectives.rto_s);
}

/// One strip plot: a dot per trial (green met, red violated, grey not
/// checked), never-recovered trials as crosses at the right edge.
fn strip(
    h: &mut String,
    key: &str,
    title: &str,
    pts: &[(u32, Option<f64>, Option<bool>)],
    objective: Option<f64>,
) {
    let height = 86.0;
    let mid = 46.0;
    let vals = pts.iter().filter_map(|p| p.1);
    let hi = vals
        .clone()
        .fold(objective.unwrap_or(0.0), f64::max)
        .max(0.1)
        * 1.1;
    let never = pts.iter().any(|p| p.1.is_none());
    let right = if never { W - RIGHT - 70.0 } else { W - RIGHT };
    let x = Scale::new(0.0, hi, LEFT + 90.0, right);
    let _ = writeln!(
        h,
        "<svg class=\"distribution\" data-figure=\"{key}\" width=\"{W}\" height=\"{height}\" \
         viewBox=\"0 0 {W} {height}\" role=\"img\" aria-label=\"{}\">\
         <text x=\"4\" y=\"{:.1}\" font-weight=\"600\">{}</text>\
         <line class=\"axis\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{right:.1}\" y2=\"{:.1}\"/>",
        esc(title),
        mid + 4.0,
        esc(title),
        x.p0,
        mid + 20.0,
        mid + 20.0
    );
    for v in ticks(0.0, hi, 8.0) {
        let px = x.at(v);
        let _ = writeln!(
            h,
            "<line class=\"axis\" x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            mid + 20.0,
            mid + 24.0,
            mid + 36.0,
            fmt_tick(v)
        );
    }
    if let Some(o) = objective {
        let px = x.at(o);
        let _ = writeln!(
            h,
            "<g class=\"objective\" data-objective=\"{o}\"><line class=\"objective\" x1=\"{px:.1}\" y1=\"8\" \
             x2=\"{px:.1}\" y2=\"{:.1}\"/><text x=\"{:.1}\" y=\"14\">objective {}</text></g>",
            mid + 20.0,
            px + 3.0,
            secs(o)
        );
    }
    for (i, (trial, v, met)) in pts.iter().enumerate() {
        // Deterministic vertical spread so equal values stay visible.
        let dy = ((i * 7) % 5) as f64 * 5.0 - 10.0;
        let colour = match met {
            Some(true) => "#2e7d32",
            Some(false) => "#c62828",
            None => "#78909c",
        };
        match v {
            Some(v) => {
                let _ = writeln!(
                    h,
                    "<circle class=\"dot\" data-trial=\"{trial}\" data-value=\"{v:.6}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" \
                     fill=\"{colour}\" fill-opacity=\"0.8\"><title>trial {trial}: {}</title></circle>",
                    x.at(*v),
                    mid + dy,
                    secs(*v)
                );
            }
            None => {
                let cx = W - RIGHT - 35.0;
                let cy = mid + dy;
                let _ = writeln!(
                    h,
                    "<g class=\"dot never\" data-trial=\"{trial}\"><path d=\"M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}\" \
                     stroke=\"{colour}\" stroke-width=\"2\"/><title>trial {trial}: never recovered</title></g>",
                    cx - 5.0,
                    cy - 5.0,
                    cx + 5.0,
                    cy + 5.0,
                    cx - 5.0,
                    cy + 5.0,
                    cx + 5.0,
                    cy - 5.0
                );
            }
        }
    }
    if never {
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">never</text>",
            W - RIGHT - 35.0,
            mid + 36.0
        );
    }
    h.push_str("</svg>\n");
}
