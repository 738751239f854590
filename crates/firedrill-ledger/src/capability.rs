//! A capability's figures (DESIGN.md, "Capabilities"): one business
//! operation writes one entry per domain, in a declared order, and is `ok`
//! only when every domain acknowledged its write. After a disaster that
//! hit several domains, what the business lost is not each domain's loss
//! but the operations that no longer survive whole, and the orphans: the
//! operations acknowledged end to end that survived in some domains and
//! not in others (an order without its event).
//!
//! Pure, like the rest of the crate: the engine gives each domain's ledger
//! (keyed by the operation's seq) and audit set; nothing here reads a
//! clock or a store. The engine's capability trial calls it.

use crate::{analyze, AuditSet, Micros, Op, Outcome, Slo, Timeline};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One domain's side of a capability trial.
pub struct DomainLedger<'a> {
    pub name: &'a str,
    /// This domain's writes, keyed by the operation's seq. An operation
    /// whose earlier write failed has no entry in the later domains.
    pub ops: &'a [Op],
    /// What survived in this domain's recovered store.
    pub audit: &'a AuditSet,
}

/// Operations acknowledged end to end that survived in some domains and
/// not in others, grouped by where they are missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Orphans {
    /// The domains that kept the operation's write.
    pub present_in: Vec<String>,
    /// The domains that lost it.
    pub missing_in: Vec<String>,
    pub count: u64,
    /// First and last such operation's acknowledgement, seconds relative
    /// to t_fault.
    pub span_s: Option<[f64; 2]>,
}

/// The capability's own figures, beside each domain's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapabilityFigures {
    /// The declared write order, which is also the report's order.
    pub order: Vec<String>,
    /// Operations acknowledged end to end.
    pub ok: u64,
    /// Of those, how many did not survive whole (in at least one domain
    /// their write is gone).
    pub not_whole: u64,
    /// Orphans by kind (lost everywhere is not an orphan: nothing is
    /// inconsistent, the operation is simply gone).
    pub orphans: Vec<Orphans>,
    /// The window of end-to-end acknowledged operations that did not
    /// survive whole: max(0, t_fault_done − first such acknowledgement).
    pub rpo_s: f64,
    /// Until end-to-end operations met the SLO again.
    pub rto_s: Option<f64>,
    /// Each domain's own RPO over the same operations, in `order`.
    pub domain_rpo_s: Vec<(String, f64)>,
    /// The domain whose loss sets the capability's RPO (the largest
    /// domain RPO), when any domain lost anything.
    pub dominated_by: Option<String>,
    /// The outbox's three-way audit, for an outbox capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<crate::outbox::OutboxFigures>,
}

