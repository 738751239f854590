//! A capability trial's lanes: one row of SLO buckets per domain and one
//! for the end-to-end operation, on one time axis (the capability's, from
//! its disaster), so where each store was down and where the business was
//! down line up, with each lane's loss window shaded.

use std::fmt::Write as _;

use super::chart::{fmt_tick, ticks, Scale, LEFT, RIGHT, W};
use super::esc;
use crate::record::TrialRecord;
use crate::render::secs;
use firedrill_ledger::Bucket;

const LANE_H: f64 = 22.0;
const GAP: f64 = 8.0;
const LABEL_W: f64 = 150.0;

/// One lane: its name, its buckets and loss window on the shared axis.
struct Lane<'a> {
    name: String,
    buckets: &'a [Bucket],
    /// Added to the lane's times to put them on the capability's axis.
    shift: f64,
    window: Option<(f64, f64)>,
    rpo_s: f64,
}

pub(super) fn lanes(h: &mut String, t: &TrialRecord) {
    let Some(c) = &t.capability else { return };
    if t.domains.is_empty() {
        return;
    }
    // The capability's disaster is its domains' first.
    let origin = t.domains.iter().filter_map(|d| d.t_fault_us).min();
    let mut rows: Vec<Lane> = t
        .domains
        .iter()
        .map(|d| {
            let shift = match (d.t_fault_us, origin) {
                (Some(a), Some(o)) => (a as f64 - o as f64) / 1e6,
                _ => 0.0,
            };
            Lane {
                name: d.domain.clone(),
                buckets: &d.buckets,
                shift,
                window: d.rpo.loss_span_s.map(|[a, _]| (a + shift, shift)),
                rpo_s: d.rpo.achieved_s,
            }
        })
        .collect();
    rows.push(Lane {
        name: format!("end to end ({})", c.order.join(" → ")),
        buckets: &t.buckets,
        shift: 0.0,
        window: (c.rpo_s > 0.0).then_some((-c.rpo_s, 0.0)),
        rpo_s: c.rpo_s,
    });
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in &rows {
        for b in r.buckets {
            lo = lo.min(b.start_s + r.shift);
            hi = hi.max(b.start_s + r.shift);
        }
    }
    if !lo.is_finite() {
        return;
    }
    let x = Scale::new(lo, hi + 0.1, LEFT + LABEL_W, W - RIGHT);
    let height = rows.len() as f64 * (LANE_H + GAP) + 30.0;
    let _ = writeln!(
        h,
        "<h3>Domains and the capability</h3>\n<svg class=\"lanes\" width=\"{W}\" height=\"{height}\" \
         viewBox=\"0 0 {W} {height}\" role=\"img\" aria-label=\"each domain's health and the capability's, on one axis\">"
    );
    for (i, r) in rows.iter().enumerate() {
        lane(h, r, i as f64 * (LANE_H + GAP) + 4.0, &x);
    }
    let axis = rows.len() as f64 * (LANE_H + GAP) + 4.0;
    for v in ticks(lo, hi, 10.0) {
        let px = x.at(v);
        let _ = writeln!(
            h,
            "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
            axis + 12.0,
            esc(&fmt_tick(v))
        );
    }
    let zero = x.at(0.0);
    let _ = writeln!(
        h,
        "<line x1=\"{zero:.1}\" y1=\"0\" x2=\"{zero:.1}\" y2=\"{axis:.1}\" stroke=\"#000\" stroke-dasharray=\"3 2\"/>\n</svg>"
    );
    figures(h, t, c);
}

/// The capability's table: each domain's figures, then the orphans.
fn figures(h: &mut String, t: &TrialRecord, c: &firedrill_ledger::capability::CapabilityFigures) {
    h.push_str("<table class=\"capability\"><tr><th>domain</th><th>RPO</th><th>lost</th><th>RTO</th><th>recovered by</th></tr>\n");
    let rto = |r: Option<f64>| r.map_or("never".to_string(), secs);
    for d in &t.domains {
        let _ = writeln!(
            h,
            "<tr data-domain=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.domain),
            esc(&d.domain),
            secs(d.rpo.achieved_s),
            d.rpo.lost,
            rto(d.rto.achieved_s),
            esc(d.recovery.as_ref().map_or("-", |r| r.action.as_str()))
        );
    }
    let _ = writeln!(
        h,
        "<tr data-domain=\"capability\"><th>end to end</th><th>{}</th><th>{} not whole</th><th>{}</th><th>{}</th></tr></table>",
        secs(c.rpo_s),
        c.not_whole,
        rto(c.rto_s),
        esc(&c.dominated_by.as_ref().map_or(String::new(), |d| format!("{d} dominates")))
    );
    for o in &c.orphans {
        let span = o
            .span_s
            .map_or(String::new(), |[a, b]| format!(", {a:+.2} s .. {b:+.2} s"));
        let _ = writeln!(
            h,
            "<p class=\"orphans\">orphans in {} not in {}: {}{}</p>",
            esc(&o.present_in.join(" + ")),
            esc(&o.missing_in.join(" + ")),
            o.count,
            esc(&span)
        );
    }
    if let Some(o) = &c.outbox {
        outbox_table(h, o);
    }
}

/// The outbox's three-way audit: the source's orders, the log's events,
/// the projection's applications.
fn outbox_table(h: &mut String, o: &firedrill_ledger::outbox::OutboxFigures) {
    let rows: [(&str, String); 10] = [
        ("consumer", o.consumer.replace('_', "-")),
        ("orders acknowledged", o.orders_acked.to_string()),
        ("orders lost", o.orders_lost.to_string()),
        ("orders without their event", o.events_lost.to_string()),
        (
            "events without their order",
            o.events_without_order.to_string(),
        ),
        ("events in the log twice", o.log_duplicates.to_string()),
        ("events delivered twice", o.delivered_twice.to_string()),
        ("orders applied twice", o.applied_twice.to_string()),
        ("events never applied", o.not_applied.to_string()),
        (
            "caught up after the workload",
            o.caught_up_s.map_or("never".into(), secs),
        ),
    ];
    h.push_str("<table class=\"outbox\"><tr><th colspan=\"2\">outbox</th></tr>\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table>\n");
}

fn lane(h: &mut String, r: &Lane, y: f64, x: &Scale) {
    let _ = writeln!(
        h,
        "<g data-lane=\"{}\"><text x=\"4\" y=\"{:.1}\" class=\"lane\">{}</text>",
        esc(&r.name),
        y + LANE_H * 0.7,
        esc(&r.name)
    );
    let width = match r.buckets {
        [a, b, ..] => b.start_s - a.start_s,
        _ => 0.1,
    };
    for b in r.buckets {
        let x0 = x.at(b.start_s + r.shift);
        let x1 = x.at(b.start_s + r.shift + width);
        let fill = if b.healthy { "#a5d6a7" } else { "#ef9a9a" };
        let _ = writeln!(
            h,
            "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"{LANE_H}\" fill=\"{fill}\"/>",
            (x1 - x0).max(0.5)
        );
    }
    if let Some((a, b)) = r.window {
        let (x0, x1) = (x.at(a), x.at(b));
        let _ = writeln!(
            h,
            "<rect class=\"window\" data-window=\"rpo\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{LANE_H}\" \
             fill=\"none\" stroke=\"#b71c1c\" stroke-width=\"2\"><title>loss window {}</title></rect>",
            (x1 - x0).max(1.0),
            secs(r.rpo_s)
        );
    }
    h.push_str("</g>\n");
}
