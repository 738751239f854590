//! `firedrill status`: every objective's exposure against its RPO, once.

use crate::board::Board;
use crate::plan::Plan;
use std::fmt::Write;
use std::time::Instant;

/// One row per (domain, disruption, source) and the verdict: true when
/// every exposure is within its objective and every probe is up.
pub fn render(plan: &Plan, board: &Board, now: Instant) -> (String, bool) {
    let mut rows = vec![[
        "domain".to_string(),
        "disruption".into(),
        "source".into(),
        "exposure".into(),
        "rpo".into(),
        "probe".into(),
        "state".into(),
    ]];
    let mut all_ok = true;
    let mut notes = Vec::new();
    for (d, dom) in plan.domains.iter().enumerate() {
        for o in &dom.objectives {
            for s in &o.sources {
                let e = board.exposure(d, o, *s, now);
                let up = board.up(d, *s, now);
                let within = o.rpo.is_none_or(|r| e <= r.as_secs_f64());
                let state = match (within, up) {
                    (true, true) => "ok",
                    (false, _) => "BREACH",
                    (true, false) => "PROBE DOWN",
                };
                if state != "ok" {
                    all_ok = false;
                }
                if !up {
                    if let Some(err) = board
                        .domains
                        .get(d)
                        .and_then(|x| x.sources.get(s))
                        .and_then(|x| x.last_error.clone())
                    {
                        notes.push(format!("{} {}: {err}", dom.name, s.as_str()));
                    }
                }
                rows.push([
                    dom.name.clone(),
                    o.disruption.0.clone(),
                    s.as_str().into(),
                    secs(e),
                    o.rpo.map(|r| secs(r.as_secs_f64())).unwrap_or("-".into()),
                    if up { "up".into() } else { "down".into() },
                    state.into(),
                ]);
            }
        }
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    notes.sort();
    notes.dedup();
    for n in notes {
        let _ = writeln!(out, "  {n}");
    }
    (out, all_ok)
}

fn secs(v: f64) -> String {
    if v.is_infinite() {
        "unknown (+Inf)".into()
    } else {
        format!("{v:.2} s")
    }
}