/// The capability figures of one trial. `timeline` is the trial's (its
/// faults give t_fault), `slo` the drill's.
pub fn capability_figures(
    domains: &[DomainLedger<'_>],
    timeline: &Timeline,
    slo: &Slo,
) -> CapabilityFigures {
    capability_analysis(domains, timeline, slo).1
}

/// The end-to-end analysis (the capability's ledger classified against
/// what survived whole: its RPO, RTO, buckets) and the capability figures.
/// The end-to-end ledger is returned too, for the run's files.
pub fn capability_analysis(
    domains: &[DomainLedger<'_>],
    timeline: &Timeline,
    slo: &Slo,
) -> (crate::Analysis, CapabilityFigures, Vec<Op>, AuditSet) {
    let order: Vec<String> = domains.iter().map(|d| d.name.to_string()).collect();
    let Some(first) = domains.first() else {
        return Default::default();
    };
    let per: Vec<HashMap<u64, &Op>> = domains
        .iter()
        .map(|d| d.ops.iter().map(|o| (o.seq, o)).collect())
        .collect();
    let kept: Vec<HashSet<u64>> = domains
        .iter()
        .map(|d| d.audit.ids().iter().copied().collect())
        .collect();
    // The end-to-end ledger: an operation is ok when every domain's write
    // was, failed when any was refused (the later ones were then never
    // attempted), unknown otherwise; it took from the first write's
    // invocation to the last write's answer.
    let mut e2e = Vec::with_capacity(first.ops.len());
    let mut whole = Vec::new();
    for o in first.ops {
        let writes: Vec<Option<&&Op>> = per.iter().map(|m| m.get(&o.seq)).collect();
        let outcome = if writes
            .iter()
            .all(|w| w.is_some_and(|w| w.outcome == Outcome::Ok))
        {
            Outcome::Ok
        } else if writes.iter().flatten().any(|w| w.outcome == Outcome::Fail) {
            Outcome::Fail
        } else {
            Outcome::Unknown
        };
        let t_done = writes
            .iter()
            .flatten()
            .map(|w| w.t_done)
            .max()
            .unwrap_or(o.t_done);
        e2e.push(Op {
            seq: o.seq,
            t_invoke: o.t_invoke,
            t_done,
            outcome,
        });
        if kept.iter().all(|k| k.contains(&o.seq)) {
            whole.push(o.seq);
        }
    }
    let whole = AuditSet::new(whole);
    let mut a = analyze(&e2e, timeline, &whole, slo);
    let t_fault = a.t_fault_us.unwrap_or(timeline.measure_start);
    let mut kinds: BTreeMap<Vec<bool>, (u64, Micros, Micros)> = BTreeMap::new();
    for o in e2e.iter().filter(|o| o.outcome == Outcome::Ok) {
        let here: Vec<bool> = kept.iter().map(|k| k.contains(&o.seq)).collect();
        if here.iter().all(|h| *h) || here.iter().all(|h| !*h) {
            continue;
        }
        let e = kinds.entry(here).or_insert((0, o.t_done, o.t_done));
        e.0 += 1;
        e.1 = e.1.min(o.t_done);
        e.2 = e.2.max(o.t_done);
    }
    let rel = |t: Micros| (t as f64 - t_fault as f64) / 1e6;
    let names = |here: &[bool], want: bool| -> Vec<String> {
        order
            .iter()
            .zip(here)
            .filter(|(_, h)| **h == want)
            .map(|(n, _)| n.clone())
            .collect()
    };
    let orphans = kinds
        .iter()
        .map(|(here, (count, lo, hi))| Orphans {
            present_in: names(here, true),
            missing_in: names(here, false),
            count: *count,
            span_s: Some([rel(*lo), rel(*hi)]),
        })
        .collect();
    // Each domain's RPO over the end-to-end acknowledged operations: the
    // same window rule as the capability's, per domain.
    let e2e_ok: Vec<Op> = e2e
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .cloned()
        .collect();
    let domain_rpo_s: Vec<(String, f64)> = domains
        .iter()
        .map(|d| {
            let r = analyze(&e2e_ok, timeline, d.audit, slo).rpo.achieved_s;
            (d.name.to_string(), r)
        })
        .collect();
    let dominated_by = domain_rpo_s
        .iter()
        .filter(|(_, r)| *r > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| n.clone());
    let figs = CapabilityFigures {
        order,
        ok: a.ops.ok,
        not_whole: a.rpo.lost,
        orphans,
        rpo_s: a.rpo.achieved_s,
        rto_s: a.rto.achieved_s,
        domain_rpo_s,
        dominated_by,
        outbox: None,
    };
    a.capability = Some(figs.clone());
    (a, figs, e2e, whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FaultRecord;
    use proptest::prelude::*;

    fn op(seq: u64, t: Micros, outcome: Outcome) -> Op {
        Op {
            seq,
            t_invoke: t,
            t_done: t + 2_000,
            outcome,
        }
    }

    /// One disaster at 10 s, in effect at once.
    fn timeline() -> Timeline {
        Timeline {
            measure_start: 0,
            workload_end: 20_000_000,
            faults: vec![FaultRecord {
                step: 0,
                action: "kill".into(),
                node: "n1".into(),
                disaster: true,
                t_start: 10_000_000,
                t_done: Some(10_000_000),
                heal_start: None,
                heal_done: None,
                error: None,
            }],
            ..Timeline::default()
        }
    }

    #[test]
    fn orphans_of_both_kinds_and_the_dominating_domain() {
        // 100 operations, one every 100 ms from 0.1 s; all acknowledged.
        let orders: Vec<Op> = (1..=100).map(|s| op(s, s * 100_000, Outcome::Ok)).collect();
        let sessions: Vec<Op> = (1..=100)
            .map(|s| op(s, s * 100_000 + 1_000, Outcome::Ok))
            .collect();
        // Orders (async PostgreSQL) lost the last 2 s before the fault at
        // 10 s (seqs 81..=100); sessions (Redis) the last 1 s (91..=100),
        // plus an older one, 50.
        let o_kept = AuditSet::new((1..=80).collect());
        let s_kept = AuditSet::new((1..=90).filter(|s| *s != 50).collect());
        let d = [
            DomainLedger {
                name: "orders",
                ops: &orders,
                audit: &o_kept,
            },
            DomainLedger {
                name: "sessions",
                ops: &sessions,
                audit: &s_kept,
            },
        ];
        let f = capability_figures(&d, &timeline(), &Slo::default());
        assert_eq!(f.ok, 100);
        // Not whole: 50 and 81..=100.
        assert_eq!(f.not_whole, 21);
        let kind = |missing: &str| {
            f.orphans
                .iter()
                .find(|o| o.missing_in == [missing])
                .cloned()
        };
        // An order without its session: 50.
        let no_session = kind("sessions").expect("orders kept, sessions lost");
        assert_eq!(
            (no_session.count, no_session.present_in.clone()),
            (1, vec!["orders".to_string()])
        );
        // A session without its order: 81..=90.
        let no_order = kind("orders").expect("sessions kept, orders lost");
        assert_eq!(no_order.count, 10);
        let [lo, hi] = no_order.span_s.expect("span");
        assert!(
            (lo - (-1.897)).abs() < 1e-6 && (hi - (-0.997)).abs() < 1e-6,
            "{lo} {hi}"
        );
        // The capability's RPO is at least the worse domain's.
        let worst = f.domain_rpo_s.iter().map(|(_, r)| *r).fold(0.0, f64::max);
        assert!(f.rpo_s >= worst, "{} < {worst}", f.rpo_s);
        // Seq 50 (4.9 s before the fault) sets the capability's window.
        assert!((f.rpo_s - 4.997).abs() < 1e-6, "{}", f.rpo_s);
        assert_eq!(f.dominated_by.as_deref(), Some("sessions"));
        assert_eq!(f.order, ["orders", "sessions"]);
    }

    #[test]
    fn a_failed_first_write_is_a_failed_operation_not_an_orphan() {
        let orders = vec![op(1, 100_000, Outcome::Ok), op(2, 200_000, Outcome::Fail)];
        // The second domain was never written for 2.
        let events = vec![op(1, 101_000, Outcome::Ok)];
        let kept = AuditSet::new(vec![1]);
        let d = [
            DomainLedger {
                name: "orders",
                ops: &orders,
                audit: &kept,
            },
            DomainLedger {
                name: "events",
                ops: &events,
                audit: &kept,
            },
        ];
        let f = capability_figures(&d, &timeline(), &Slo::default());
        assert_eq!((f.ok, f.not_whole), (1, 0));
        assert!(f.orphans.is_empty());
        assert_eq!(f.rpo_s, 0.0);
        assert_eq!(f.dominated_by, None);
    }

    proptest! {
        /// Whatever survived where: every end-to-end acknowledged operation
        /// is whole, gone everywhere, or an orphan of exactly one kind, and
        /// the capability's RPO is never below a domain's.
        #[test]
        fn orphans_partition_what_is_not_whole(
            n in 1u64..80,
            keep_a in proptest::collection::vec(any::<bool>(), 80),
            keep_b in proptest::collection::vec(any::<bool>(), 80),
        ) {
            let a: Vec<Op> = (1..=n).map(|s| op(s, s * 100_000, Outcome::Ok)).collect();
            let b: Vec<Op> = (1..=n).map(|s| op(s, s * 100_000 + 500, Outcome::Ok)).collect();
            let ka = AuditSet::new((1..=n).filter(|s| keep_a[*s as usize - 1]).collect());
            let kb = AuditSet::new((1..=n).filter(|s| keep_b[*s as usize - 1]).collect());
            let d = [
                DomainLedger { name: "a", ops: &a, audit: &ka },
                DomainLedger { name: "b", ops: &b, audit: &kb },
            ];
            let f = capability_figures(&d, &timeline(), &Slo::default());
            let gone = (1..=n).filter(|s| !keep_a[*s as usize - 1] && !keep_b[*s as usize - 1]).count() as u64;
            let orphans: u64 = f.orphans.iter().map(|o| o.count).sum();
            prop_assert_eq!(f.not_whole, orphans + gone);
            for (_, r) in &f.domain_rpo_s {
                prop_assert!(f.rpo_s >= *r);
            }
        }
    }
}
