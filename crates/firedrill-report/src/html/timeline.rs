//! The per-trial timeline: one SVG of three stacked panels (ops per bucket,
//! latency, lost writes) on a shared time axis, with the trial's markers
//! drawn over all of them, so cause (faults) and effect (errors, latency,
//! loss) line up vertically.

use std::fmt::Write as _;

use super::esc;
use crate::record::TrialRecord;
use crate::render::{secs, signed};
use crate::series::TrialSeries;

use super::chart::{fmt_tick, panel_frame, ticks, Scale, LEFT, RIGHT, W};
use super::markers::{self, Marker, LABEL_ROWS, LABEL_ROW_H};

/// The colour key under every timeline; the swatches match `STYLE`.
const LEGEND: &str =
    "<div class=\"legend\"><span><i class=\"sw\" style=\"background:#43a047\"></i>ok</span>\
     <span><i class=\"sw\" style=\"background:#fb8c00\"></i>fail</span>\
     <span><i class=\"sw\" style=\"background:#8e24aa\"></i>unknown</span>\
     <span><i class=\"sw\" style=\"background:#fde4e4\"></i>unhealthy bucket</span>\
     <span><i class=\"sw\" style=\"background:#1e88e5\"></i>latency p50</span>\
     <span><i class=\"sw\" style=\"background:#b71c1c\"></i>latency p99</span>\
     <span><i class=\"sw\" style=\"background:#d32f2f\"></i>lost acknowledged writes</span>\
     <span><i class=\"sw\" style=\"background:#ffcdd2\"></i>RPO window</span>\
     <span><i class=\"sw\" style=\"background:#ffe0b2\"></i>rolled back by a restore</span></div>\n";

/// The trial's timeline: ops per bucket, latency, lost writes, markers.
pub(super) fn timeline(h: &mut String, t: &TrialRecord) {
    let series = t.series.as_ref().filter(|s| !s.is_empty());
    let width = bucket_width(t);
    let markers = markers::markers(t);
    let Some((lo, hi)) = time_range(t, series, width, &markers) else {
        let _ = writeln!(
            h,
            "<p class=\"muted\">No timeline: the trial recorded no buckets.</p>"
        );
        return;
    };
    let pad = ((hi - lo) * 0.01).max(0.05);
    let plot = Plot {
        t,
        series,
        width,
        x: Scale::new(lo - pad, hi + pad, LEFT, W - RIGHT),
        lay: Layout::new(),
    };
    plot.open(h);
    plot.unhealthy(h);
    plot.ops_panel(h);
    plot.latency_panel(h);
    plot.rpo_window(h);
    plot.rolled_back_window(h);
    plot.lost_panel(h);
    plot.time_axis(h);
    markers::draw(h, &markers, &plot.x, plot.lay.axis_y);
    h.push_str("</svg>\n");
    h.push_str(LEGEND);
}

/// Width of one SLO bucket, seconds: from the recorded buckets when there
/// are two, else the series' own width, else a default, so a single bucket
/// still gets drawn with some width.
fn bucket_width(t: &TrialRecord) -> f64 {
    match t.buckets.as_slice() {
        [a, b, ..] => b.start_s - a.start_s,
        _ => t.series.as_ref().map_or(0.1, |s| s.bucket_s),
    }
}

/// The span of everything in the trial that has a time (series, buckets,
/// markers, loss span), so nothing falls off the chart; None when nothing
/// does, and there is no timeline to draw.
fn time_range(
    t: &TrialRecord,
    series: Option<&TrialSeries>,
    width: f64,
    markers: &[Marker],
) -> Option<(f64, f64)> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let mut see = |v: f64| {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    };
    if let Some(s) = series {
        see(s.start_s);
        see(s.at(s.len()));
    }
    if let (Some(a), Some(b)) = (t.buckets.first(), t.buckets.last()) {
        see(a.start_s);
        see(b.start_s + width);
    }
    for mk in markers {
        see(mk.t);
    }
    if let Some([a, b]) = t.rpo.loss_span_s {
        see(a);
        see(b);
    }
    lo.is_finite().then_some((lo, hi))
}

