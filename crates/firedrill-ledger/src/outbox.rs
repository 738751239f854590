//! The outbox's three-way audit (DESIGN.md, "Capabilities"): the orders
//! the source database holds, the events the log holds, and what the
//! consumer applied to the projection. Pure: the reads come from
//! `OutboxPipeline::read`, the orders from the source domain's audit.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the log and the projection held at the end of a trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboxRead {
    /// Every record of this run in the log, in log order: the order
    /// (ledger entry) it is for, and its event id.
    pub log: Vec<(u64, String)>,
    /// How many times the consumer received each event (by id).
    pub deliveries: BTreeMap<String, u64>,
    /// How many times the projection applied an event to each order.
    pub applied: BTreeMap<u64, u64>,
    /// The consumer had read the log to its end.
    pub consumer_caught_up: bool,
}

/// The outbox figures of one trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboxFigures {
    /// `idempotent` or `non_idempotent`.
    pub consumer: String,
    /// Orders acknowledged to the operation.
    pub orders_acked: u64,
    /// Acknowledged orders the source no longer holds.
    pub orders_lost: u64,
    /// Orders the source holds whose event is not in the log ("orders
    /// without their event").
    pub events_lost: u64,
    /// Events in the log for orders the source does not hold ("events for
    /// orders that no longer exist"); an unacknowledged order that
    /// committed is in the source, so it is not counted here.
    pub events_without_order: u64,
    /// Events in the log more than once (Debezium is at-least-once: a
    /// worker restarted from its last flushed offset publishes again).
    pub log_duplicates: u64,
    /// Events the consumer received more than once.
    pub delivered_twice: u64,
    /// Orders the projection applied more than once ("the same payment
    /// applied twice"): 0 with an idempotent consumer.
    pub applied_twice: u64,
    /// Events in the log the projection never applied.
    pub not_applied: u64,
    /// Records of this run in the log.
    pub log_records: u64,
    /// How long after the workload the log and projection caught up, or
    /// None when they had not by the audit's limit.
    pub caught_up_s: Option<f64>,
}

impl OutboxFigures {
    /// Why the outbox failed its trial, if it did: an order without its
    /// event, an event applied twice or never, or a pipeline that never
    /// caught up.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.events_lost > 0 {
            out.push(format!(
                "outbox: {} orders without their event in the log",
                self.events_lost
            ));
        }
        if self.applied_twice > 0 {
            out.push(format!(
                "outbox: {} orders applied twice by the {} consumer",
                self.applied_twice, self.consumer
            ));
        }
        if self.not_applied > 0 {
            out.push(format!(
                "outbox: {} events in the log never applied to the projection",
                self.not_applied
            ));
        }
        if self.caught_up_s.is_none() {
            out.push(
                "outbox: the log and the projection did not catch up before the audit's limit"
                    .into(),
            );
        }
        out
    }
}

impl OutboxFigures {
    /// The outbox's inconsistencies as the capability's orphans, by kind
    /// (DESIGN.md: "an order without its event"): orders without their
    /// event, events without their order, events never applied. Their
    /// times are not known per event, so they have no span.
    pub fn orphans(
        &self,
        source: &str,
        log: &str,
        projection: &str,
    ) -> Vec<crate::capability::Orphans> {
        [
            (source, log, self.events_lost),
            (log, source, self.events_without_order),
            (log, projection, self.not_applied),
        ]
        .into_iter()
        .filter(|(_, _, n)| *n > 0)
        .map(|(p, m, count)| crate::capability::Orphans {
            present_in: vec![p.to_string()],
            missing_in: vec![m.to_string()],
            count,
            span_s: None,
        })
        .collect()
    }
}

