//! A capability trial in the record and the summary: each domain's own
//! figures, then what the business lost across them (orphans by kind with
//! their spans, the capability's RPO and RTO, the domain that dominates).

use crate::record::{RecoveryEntry, TrialRecord};
use firedrill_ledger::{Analysis, ObjectiveCheck, OpCounts, RpoFigures, RtoFigures, Verdict};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One domain of a capability trial, as it would be drilled alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRecord {
    pub domain: String,
    /// The domain's own verdict against its own objectives; `judged` is
    /// false when it had none (it is then reported, not judged).
    pub verdict: Verdict,
    pub judged: bool,
    pub rpo: RpoFigures,
    pub rto: RtoFigures,
    pub ops: OpCounts,
    pub check: ObjectiveCheck,
    /// What brought this domain back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryEntry>,
    /// The domain's disaster on the observer clock (µs since drill start):
    /// its times are relative to it, and the lanes of the HTML report put
    /// every domain on the capability's axis with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_fault_us: Option<u64>,
    /// The domain's SLO buckets, times relative to its own disaster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<firedrill_ledger::Bucket>,
}

impl DomainRecord {
    pub(crate) fn of(
        domain: &str,
        a: &Analysis,
        check: &ObjectiveCheck,
        verdict: Verdict,
        judged: bool,
    ) -> Self {
        DomainRecord {
            domain: domain.to_string(),
            verdict,
            judged,
            rpo: a.rpo.clone(),
            rto: a.rto.clone(),
            ops: a.ops,
            check: check.clone(),
            recovery: None,
            t_fault_us: a.t_fault_us,
            buckets: a.buckets.clone(),
        }
    }
}

/// A domain's recovery is the one its events name (`orders: promote`).
pub(crate) fn place_recoveries(
    domains: &mut [DomainRecord],
    all: impl Iterator<Item = RecoveryEntry>,
) {
    for r in all {
        if let Some(d) = domains
            .iter_mut()
            .find(|d| r.action.starts_with(&format!("{}: ", d.domain)))
        {
            d.recovery = Some(r);
        }
    }
}

/// The capability block of a trial's summary.
pub(crate) fn capability_block(out: &mut String, t: &TrialRecord) {
    let Some(c) = &t.capability else { return };
    let _ = writeln!(
        out,
        "  capability  write order {}: {} operations acknowledged end to end, {} not whole after the recovery",
        c.order.join(" → "),
        c.ok,
        c.not_whole
    );
    for d in &t.domains {
        let rto = d
            .rto
            .achieved_s
            .map_or("never recovered".into(), |s| format!("{s:.2} s"));
        let judged = if d.judged {
            format!(" ({:?})", d.verdict).to_lowercase()
        } else {
            String::new()
        };
        let rec = d.recovery.as_ref().map_or(String::new(), |r| {
            format!(
                ", recovered by {}",
                r.action.split_once(": ").map_or("", |x| x.1)
            )
        });
        if !c.order.contains(&d.domain) {
            // An outbox's log or projection: written by Debezium and the
            // consumer, so its figures are the outbox's, below.
            let span = d.recovery.as_ref().map_or(String::new(), |r| {
                format!(" ({:+.2} s .. {:+.2} s)", r.start_s, r.done_s)
            });
            let _ = writeln!(
                out,
                "    domain {}: not written by the operation (the outbox's){rec}{span}",
                d.domain
            );
            continue;
        }
        let _ = writeln!(
            out,
            "    domain {}{judged}: RPO {:.2} s (lost {} of {} ok, predicted {}), RTO {rto}{rec}",
            d.domain,
            d.rpo.achieved_s,
            d.rpo.lost,
            d.ops.ok,
            d.rpo
                .predicted_s
                .map_or("-".into(), |p| format!("{p:.2} s")),
        );
    }
    if c.orphans.is_empty() {
        let _ = writeln!(out, "    orphans: none (every survivor is whole)");
    }
    for o in &c.orphans {
        let span = o.span_s.map_or(String::new(), |[a, b]| {
            format!(", acknowledged {a:+.2} s to {b:+.2} s from the disaster")
        });
        let _ = writeln!(
            out,
            "    orphans in {} not in {}: {}{span}",
            o.present_in.join(" + "),
            o.missing_in.join(" + "),
            o.count
        );
    }
    let dom = match &c.dominated_by {
        Some(d) => format!("; {d}'s loss dominates"),
        None => String::new(),
    };
    let per: Vec<String> = c
        .domain_rpo_s
        .iter()
        .map(|(n, r)| format!("{n} {r:.2} s"))
        .collect();
    let _ = writeln!(
        out,
        "    capability RPO {:.2} s (domains over the same operations: {}){dom}",
        c.rpo_s,
        per.join(", ")
    );
    if let Some(o) = &c.outbox {
        outbox_lines(out, o);
    }
}

/// The outbox's three-way audit, in the summary.
fn outbox_lines(out: &mut String, o: &firedrill_ledger::outbox::OutboxFigures) {
    let caught = o
        .caught_up_s
        .map_or("had not caught up at the audit's limit".into(), |s| {
            format!("caught up {s:.2} s after the workload")
        });
    let _ = writeln!(
        out,
        "    outbox ({} consumer): {} orders acknowledged, {} lost; {} events in the log, {caught}",
        o.consumer.replace('_', "-"),
        o.orders_acked,
        o.orders_lost,
        o.log_records
    );
    let _ = writeln!(
        out,
        "      orders without their event {}, events without their order {}",
        o.events_lost, o.events_without_order
    );
    let _ = writeln!(
        out,
        "      in the log twice {}, delivered twice {}, applied twice {}, never applied {}",
        o.log_duplicates, o.delivered_twice, o.applied_twice, o.not_applied
    );
}