/// Vertical layout of the chart in pixels: marker label rows on top, then
/// the three panels, then the time axis. Fixed, so every trial's timeline
/// has the same shape and trials can be compared by eye.
struct Layout {
    top: f64,
    ops_h: f64,
    lat_top: f64,
    lat_h: f64,
    lost_top: f64,
    lost_h: f64,
    axis_y: f64,
    height: f64,
}

impl Layout {
    fn new() -> Layout {
        let top = 8.0 + LABEL_ROWS as f64 * LABEL_ROW_H;
        let ops_h = 150.0;
        let lat_top = top + ops_h + 26.0;
        let lat_h = 110.0;
        let lost_top = lat_top + lat_h + 26.0;
        let lost_h = 70.0;
        let axis_y = lost_top + lost_h;
        let height = axis_y + 34.0;
        Layout {
            top,
            ops_h,
            lat_top,
            lat_h,
            lost_top,
            lost_h,
            axis_y,
            height,
        }
    }
}

/// What every part of one trial's timeline draws from: the trial, its
/// series if the run has one, the bucket width, the time scale and layout.
struct Plot<'a> {
    t: &'a TrialRecord,
    /// Per-bucket detail from the ledger; None in older runs, which are
    /// drawn from the SLO buckets alone.
    series: Option<&'a TrialSeries>,
    width: f64,
    x: Scale,
    lay: Layout,
}

