//! The consumer side of a stream's ledger (DESIGN.md, "Streams"): a
//! consumer group reads the drill topic throughout the trial, and when it
//! first delivered each record, and how often, gives `consumer_rto`,
//! `redelivered` and `skipped`. A producer that recovered is half of a
//! stream's recovery; the consumers that must find their place again are
//! the other half.

use crate::{AuditSet, Micros, Op};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// What the drill's consumer group did, as recorded during the trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumerLog {
    /// The group's id.
    pub group: String,
    /// The settings that move its figures (commit and checkpoint
    /// intervals), for the report beside `redelivered`.
    pub settings: String,
    /// (seq, observer time of the delivery), in delivery order; a seq seen
    /// again is a redelivery.
    pub deliveries: Vec<(u64, Micros)>,
    /// (observer time, what it did): where it resumed after a failover,
    /// from which translated offsets.
    pub notes: Vec<(Micros, String)>,
}

/// The consumer's figures for one trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumerFigures {
    pub group: String,
    pub settings: String,
    /// Distinct records of this run the group delivered.
    pub delivered: u64,
    /// Deliveries of a record already delivered: duplicates the
    /// application must absorb.
    pub redelivered: u64,
    /// Records present in the recovered store that the group never
    /// delivered: silent loss for the consumer, though the broker kept them.
    pub skipped: u64,
    /// From t_fault until the group delivered a record written after the
    /// fault and had delivered every surviving record acknowledged more
    /// than `stable_for` earlier; None when that never happened.
    pub consumer_rto_s: Option<f64>,
    /// The log's notes, times relative to t_fault (or to the start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The consumer figures of a trial: `ops` the ledger, `audit` what
/// survived, `t_fault` the disaster's start (None for a baseline run),
/// `stable_us` the SLO's stable_for.
pub fn consumer_figures(
    ops: &[Op],
    audit: &AuditSet,
    log: &ConsumerLog,
    t_fault: Option<Micros>,
    stable_us: Micros,
) -> ConsumerFigures {
    let by_seq: HashMap<u64, &Op> = ops.iter().map(|o| (o.seq, o)).collect();
    let mut first: HashMap<u64, Micros> = HashMap::new();
    let mut redelivered = 0u64;
    for &(seq, t) in &log.deliveries {
        if !by_seq.contains_key(&seq) {
            continue; // not this run's record
        }
        match first.entry(seq) {
            std::collections::hash_map::Entry::Occupied(_) => redelivered += 1,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(t);
            }
        }
    }
    let survived: HashSet<u64> = audit
        .ids()
        .iter()
        .copied()
        .filter(|s| by_seq.contains_key(s))
        .collect();
    let skipped = survived.iter().filter(|s| !first.contains_key(s)).count() as u64;
    let consumer_rto_s = t_fault.and_then(|tf| {
        caught_up_at(&by_seq, &survived, &first, tf, stable_us)
            .map(|t| (t as f64 - tf as f64) / 1e6)
    });
    let base = t_fault.unwrap_or(0) as f64;
    let notes = log
        .notes
        .iter()
        .map(|(t, n)| format!("{:+.3} s: {n}", (*t as f64 - base) / 1e6))
        .collect();
    ConsumerFigures {
        group: log.group.clone(),
        settings: log.settings.clone(),
        delivered: first.len() as u64,
        redelivered,
        skipped,
        consumer_rto_s,
        notes,
    }
}

