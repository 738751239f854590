//! Text and JSON renderings of a [`Report`].

use crate::assess::{Report, Row, Verdict};
use crate::derive::secs;
use crate::evidence::EvidenceState;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The evidence cell: `none`, `proven: worst 0 s, 3/3 met`.
pub fn evidence_cell(r: &Row) -> String {
    let e = &r.evidence;
    let worst = if e.never_recovered {
        "never recovered".to_string()
    } else {
        e.worst_s.map_or("-".into(), secs)
    };
    match e.state {
        EvidenceState::None => "none".into(),
        EvidenceState::Proven => format!("proven: worst {worst}, {}/{} met", e.met, e.judged),
        EvidenceState::Breached => format!("breached: worst {worst}, {}/{} met", e.met, e.judged),
    }
}

/// The live cell: `-` not probed, `0.82 s`, `mismatch`, `unreachable`.
pub fn live_cell(r: &Row) -> String {
    let l = &r.live;
    if !l.probed {
        return "-".into();
    }
    let mut parts = Vec::new();
    if !l.mismatches.is_empty() {
        parts.push("mismatch".to_string());
    }
    if !l.unreachable.is_empty() {
        parts.push("unreachable".to_string());
    }
    if l.probe_up == Some(false) {
        parts.push("probe down".to_string());
    }
    if let Some(e) = l.exposure_s {
        parts.push(format!("exposure {}", secs(e)));
    }
    if parts.is_empty() {
        "ok".into()
    } else {
        parts.join(", ")
    }
}

fn table(rows: &[[String; 8]]) -> String {
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// The table, then each row's derivation, evidence, live view and advice,
/// then the drills the advice proposes.
pub fn render_text(rep: &Report, strict: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "firedrill assess {}{}\n",
        rep.file,
        if rep.probed {
            ""
        } else {
            " (not probed: no live column)"
        }
    );
    let mut rows = vec![[
        "subject".to_string(),
        "disruption".into(),
        "objective".into(),
        "bound".into(),
        "evidence".into(),
        "live".into(),
        "verdict".into(),
        "dominant".into(),
    ]];
    for r in &rep.rows {
        rows.push([
            r.subject.clone(),
            r.objective.clone(),
            format!("{} ≤ {}", r.measure.as_str(), secs(r.target_s)),
            r.bound.clone(),
            evidence_cell(r),
            live_cell(r),
            r.verdict.as_str().to_uppercase(),
            r.dominant.join(" → "),
        ]);
    }
    out.push_str(&table(&rows));
    for r in &rep.rows {
        let _ = writeln!(
            out,
            "\n{} {} · {} ({}) · {} ≤ {}: {}",
            r.kind,
            r.subject,
            r.objective,
            r.disruption,
            r.measure.as_str(),
            secs(r.target_s),
            r.verdict.as_str()
        );
        let _ = writeln!(out, "  bound {}", r.bound);
        for t in &r.trace {
            let _ = writeln!(out, "    {t}");
        }
        if r.evidence.drills.is_empty() {
            let _ = writeln!(out, "  evidence: no recorded run of the linked drills");
        } else {
            let _ = writeln!(
                out,
                "  evidence: {} (drills {}; latest {})",
                evidence_cell(r),
                r.evidence.drills.join(", "),
                r.evidence.latest.join(", ")
            );
        }
        if r.live.probed {
            let _ = writeln!(out, "  live: {}", live_cell(r));
        }
        for why in &r.reasons {
            let _ = writeln!(out, "  why: {why}");
        }
        if let Some(a) = &r.advice {
            let _ = writeln!(out, "  advice: {}", a.change);
            let _ = writeln!(out, "  drill: {}.toml (below)", a.drill_name);
        }
    }
    let mut seen = BTreeSet::new();
    let drills: Vec<_> = rep
        .rows
        .iter()
        .filter_map(|r| r.advice.as_ref())
        .filter(|a| seen.insert(a.drill_name.clone()))
        .collect();
    if !drills.is_empty() {
        let _ = writeln!(out, "\nDrills that would prove them:");
        for a in drills {
            let _ = writeln!(out, "\n--- {}.toml\n{}", a.drill_name, a.drill.trim_end());
        }
    }
    let c = |v: Verdict| rep.counts.get(v.as_str()).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "\n{} meets, {} unproven, {} at risk, {} cannot meet → exit {}",
        c(Verdict::Meets),
        c(Verdict::Unproven),
        c(Verdict::AtRisk),
        c(Verdict::CannotMeet),
        rep.exit_code(strict)
    );
    out
}

/// The report as JSON (`schema` 1).
pub fn render_json(rep: &Report) -> String {
    let v = serde_json::json!({
        "schema": 1,
        "file": rep.file,
        "probed": rep.probed,
        "counts": rep.counts,
        "rows": rep.rows,
    });
    serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