impl Plot<'_> {
    /// The `<svg>` start tag, sized by the layout and findable by trial.
    fn open(&self, h: &mut String) {
        let height = self.lay.height;
        let _ = writeln!(
            h,
            "<svg class=\"timeline\" data-trial=\"{}\" width=\"{W}\" height=\"{height}\" \
             viewBox=\"0 0 {W} {height}\" role=\"img\" aria-label=\"trial {} timeline\">",
            self.t.trial, self.t.trial
        );
    }

    /// Unhealthy buckets, behind every panel: where the SLO was broken.
    fn unhealthy(&self, h: &mut String) {
        let (x, width) = (&self.x, self.width);
        let (top, axis_y) = (self.lay.top, self.lay.axis_y);
        for b in self.t.buckets.iter().filter(|b| !b.healthy) {
            let (x0, x1) = (x.at(b.start_s), x.at(b.start_s + width));
            let _ = writeln!(
                h,
                "<rect class=\"unhealthy\" x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{:.2}\" height=\"{:.1}\"/>",
                (x1 - x0).max(0.5),
                axis_y - top
            );
        }
    }

    /// (start, width, ok, fail, unknown) per bucket: from the series when
    /// there is one (finer, matches the latency panel), else the SLO buckets.
    fn op_counts(&self) -> Vec<(f64, f64, u32, u32, u32)> {
        match self.series {
            Some(s) => (0..s.len())
                .map(|i| (s.at(i), s.bucket_s, s.ok[i], s.fail[i], s.unknown[i]))
                .collect(),
            None => self
                .t
                .buckets
                .iter()
                .map(|b| (b.start_s, self.width, b.ok, b.fail, b.unknown))
                .collect(),
        }
    }

    /// Panel 1: ok / fail / unknown per bucket, stacked.
    fn ops_panel(&self, h: &mut String) {
        let x = &self.x;
        let (top, ops_h) = (self.lay.top, self.lay.ops_h);
        let counts = self.op_counts();
        let max_ops = counts
            .iter()
            .map(|c| u64::from(c.2) + u64::from(c.3) + u64::from(c.4))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let y_ops = Scale::new(0.0, max_ops * 1.05, top + ops_h, top);
        panel_frame(
            h,
            x,
            &y_ops,
            top,
            ops_h,
            "ops / bucket",
            &ticks(0.0, max_ops, 3.0),
        );
        h.push_str("<g class=\"ops\">\n");
        for (start, w, ok, fail, unknown) in &counts {
            let x0 = x.at(*start);
            let bw = (x.at(start + w) - x0).max(0.6);
            let mut base = 0.0;
            for (n, class) in [(*ok, "ok"), (*fail, "failop"), (*unknown, "unknown")] {
                if n == 0 {
                    continue;
                }
                let y1 = y_ops.at(base);
                base += f64::from(n);
                let y0 = y_ops.at(base);
                let _ = writeln!(
                    h,
                    "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{bw:.2}\" height=\"{:.1}\"/>",
                    (y1 - y0).max(0.0)
                );
            }
        }
        h.push_str("</g>\n");
    }

    /// Panel 2: latency p50 / p99 (only the ledger knows latency), or a
    /// note saying why it is missing rather than an empty panel.
    fn latency_panel(&self, h: &mut String) {
        let (lat_top, lat_h) = (self.lay.lat_top, self.lay.lat_h);
        match self.series {
            Some(s) if s.p99_ms.iter().any(Option::is_some) => {
                let max_ms = s
                    .p99_ms
                    .iter()
                    .flatten()
                    .fold(0.0f64, |m, v| m.max(*v))
                    .max(1.0);
                let y = Scale::new(0.0, max_ms * 1.05, lat_top + lat_h, lat_top);
                panel_frame(
                    h,
                    &self.x,
                    &y,
                    lat_top,
                    lat_h,
                    "latency ms",
                    &ticks(0.0, max_ms, 3.0),
                );
                for (class, col) in [("p50", &s.p50_ms), ("p99", &s.p99_ms)] {
                    self.latency_line(h, s, &y, class, col);
                }
            }
            _ => {
                let _ = writeln!(
                    h,
                    "<text x=\"{LEFT}\" y=\"{:.1}\" class=\"muted\">latency: not in this run.json \
                     (recorded from the ledger by newer firedrill versions)</text>",
                    lat_top + 20.0
                );
            }
        }
    }

    /// One latency percentile as a path through bucket centres, lifting the
    /// pen over empty buckets so a gap in traffic is not drawn as a line.
    fn latency_line(
        &self,
        h: &mut String,
        s: &TrialSeries,
        y: &Scale,
        class: &str,
        col: &[Option<f64>],
    ) {
        let _ = write!(h, "<path class=\"{class}\" d=\"");
        let mut pen_up = true;
        for (i, v) in col.iter().enumerate() {
            match v {
                Some(v) => {
                    let cx = self.x.at(s.at(i) + s.bucket_s / 2.0);
                    let _ = write!(
                        h,
                        "{}{cx:.1} {:.1} ",
                        if pen_up { "M" } else { "L" },
                        y.at(*v)
                    );
                    pen_up = false;
                }
                None => pen_up = true,
            }
        }
        h.push_str("\"/>\n");
    }

    /// Behind panel 3: the RPO window (first lost ack .. disaster in
    /// effect), the stretch of acknowledged writes the disaster took.
    fn rpo_window(&self, h: &mut String) {
        let t = self.t;
        let (lost_top, lost_h) = (self.lay.lost_top, self.lay.lost_h);
        let disaster_done = t
            .faults
            .iter()
            .find(|f| f.disaster)
            .and_then(|f| f.in_effect_s.or(Some(f.injected_s)));
        if let (Some([first, _]), Some(done)) = (t.rpo.loss_span_s, disaster_done) {
            if t.rpo.lost > 0 && done > first {
                let (x0, x1) = (self.x.at(first), self.x.at(done));
                let _ = writeln!(
                    h,
                    "<rect class=\"window\" data-window=\"rpo\" x=\"{x0:.1}\" y=\"{lost_top:.1}\" \
                     width=\"{:.1}\" height=\"{lost_h:.1}\"><title>loss window {}: {} .. {}</title></rect>",
                    (x1 - x0).max(1.0),
                    secs(t.rpo.achieved_s),
                    signed(first),
                    signed(done)
                );
            }
        }
    }

    /// A restore's rolled-back writes: acknowledged after the fault and
    /// thrown away by restoring to before it, shaded over their span in
    /// the lost panel (the documented trade, not an RPO violation).
    fn rolled_back_window(&self, h: &mut String) {
        let t = self.t;
        let (Some(r), Some(t0)) = (&t.restore, markers::t_fault(t)) else {
            return;
        };
        let Some([a, b]) = r.rolled_back_span_s.filter(|_| r.rolled_back > 0) else {
            return;
        };
        let (lost_top, lost_h) = (self.lay.lost_top, self.lay.lost_h);
        let (x0, x1) = (self.x.at(t0 + a), self.x.at(t0 + b));
        let _ = writeln!(
            h,
            "<rect class=\"window rolled-back\" data-window=\"rolled_back\" x=\"{x0:.1}\" y=\"{lost_top:.1}\" \
             width=\"{:.1}\" height=\"{lost_h:.1}\" fill=\"#ffe0b2\"><title>rolled back: {} acknowledged writes, {} .. {} (restored to {})</title></rect>",
            (x1 - x0).max(1.0),
            r.rolled_back,
            signed(t0 + a),
            signed(t0 + b),
            esc(&r.target)
        );
    }

    /// Panel 3: lost acknowledged writes by acknowledgement time. Without a
    /// series only the loss span is known, drawn as one bar across it.
    fn lost_panel(&self, h: &mut String) {
        let x = &self.x;
        let (lost_top, lost_h) = (self.lay.lost_top, self.lay.lost_h);
        let lost_max = self
            .series
            .map(|s| s.lost.iter().copied().max().unwrap_or(0))
            .unwrap_or(0)
            .max(1) as f64;
        let y_lost = Scale::new(0.0, lost_max * 1.05, lost_top + lost_h, lost_top);
        panel_frame(
            h,
            x,
            &y_lost,
            lost_top,
            lost_h,
            "lost acks",
            &ticks(0.0, lost_max, 2.0),
        );
        h.push_str("<g class=\"lost-writes\">\n");
        match self.series {
            Some(s) => {
                for (i, &n) in s.lost.iter().enumerate().filter(|(_, n)| **n > 0) {
                    let x0 = x.at(s.at(i));
                    let bw = (x.at(s.at(i) + s.bucket_s) - x0).max(0.6);
                    let y0 = y_lost.at(f64::from(n));
                    let _ = writeln!(
                        h,
                        "<rect class=\"lost\" x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{bw:.2}\" height=\"{:.1}\"><title>{n} lost at {}</title></rect>",
                        lost_top + lost_h - y0,
                        signed(s.at(i))
                    );
                }
            }
            None => {
                if let Some([a, b]) = self.t.rpo.loss_span_s {
                    let (x0, x1) = (x.at(a), x.at(b));
                    let _ = writeln!(
                        h,
                        "<rect class=\"lost\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{} lost between {} and {}</title></rect>",
                        lost_top + lost_h * 0.35,
                        (x1 - x0).max(1.0),
                        lost_h * 0.65,
                        self.t.rpo.lost,
                        signed(a),
                        signed(b)
                    );
                }
            }
        }
        h.push_str("</g>\n");
    }

    /// The time axis shared by all three panels, in seconds from the
    /// disaster, so every time on the page reads against the same zero.
    fn time_axis(&self, h: &mut String) {
        let x = &self.x;
        let axis_y = self.lay.axis_y;
        let _ = writeln!(
            h,
            "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{axis_y:.1}\" x2=\"{:.1}\" y2=\"{axis_y:.1}\"/>",
            W - RIGHT
        );
        for v in ticks(x.d0, x.d1, 12.0) {
            let px = x.at(v);
            let _ = writeln!(
                h,
                "<line class=\"axis\" x1=\"{px:.1}\" y1=\"{axis_y:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\"/>\
                 <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                axis_y + 4.0,
                axis_y + 16.0,
                fmt_tick(v)
            );
        }
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"muted\">seconds from the disaster</text>",
            W - RIGHT,
            axis_y + 30.0
        );
    }
}
