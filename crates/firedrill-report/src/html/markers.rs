//! The timeline's vertical markers: fault steps, detection, first write and
//! recovery, drawn over every panel with their labels staggered in rows, so
//! a reader sees when each thing happened against the traffic it caused.

use std::fmt::Write as _;

use crate::record::TrialRecord;
use crate::render::signed;

use super::chart::Scale;
use super::esc;

/// Rows of marker labels above the plots, so close markers stay legible.
pub(super) const LABEL_ROWS: usize = 6;
pub(super) const LABEL_ROW_H: f64 = 14.0;

/// A vertical marker on the timeline.
pub(super) struct Marker {
    kind: &'static str,
    pub(super) t: f64,
    label: String,
    colour: &'static str,
    step: Option<usize>,
}

/// Every marker of the trial, in no particular order: a start, in-effect
/// and heal per fault step, then detected, first write and recovered.
pub(super) fn markers(t: &TrialRecord) -> Vec<Marker> {
    let mut m = Vec::new();
    for f in &t.faults {
        let what = format!(
            "step {} {} {}{}",
            f.step + 1,
            f.action,
            f.node,
            if f.disaster { " (disaster)" } else { "" }
        );
        m.push(Marker {
            kind: "fault_start",
            t: f.injected_s,
            label: format!("fault start: {what}"),
            colour: "#c62828",
            step: Some(f.step),
        });
        if let Some(e) = f.in_effect_s {
            m.push(Marker {
                kind: "fault_in_effect",
                t: e,
                label: format!("fault in effect: {what}"),
                colour: "#6a1b9a",
                step: Some(f.step),
            });
        }
        if let Some(x) = f.healed_s {
            m.push(Marker {
                kind: "heal",
                t: x,
                label: format!("healed: {what}"),
                colour: "#00897b",
                step: Some(f.step),
            });
        }
    }
    let p = &t.rto.phases;
    let detected = p.detected_s.or(t.detected.as_ref().map(|d| d.t_s));
    let how = t
        .detected
        .as_ref()
        .map_or(String::new(), |d| format!(" ({})", d.how));
    let rest = [
        ("detected", detected, format!("detected{how}"), "#ef6c00"),
        (
            "first_write",
            p.first_write_s,
            "first write".into(),
            "#1565c0",
        ),
        ("recovered", p.recovered_s, "recovered".into(), "#2e7d32"),
    ];
    for (kind, at, label, colour) in rest {
        if let Some(at) = at {
            m.push(Marker {
                kind,
                t: at,
                label,
                colour,
                step: None,
            });
        }
    }
    m.extend(restore_markers(t));
    m
}

/// A data disaster's restore: discovery, then the restore's fetch, replay
/// and promote, each on the trial's clock (the figures count from
/// t_fault, the disaster step's start).
fn restore_markers(t: &TrialRecord) -> Vec<Marker> {
    let (Some(r), Some(t0)) = (&t.restore, t_fault(t)) else {
        return Vec::new();
    };
    [
        (
            "discovered",
            r.discovered_s,
            "discovered (detect_after)".to_string(),
            "#8d6e63",
        ),
        (
            "fetch_done",
            r.fetch_s,
            "restore: base backup fetched".to_string(),
            "#5e35b1",
        ),
        (
            "replay_done",
            r.replay_s,
            format!("restore: log replayed to {}", r.target),
            "#3949ab",
        ),
        (
            "promoted",
            r.promote_s,
            "restore: promoted".to_string(),
            "#00838f",
        ),
    ]
    .into_iter()
    .filter_map(|(kind, at, label, colour)| {
        Some(Marker {
            kind,
            t: t0 + at?,
            label,
            colour,
            step: None,
        })
    })
    .collect()
}

/// The disaster step's start, on the trial's clock.
pub(super) fn t_fault(t: &TrialRecord) -> Option<f64> {
    t.faults.iter().find(|f| f.disaster).map(|f| f.injected_s)
}

/// Draws every marker as a line from the label rows down to the time axis
/// at `axis_y`, in time order so labels are placed left to right.
pub(super) fn draw(h: &mut String, markers: &[Marker], x: &Scale, axis_y: f64) {
    let mut order: Vec<&Marker> = markers.iter().collect();
    order.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut row_end = [f64::NEG_INFINITY; LABEL_ROWS];
    h.push_str("<g class=\"markers\">\n");
    for mk in order {
        let px = x.at(mk.t);
        let short = mk.kind.replace('_', " ");
        let text_w = short.len() as f64 * 6.0 + 8.0;
        let row = label_row(&row_end, px);
        row_end[row] = px + text_w;
        let ly = 8.0 + (row as f64 + 1.0) * LABEL_ROW_H - 3.0;
        let step = mk
            .step
            .map_or(String::new(), |s| format!(" data-step=\"{}\"", s + 1));
        let _ = writeln!(
            h,
            "<g class=\"marker marker-{}\" data-marker=\"{}\" data-t=\"{:.3}\"{step}>\
             <title>{} at {}</title>\
             <line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{axis_y:.1}\" stroke=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\" fill=\"{}\">{}</text></g>",
            mk.kind.replace('_', "-"),
            mk.kind,
            mk.t,
            esc(&mk.label),
            signed(mk.t),
            ly + 3.0,
            mk.colour,
            px + 2.0,
            mk.colour,
            esc(&short)
        );
    }
    h.push_str("</g>\n");
}

/// The label row for a marker at `px`: the first row whose last label ends
/// before it, else the row that ends soonest, so crowded markers overlap as
/// little as they can instead of piling onto one row.
fn label_row(row_end: &[f64; LABEL_ROWS], px: f64) -> usize {
    (0..LABEL_ROWS)
        .find(|&r| row_end[r] < px)
        .unwrap_or_else(|| {
            (0..LABEL_ROWS)
                .min_by(|&a, &b| row_end[a].total_cmp(&row_end[b]))
                .unwrap_or(0)
        })
}
