//! A self-contained HTML page of a [`Report`]: no script, no external
//! resource, so it opens offline and can be attached to a sign-off.

use crate::assess::{Report, Verdict};
use crate::derive::secs;
use crate::render::{evidence_cell, live_cell};
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn class(v: Verdict) -> &'static str {
    match v {
        Verdict::Meets => "meets",
        Verdict::Unproven => "unproven",
        Verdict::AtRisk => "atrisk",
        Verdict::CannotMeet => "cannot",
    }
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}.v{font-weight:600;border-radius:3px;padding:.1em .4em;white-space:nowrap}
.meets{background:#d7f5dd;color:#14532d}.unproven{background:#fdf3c4;color:#713f12}
.atrisk{background:#fde2c4;color:#7c2d12}.cannot{background:#fbd0d0;color:#7f1d1d}
details{margin:.2em 0}pre{background:#f7f7f7;padding:.6em;overflow:auto}ul{margin:.2em 0 .2em 1.2em;padding:0}
.sum span{margin-right:1em}";

pub fn render_html(rep: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>firedrill assess: {}</title><style>{STYLE}</style></head><body>",
        esc(&rep.file)
    );
    let _ = write!(
        h,
        "<h1>firedrill assess</h1><p><code>{}</code>{}</p><p class=\"sum\">",
        esc(&rep.file),
        if rep.probed { "" } else { " (not probed)" }
    );
    for v in [
        Verdict::Meets,
        Verdict::Unproven,
        Verdict::AtRisk,
        Verdict::CannotMeet,
    ] {
        let n = rep.counts.get(v.as_str()).copied().unwrap_or(0);
        let _ = write!(
            h,
            "<span class=\"v {}\" id=\"count-{}\">{} {n}</span>",
            class(v),
            class(v),
            v.as_str()
        );
    }
    h.push_str("</p><table id=\"rows\"><thead><tr><th>subject</th><th>disruption</th><th>objective</th><th>bound and derivation</th><th>evidence</th><th>live</th><th>verdict</th><th>advice</th></tr></thead><tbody>");
    for r in &rep.rows {
        let trace: String = r
            .trace
            .iter()
            .map(|t| format!("<li>{}</li>", esc(t)))
            .collect();
        let reasons: String = r
            .reasons
            .iter()
            .map(|t| format!("<li>{}</li>", esc(t)))
            .collect();
        let advice = match &r.advice {
            Some(a) => format!(
                "{}<details><summary>{}.toml</summary><pre>{}</pre></details>",
                esc(&a.change),
                esc(&a.drill_name),
                esc(&a.drill)
            ),
            None => String::new(),
        };
        let dominant = if r.dominant.is_empty() {
            String::new()
        } else {
            format!("<br>dominant: {}", esc(&r.dominant.join(" → ")))
        };
        let _ = write!(
            h,
            "<tr class=\"row\" data-verdict=\"{}\"><td>{} <small>{}</small></td><td>{} <small>({})</small></td><td>{} ≤ {}</td><td><b>{}</b><ul>{trace}</ul>{dominant}</td><td>{}</td><td>{}</td><td><span class=\"v {}\">{}</span><ul>{reasons}</ul></td><td>{advice}</td></tr>",
            class(r.verdict),
            esc(&r.subject),
            r.kind,
            esc(&r.objective),
            esc(&r.disruption),
            r.measure.as_str(),
            esc(&secs(r.target_s)),
            esc(&r.bound),
            esc(&evidence_cell(r)),
            esc(&live_cell(r)),
            class(r.verdict),
            r.verdict.as_str()
        );
    }
    h.push_str("</tbody></table></body></html>\n");
    h
}
