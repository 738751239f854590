//! `report.html`: one self-contained page per run, readable offline and as a
//! CI artifact. No script, no external file: the charts are SVG drawn here,
//! the styles a few inline rules.
//!
//! Chart elements carry stable classes and `data-*` attributes (e.g.
//! `class="marker marker-fault-start" data-marker="fault_start"`) so tests,
//! and anyone scraping reports, can find them without parsing pixels.

use std::fmt::Write as _;

use firedrill_ledger::Verdict;

use crate::outcomes::{objective_outcomes, Objective, Outcome};
use crate::record::{RunRecord, TrialRecord};
use crate::render::{opt_signed, recovery_timeout, secs, signed, verdict_word};

/// File name inside the run directory.
pub const HTML_FILE: &str = "report.html";

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1180px;color:#1d2329;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.muted{color:#5c6670}.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-weight:600;font-size:13px}
.pass{background:#dcf2df;color:#1b5e20}.fail{background:#fbdada;color:#9b1c1c}.inconclusive{background:#fdf1cf;color:#7a5300}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d8dde3;padding:3px 9px;text-align:left}
th{background:#f3f5f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;border:1px solid #d8dde3;padding:10px;overflow:auto;font-size:12px}
svg{display:block;margin:6px 0;font:11px system-ui,sans-serif}
svg .axis{stroke:#9aa4ad;stroke-width:1}svg .grid{stroke:#eceff2;stroke-width:1}
svg .unhealthy{fill:#fde4e4}svg .ok{fill:#43a047}svg .failop{fill:#fb8c00}svg .unknown{fill:#8e24aa}
svg .lost{fill:#d32f2f}svg .window{fill:#ffcdd2;opacity:.55}
svg .p50{fill:none;stroke:#1e88e5;stroke-width:1.5}svg .p99{fill:none;stroke:#b71c1c;stroke-width:1.5;stroke-dasharray:4 2}
svg .marker line{stroke-width:1.5}svg .objective{stroke:#37474f;stroke-dasharray:5 3}
.legend span{margin-right:14px;white-space:nowrap}.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:-1px}
";

/// Renders the whole run as one HTML document.
pub fn render_html(run: &RunRecord) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>firedrill: {} ({})</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&run.drill),
        verdict_word(run.verdict)
    );
    header(&mut h, run);
    objectives(&mut h, run);
    distributions(&mut h, run);
    for t in &run.trials {
        trial(&mut h, run, t);
    }
    spec(&mut h, run);
    h.push_str("</body>\n</html>\n");
    h
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Inconclusive => "inconclusive",
    }
}

fn badge(v: Verdict) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        verdict_class(v),
        verdict_word(v)
    )
}

