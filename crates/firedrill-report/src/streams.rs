//! A stream's consumer group in the summary: what it delivered again,
//! what it never delivered, and when it had caught up, beside the
//! settings that explain those figures (commit and checkpoint intervals).

use crate::record::TrialRecord;
use std::fmt::Write as _;

/// ", 0.61 s reported by MM2's heartbeats": the store's own lag figure,
/// when it publishes one, beside firedrill's prediction.
pub(crate) fn reported(r: &firedrill_ledger::RpoFigures) -> String {
    match (r.reported_s, &r.reported_by) {
        (Some(s), Some(by)) => format!(", {s:.2} s reported by {by}"),
        (Some(s), None) => format!(", {s:.2} s reported by the store"),
        _ => String::new(),
    }
}

/// Steady-state write latency before the disaster: what the topology
/// costs every write.
pub(crate) fn latency_line(out: &mut String, t: &TrialRecord, indent: &str) {
    if let Some(w) = &t.latency_before {
        let _ = writeln!(
            out,
            "{indent}write latency before the disaster: min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms ({} writes)",
            w.min_ms, w.p50_ms, w.p99_ms, w.n
        );
    }
}

/// One line per home (region) when the clients had homes: in
/// active-active, what B's own producers lost and how long they were down,
/// apart from A's.
pub(crate) fn homes_block(out: &mut String, t: &TrialRecord) {
    for h in &t.by_home {
        let rto = h
            .rto_s
            .map_or("never recovered".into(), |s| format!("{s:.2} s"));
        let _ = writeln!(
            out,
            "  home {}  its producers: {} ok, lost {}, RPO {:.2} s, RTO {rto}",
            h.home, h.ok, h.lost, h.rpo_s
        );
    }
}

/// The `consumer` lines of a trial, when its target ran a group.
pub(crate) fn consumer_block(out: &mut String, t: &TrialRecord, indent: &str) {
    let Some(c) = &t.consumer else { return };
    let rto = match c.consumer_rto_s {
        Some(s) => format!("{s:.2} s"),
        None if t.rpo.loss_span_s.is_some() || t.rto.achieved_s.is_some() => {
            "never caught up".into()
        }
        None => "-".into(),
    };
    let _ = writeln!(
        out,
        "  consumer  group {}: consumer RTO {rto}; delivered {}, redelivered {}, skipped {}",
        c.group, c.delivered, c.redelivered, c.skipped
    );
    let _ = writeln!(out, "{indent}{}", c.settings);
    for n in &c.notes {
        let _ = writeln!(out, "{indent}{n}");
    }
}