/// The first delivery time T, at or after the group's first delivery of a
/// surviving record invoked at or after `t_fault`, at which every surviving record acknowledged by T −
/// `stable_us` had been delivered (skipped ones aside: they are counted
/// as skipped, not as a consumer that never recovered).
fn caught_up_at(
    by_seq: &HashMap<u64, &Op>,
    survived: &HashSet<u64>,
    first: &HashMap<u64, Micros>,
    t_fault: Micros,
    stable_us: Micros,
) -> Option<Micros> {
    // (acknowledged, first delivered), by acknowledgement; prefix maxima of
    // the delivery times say when everything up to an ack was delivered.
    let mut items: Vec<(Micros, Micros)> = survived
        .iter()
        .filter_map(|s| Some((by_seq.get(s)?.t_done, *first.get(s)?)))
        .collect();
    items.sort_unstable();
    let mut prefix = Vec::with_capacity(items.len());
    let mut m = 0;
    for &(_, d) in &items {
        m = m.max(d);
        prefix.push(m);
    }
    // The group delivers again at its first delivery of a record written
    // after the fault; from then on, each delivery is a moment it may
    // have caught up (an old record delivered late can be the last one).
    let again = survived
        .iter()
        .filter(|s| by_seq.get(s).is_some_and(|o| o.t_invoke >= t_fault))
        .filter_map(|s| first.get(s).copied())
        .min()?;
    let mut candidates: Vec<Micros> = items
        .iter()
        .map(|&(_, d)| d)
        .filter(|&d| d >= again)
        .collect();
    candidates.sort_unstable();
    candidates.into_iter().find(|&t| {
        let k = items.partition_point(|&(a, _)| a.saturating_add(stable_us) <= t);
        k == 0 || prefix[k - 1] <= t
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use proptest::prelude::*;

    fn op(seq: u64, t: Micros) -> Op {
        Op {
            seq,
            t_invoke: t,
            t_done: t + 1_000,
            outcome: Outcome::Ok,
        }
    }

    fn log(d: &[(u64, Micros)]) -> ConsumerLog {
        ConsumerLog {
            group: "g".into(),
            deliveries: d.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn redelivered_skipped_and_the_catch_up() {
        // Records 1..=4 before the fault at 10 s, 5..=6 after it (B).
        let ops: Vec<Op> = [1, 2, 3, 4]
            .iter()
            .map(|&s| op(s, s * 1_000_000))
            .chain([op(5, 12_000_000), op(6, 13_000_000)])
            .collect();
        // 4 was acknowledged but lost; 1, 2, 3, 5, 6 survived.
        let audit = AuditSet::new(vec![1, 2, 3, 5, 6]);
        // Delivered 1, 2, 3 before the fault; after the failover, resumed
        // at a translated offset before 2: 2 and 3 again, then 5, then 6.
        let l = log(&[
            (1, 1_100_000),
            (2, 2_100_000),
            (3, 3_100_000),
            (2, 14_000_000),
            (3, 14_000_001),
            (5, 14_000_002),
            (6, 14_000_003),
        ]);
        let f = consumer_figures(&ops, &audit, &l, Some(10_000_000), 2_000_000);
        assert_eq!(f.delivered, 5);
        assert_eq!(f.redelivered, 2);
        assert_eq!(f.skipped, 0);
        assert_eq!(f.consumer_rto_s, Some(4.000002));
    }

    #[test]
    fn a_consumer_positioned_past_records_skips_them() {
        let ops: Vec<Op> = (1..=6).map(|s| op(s, s * 1_000_000)).collect();
        let audit = AuditSet::new((1..=6).collect());
        let l = log(&[(1, 1_100_000), (2, 2_100_000), (6, 8_000_000)]);
        let f = consumer_figures(&ops, &audit, &l, Some(4_000_000), 1_000_000);
        assert_eq!(f.skipped, 3, "3, 4, 5 never delivered");
        assert_eq!(f.redelivered, 0);
        // 6 was invoked after the fault; everything acknowledged before
        // 7 s that was delivered was delivered by 8 s.
        assert_eq!(f.consumer_rto_s, Some(4.0));
    }

    #[test]
    fn a_consumer_still_behind_never_recovered() {
        let ops: Vec<Op> = (1..=10).map(|s| op(s, s * 1_000_000)).collect();
        let audit = AuditSet::new((1..=10).collect());
        // After the fault at 5 s it delivers 6..=10 but 4 only much later
        // than its ack + stable_for: caught up when 4 arrives.
        let mut d: Vec<(u64, Micros)> = (1..=3).map(|s| (s, s * 1_000_000 + 10)).collect();
        d.extend((6..=10).map(|s| (s, 11_000_000 + s)));
        d.push((5, 20_000_000));
        d.push((4, 21_000_000));
        let f = consumer_figures(&ops, &audit, &log(&d), Some(5_000_000), 1_000_000);
        assert_eq!(f.consumer_rto_s, Some(16.0));
        // Without the late ones: skipped, and caught up at the first
        // post-fault delivery whose predecessors were all delivered.
        let d2: Vec<(u64, Micros)> = d
            .iter()
            .copied()
            .filter(|(s, _)| *s > 5 || *s < 4)
            .collect();
        let f = consumer_figures(&ops, &audit, &log(&d2), Some(5_000_000), 1_000_000);
        assert_eq!(f.skipped, 2);
        assert_eq!(f.consumer_rto_s, Some(6.000009));
    }

    #[test]
    fn other_runs_records_and_baselines() {
        let ops = vec![op(1, 1_000_000)];
        let audit = AuditSet::new(vec![1, 99]);
        let f = consumer_figures(&ops, &audit, &log(&[(99, 5), (1, 2_000_000)]), None, 1);
        assert_eq!((f.delivered, f.redelivered, f.skipped), (1, 0, 0));
        assert_eq!(f.consumer_rto_s, None, "no fault, no consumer RTO");
    }

    #[test]
    fn write_latency_by_nearest_rank() {
        let ops: Vec<Op> = (1..=100)
            .map(|s| Op {
                seq: s,
                t_invoke: s * 10_000,
                t_done: s * 10_000 + s * 1_000,
                outcome: if s == 100 { Outcome::Fail } else { Outcome::Ok },
            })
            .collect();
        // 99 acknowledged, latencies 1..=99 ms.
        let w = crate::WriteLatency::of(&ops, 0, u64::MAX).expect("some");
        assert_eq!((w.n, w.min_ms, w.p50_ms, w.p99_ms), (99, 1.0, 50.0, 99.0));
        // The window is by invocation: [from, to).
        let w = crate::WriteLatency::of(&ops, 100_000, 200_000).expect("some");
        assert_eq!((w.n, w.min_ms, w.p50_ms, w.p99_ms), (10, 10.0, 14.0, 19.0));
        assert_eq!(crate::WriteLatency::of(&ops, 5_000_000, 6_000_000), None);
    }

    proptest! {
        /// Every surviving record is either delivered or skipped, and
        /// redeliveries are exactly the deliveries beyond the first.
        #[test]
        fn counts_add_up(
            n in 1u64..60,
            lost in proptest::collection::vec(any::<bool>(), 60),
            order in proptest::collection::vec((1u64..60, 0u64..100_000_000), 0..200),
        ) {
            let ops: Vec<Op> = (1..=n).map(|s| op(s, s * 100_000)).collect();
            let survived: Vec<u64> = (1..=n).filter(|s| !lost[*s as usize]).collect();
            let audit = AuditSet::new(survived.clone());
            // A record is delivered after it was written.
            let d: Vec<(u64, Micros)> = order
                .iter()
                .filter(|(s, _)| *s <= n)
                .map(|&(s, t)| (s, t.max(s * 100_000 + 1_000)))
                .collect();
            let f = consumer_figures(&ops, &audit, &log(&d), Some(3_000_000), 1_000_000);
            let distinct: HashSet<u64> = d.iter().map(|(s, _)| *s).collect();
            prop_assert_eq!(f.delivered, distinct.len() as u64);
            prop_assert_eq!(f.redelivered, d.len() as u64 - distinct.len() as u64);
            let delivered_survivors = survived.iter().filter(|s| distinct.contains(s)).count() as u64;
            prop_assert_eq!(f.skipped + delivered_survivors, survived.len() as u64);
            if let Some(r) = f.consumer_rto_s {
                prop_assert!(r > 0.0);
            }
        }
    }
}
