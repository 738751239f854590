//! The document itself: head and inline style, the run header, one section
//! per trial and the spec, in reading order.

use std::fmt::Write as _;

use firedrill_ledger::Verdict;

use crate::record::{RunRecord, TrialRecord};
use crate::render::verdict_word;

use super::esc;
use super::strips::distributions;
use super::tables;
use super::timeline::timeline;

/// Every rule the page uses, inline, so the report renders with no other file.
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
    tables::objectives(&mut h, run);
    distributions(&mut h, run);
    for t in &run.trials {
        trial(&mut h, run, t);
    }
    spec(&mut h, run);
    h.push_str("</body>\n</html>\n");
    h
}

/// The CSS class of a verdict badge (see `STYLE`).
fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Inconclusive => "inconclusive",
    }
}

/// A coloured PASS / FAIL / INCONCLUSIVE badge for a run or trial verdict.
fn badge(v: Verdict) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        verdict_class(v),
        verdict_word(v)
    )
}

/// Title, description, the run's metadata table and run-level warnings:
/// what was drilled, against what, when, and by which firedrill.
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

/// One trial's section: heading with its verdict, timeline, figures, fault
/// steps and warnings.
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
    super::lanes::lanes(h, t);
    tables::trial_figures(h, run, t);
    tables::trial_faults(h, t);
    for w in &t.warnings {
        let _ = writeln!(h, "<p class=\"warning\">warning: {}</p>", esc(w));
    }
}

/// The drill spec as it ran, so the report says exactly what was tested.
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