/// The three-way audit. `acked`: the operations acknowledged on the
/// source; `present`: the entries the source holds after the trial.
pub fn outbox_figures(
    consumer: &str,
    acked: &[u64],
    present: &[u64],
    read: &OutboxRead,
    caught_up_s: Option<f64>,
) -> OutboxFigures {
    let present: BTreeSet<u64> = present.iter().copied().collect();
    let mut per_event: BTreeMap<&str, u64> = BTreeMap::new();
    let mut in_log: BTreeSet<u64> = BTreeSet::new();
    for (seq, id) in &read.log {
        *per_event.entry(id.as_str()).or_default() += 1;
        in_log.insert(*seq);
    }
    let acked_set: BTreeSet<u64> = acked.iter().copied().collect();
    OutboxFigures {
        consumer: consumer.to_string(),
        orders_acked: acked_set.len() as u64,
        orders_lost: acked_set.difference(&present).count() as u64,
        events_lost: present.difference(&in_log).count() as u64,
        events_without_order: in_log.difference(&present).count() as u64,
        log_duplicates: per_event.values().filter(|n| **n > 1).count() as u64,
        delivered_twice: read.deliveries.values().filter(|n| **n > 1).count() as u64,
        applied_twice: read.applied.values().filter(|n| **n > 1).count() as u64,
        not_applied: in_log
            .iter()
            .filter(|s| read.applied.get(s).copied().unwrap_or(0) == 0)
            .count() as u64,
        log_records: read.log.len() as u64,
        caught_up_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(log: &[(u64, &str)], deliveries: &[(&str, u64)], applied: &[(u64, u64)]) -> OutboxRead {
        OutboxRead {
            log: log.iter().map(|(s, i)| (*s, i.to_string())).collect(),
            deliveries: deliveries
                .iter()
                .map(|(i, n)| (i.to_string(), *n))
                .collect(),
            applied: applied.iter().copied().collect(),
            consumer_caught_up: true,
        }
    }

    #[test]
    fn three_ways() {
        // 1..=4 acked; 4 lost by the source; 5 committed unacknowledged.
        // The log has 1 twice, 2, 3 and 9 (an order the source lacks).
        let r = read(
            &[(1, "e1"), (2, "e2"), (1, "e1"), (3, "e3"), (9, "e9")],
            &[("e1", 2), ("e2", 1), ("e3", 1), ("e9", 1)],
            &[(1, 2), (2, 1), (9, 1)],
        );
        let f = outbox_figures(
            "non_idempotent",
            &[1, 2, 3, 4],
            &[1, 2, 3, 5],
            &r,
            Some(1.5),
        );
        assert_eq!(f.orders_acked, 4);
        assert_eq!(f.orders_lost, 1, "4");
        assert_eq!(f.events_lost, 1, "5 has no event");
        assert_eq!(f.events_without_order, 1, "9");
        assert_eq!(f.log_duplicates, 1);
        assert_eq!(f.delivered_twice, 1);
        assert_eq!(f.applied_twice, 1, "1 applied twice");
        assert_eq!(f.not_applied, 1, "3 never applied");
        assert_eq!(f.log_records, 5);
        assert_eq!(f.reasons().len(), 3);
        let kinds: Vec<(String, String, u64)> = f
            .orphans("orders", "events", "session")
            .into_iter()
            .map(|o| (o.present_in[0].clone(), o.missing_in[0].clone(), o.count))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("orders".into(), "events".into(), 1),
                ("events".into(), "orders".into(), 1),
                ("events".into(), "session".into(), 1)
            ]
        );
    }

    #[test]
    fn a_clean_pipeline_passes() {
        let r = read(
            &[(1, "e1"), (2, "e2")],
            &[("e1", 1), ("e2", 1)],
            &[(1, 1), (2, 1)],
        );
        let f = outbox_figures("idempotent", &[1, 2], &[1, 2], &r, Some(0.4));
        assert!(f.reasons().is_empty(), "{:?}", f.reasons());
        let late = outbox_figures("idempotent", &[1, 2], &[1, 2], &r, None);
        assert_eq!(late.reasons().len(), 1);
    }

    proptest! {
        /// Duplicating log records never changes which orders have an
        /// event; it only adds duplicates.
        #[test]
        fn duplicates_never_hide_a_loss(
            present in proptest::collection::btree_set(1u64..200, 0..60),
            logged in proptest::collection::btree_set(1u64..200, 0..60),
            dup_every in 1usize..5,
        ) {
            let present: Vec<u64> = present.into_iter().collect();
            let mut log: Vec<(u64, String)> = logged.iter().map(|s| (*s, format!("e{s}"))).collect();
            let base = outbox_figures("idempotent", &present, &present, &OutboxRead { log: log.clone(), ..Default::default() }, Some(0.0));
            let extra: Vec<(u64, String)> = log.iter().step_by(dup_every).cloned().collect();
            log.extend(extra.iter().cloned());
            let dup = outbox_figures("idempotent", &present, &present, &OutboxRead { log, ..Default::default() }, Some(0.0));
            prop_assert_eq!(base.events_lost, dup.events_lost);
            prop_assert_eq!(base.events_without_order, dup.events_without_order);
            prop_assert_eq!(dup.log_duplicates, extra.len() as u64);
            prop_assert_eq!(base.events_lost, present.iter().filter(|s| !logged.contains(s)).count() as u64);
        }
    }
}