fn header(h: &mut String, run: &RunRecord) {
    let _ = writeln!(
        h,
        "<h1>drill {} {}</h1>",
        esc(&run.drill),
        badge(run.verdict)
    );
    if let Some(d) = &run.description {
        let _ = writeln!(h, "<p>{}</p>", esc(d));
    }
    let _ = writeln!(h, "<table class=\"meta\">");
    let rows = [
        ("target", run.target.clone()),
        (
            "server version",
            run.server_version
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ),
        ("started", run.started_at.clone()),
        ("firedrill", run.firedrill_version.clone()),
        (
            "trials",
            format!(
                "{} ({} passed, {} failed, {} inconclusive)",
                run.summary.trials,
                run.summary.passed,
                run.summary.failed,
                run.summary.inconclusive
            ),
        ),
        (
            "schema",
            format!("run.json schema_version {}", run.schema_version),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    h.push_str("</table>\n");
    for w in &run.warnings {
        let _ = writeln!(h, "<p class=\"warning\">warning: {}</p>", esc(w));
    }
}

fn outcome_badge(o: Outcome) -> &'static str {
    match o {
        Outcome::Met => "<span class=\"badge pass\">PASS</span>",
        Outcome::Violated => "<span class=\"badge fail\">FAIL</span>",
        Outcome::Inconclusive => "<span class=\"badge inconclusive\">INCONCLUSIVE</span>",
    }
}

fn objectives(h: &mut String, run: &RunRecord) {
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

// ------------------------------------------------------------ charts

/// Linear map from a data range onto a pixel range.
#[derive(Clone, Copy)]
struct Scale {
    d0: f64,
    d1: f64,
    p0: f64,
    p1: f64,
}

impl Scale {
    fn new(d0: f64, d1: f64, p0: f64, p1: f64) -> Scale {
        let d1 = if d1 - d0 > 1e-12 { d1 } else { d0 + 1.0 };
        Scale { d0, d1, p0, p1 }
    }
    fn at(&self, v: f64) -> f64 {
        self.p0 + (v - self.d0) / (self.d1 - self.d0) * (self.p1 - self.p0)
    }
}

/// A "nice" tick step giving about `n` ticks over `span`.
fn tick_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn ticks(d0: f64, d1: f64, n: f64) -> Vec<f64> {
    let step = tick_step(d1 - d0, n);
    let mut v = Vec::new();
    let mut x = (d0 / step).ceil() * step;
    while x <= d1 + step * 1e-6 && v.len() < 50 {
        v.push(if x.abs() < step * 1e-9 { 0.0 } else { x });
        x += step;
    }
    v
}

fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A vertical marker on the timeline.
struct Marker {
    kind: &'static str,
    t: f64,
    label: String,
    colour: &'static str,
    step: Option<usize>,
}

fn markers(t: &TrialRecord) -> Vec<Marker> {
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
    m
}

const W: f64 = 1120.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
/// Rows of marker labels above the plots, so close markers stay legible.
const LABEL_ROWS: usize = 6;
const LABEL_ROW_H: f64 = 14.0;

/// The trial's timeline: ops per bucket, latency, lost writes, markers.
fn timeline(h: &mut String, t: &TrialRecord) {
    let series = t.series.as_ref().filter(|s| !s.is_empty());
    let width = bucket_width(t);
    let markers = markers(t);
    // X range: everything that has a time in this trial.
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
    for mk in &markers {
        see(mk.t);
    }
    if let Some([a, b]) = t.rpo.loss_span_s {
        see(a);
        see(b);
    }
    if !lo.is_finite() {
        let _ = writeln!(
            h,
            "<p class=\"muted\">No timeline: the trial recorded no buckets.</p>"
        );
        return;
    }
    let pad = ((hi - lo) * 0.01).max(0.05);
    let x = Scale::new(lo - pad, hi + pad, LEFT, W - RIGHT);

    let top = 8.0 + LABEL_ROWS as f64 * LABEL_ROW_H;
    let ops_h = 150.0;
    let lat_top = top + ops_h + 26.0;
    let lat_h = 110.0;
    let lost_top = lat_top + lat_h + 26.0;
    let lost_h = 70.0;
    let axis_y = lost_top + lost_h;
    let height = axis_y + 34.0;

    let _ = writeln!(
        h,
        "<svg class=\"timeline\" data-trial=\"{}\" width=\"{W}\" height=\"{height}\" \
         viewBox=\"0 0 {W} {height}\" role=\"img\" aria-label=\"trial {} timeline\">",
        t.trial, t.trial
    );

    // Unhealthy buckets, behind every panel: where the SLO was broken.
    for b in t.buckets.iter().filter(|b| !b.healthy) {
        let (x0, x1) = (x.at(b.start_s), x.at(b.start_s + width));
        let _ = writeln!(
            h,
            "<rect class=\"unhealthy\" x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{:.2}\" height=\"{:.1}\"/>",
            (x1 - x0).max(0.5),
            axis_y - top
        );
    }

    // Panel 1: ok / fail / unknown per bucket, stacked.
    let counts: Vec<(f64, f64, u32, u32, u32)> = match series {
        Some(s) => (0..s.len())
            .map(|i| (s.at(i), s.bucket_s, s.ok[i], s.fail[i], s.unknown[i]))
            .collect(),
        None => t
            .buckets
            .iter()
            .map(|b| (b.start_s, width, b.ok, b.fail, b.unknown))
            .collect(),
    };
    let max_ops = counts
        .iter()
        .map(|c| u64::from(c.2) + u64::from(c.3) + u64::from(c.4))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let y_ops = Scale::new(0.0, max_ops * 1.05, top + ops_h, top);
    panel_frame(
        h,
        &x,
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

    // Panel 2: latency p50 / p99 (only the ledger knows latency).
    match series {
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
                &x,
                &y,
                lat_top,
                lat_h,
                "latency ms",
                &ticks(0.0, max_ms, 3.0),
            );
            for (class, col) in [("p50", &s.p50_ms), ("p99", &s.p99_ms)] {
                let _ = write!(h, "<path class=\"{class}\" d=\"");
                let mut pen_up = true;
                for (i, v) in col.iter().enumerate() {
                    match v {
                        Some(v) => {
                            let cx = x.at(s.at(i) + s.bucket_s / 2.0);
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

    // Panel 3: lost acknowledged writes by acknowledgement time, over the
    // RPO window (first lost ack .. disaster in effect).
    let disaster_done = t
        .faults
        .iter()
        .find(|f| f.disaster)
        .and_then(|f| f.in_effect_s.or(Some(f.injected_s)));
    if let (Some([first, _]), Some(done)) = (t.rpo.loss_span_s, disaster_done) {
        if t.rpo.lost > 0 && done > first {
            let (x0, x1) = (x.at(first), x.at(done));
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
    let lost_max = series
        .map(|s| s.lost.iter().copied().max().unwrap_or(0))
        .unwrap_or(0)
        .max(1) as f64;
    let y_lost = Scale::new(0.0, lost_max * 1.05, lost_top + lost_h, lost_top);
    panel_frame(
        h,
        &x,
        &y_lost,
        lost_top,
        lost_h,
        "lost acks",
        &ticks(0.0, lost_max, 2.0),
    );
    h.push_str("<g class=\"lost-writes\">\n");
    match series {
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
            if let Some([a, b]) = t.rpo.loss_span_s {
                let (x0, x1) = (x.at(a), x.at(b));
                let _ = writeln!(
                    h,
                    "<rect class=\"lost\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{} lost between {} and {}</title></rect>",
                    lost_top + lost_h * 0.35,
                    (x1 - x0).max(1.0),
                    lost_h * 0.65,
                    t.rpo.lost,
                    signed(a),
                    signed(b)
                );
            }
        }
    }
    h.push_str("</g>\n");

    // Shared time axis.
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

    // Markers over everything, labels staggered in rows above the plots.
    let mut order: Vec<&Marker> = markers.iter().collect();
    order.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut row_end = [f64::NEG_INFINITY; LABEL_ROWS];
    h.push_str("<g class=\"markers\">\n");
    for mk in order {
        let px = x.at(mk.t);
        let short = mk.kind.replace('_', " ");
        let text_w = short.len() as f64 * 6.0 + 8.0;
        let row = (0..LABEL_ROWS)
            .find(|&r| row_end[r] < px)
            .unwrap_or_else(|| {
                (0..LABEL_ROWS)
                    .min_by(|&a, &b| row_end[a].total_cmp(&row_end[b]))
                    .unwrap_or(0)
            });
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
    h.push_str("</g>\n</svg>\n");
    h.push_str(
        "<div class=\"legend\"><span><i class=\"sw\" style=\"background:#43a047\"></i>ok</span>\
         <span><i class=\"sw\" style=\"background:#fb8c00\"></i>fail</span>\
         <span><i class=\"sw\" style=\"background:#8e24aa\"></i>unknown</span>\
         <span><i class=\"sw\" style=\"background:#fde4e4\"></i>unhealthy bucket</span>\
         <span><i class=\"sw\" style=\"background:#1e88e5\"></i>latency p50</span>\
         <span><i class=\"sw\" style=\"background:#b71c1c\"></i>latency p99</span>\
         <span><i class=\"sw\" style=\"background:#d32f2f\"></i>lost acknowledged writes</span>\
         <span><i class=\"sw\" style=\"background:#ffcdd2\"></i>RPO window</span></div>\n",
    );
}

/// A panel's left axis with its ticks, horizontal grid and title.
fn panel_frame(
    h: &mut String,
    x: &Scale,
    y: &Scale,
    top: f64,
    height: f64,
    title: &str,
    t: &[f64],
) {
    for v in t {
        let py = y.at(*v);
        let _ = writeln!(
            h,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x.p1,
            LEFT - 4.0,
            py + 4.0,
            fmt_tick(*v)
        );
    }
    let _ = writeln!(
        h,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{top:.1}\" x2=\"{LEFT}\" y2=\"{:.1}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"600\">{}</text>",
        top + height,
        LEFT + 4.0,
        top - 4.0,
        esc(title)
    );
}

fn bucket_width(t: &TrialRecord) -> f64 {
    match t.buckets.as_slice() {
        [a, b, ..] => b.start_s - a.start_s,
        _ => t.series.as_ref().map_or(0.1, |s| s.bucket_s),
    }
}

/// Strip plots of the achieved figures across trials, with the objective.
fn distributions(h: &mut String, run: &RunRecord) {
    if run.trials.is_empty() {
        return;
    }
    h.push_str("<h2>Across trials</h2>\n");
    if run.trials.len() > 1 {
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

// ------------------------------------------------------------ trials

fn trial(h: &mut String, run: &RunRecord, t: &TrialRecord) {
    let _ = writeln!(
        h,
        "<h2 id=\"trial-{}\">Trial {} of {} {}</h2>",
        t.trial,
        t.trial,
        run.trials.len(),
        badge(t.verdict)
    );
    timeline(h, t);
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
    if !t.faults.is_empty() || t.recovery.is_some() {
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
    for w in &t.warnings {
        let _ = writeln!(h, "<p class=\"warning\">warning: {}</p>", esc(w));
    }
}

fn spec(h: &mut String, run: &RunRecord) {
    h.push_str("<h2>Spec</h2>\n");
    let text = serde_json::to_string_pretty(&strip_nulls(run.spec.clone()))
        .unwrap_or_else(|_| run.spec.to_string());
    let _ = writeln!(h, "<pre class=\"spec\">{}</pre>", esc(&text));
}

/// Unset optional keys are noise in a report.
fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(strip_nulls).collect())
        }
        other => other,
    }
}

/// Escapes text for HTML content and quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;"
        );
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(-2.13, 4.4, 12.0);
        assert_eq!(t.first().copied(), Some(-2.0));
        assert!(t.contains(&0.0));
        assert_eq!(fmt_tick(-0.0), "0");
        assert_eq!(fmt_tick(0.5), "0.5");
    }
}
