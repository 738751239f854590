//! Achieved and predicted RPO: which acknowledged writes the recovered
//! store no longer has, and how far back before the fault they reach.
//!
//! Ledgers reach tens of millions of ops, so membership in the audit set is
//! a dense byte array indexed by seq (seqs are dense from 1) rather than a
//! hash set; a sorted-slice fallback keeps absurd seqs (gaps, u64::MAX)
//! from turning into absurd allocations.

use crate::{AuditSet, LagSample, Micros, Op, OpCounts, Outcome, RpoFigures, Timeline};

/// Bit set in [`Presence::Dense`] when some op carries this seq.
const WRITTEN: u8 = 1;
/// Bit set when the seq was also found in the audit set.
const PRESENT: u8 = 2;

/// Seq-indexed marks are used while the largest seq stays within this
/// factor of the op count (plus slack): beyond it the ledger is too sparse
/// for a dense array to be cheap.
const DENSE_FACTOR: u64 = 4;
const DENSE_SLACK: u64 = 1 << 16;

/// RPO figures (without `predicted_s`) and the op counts, from one pass.
pub(crate) fn achieved(
    ops: &[Op],
    audit: &AuditSet,
    t_fault: Micros,
    t_fault_done: Micros,
) -> (RpoFigures, OpCounts) {
    let ids = audit.ids();
    let duplicates = count_duplicates(ids);
    let max_seq = ops.iter().map(|o| o.seq).max().unwrap_or(0);
    let dense_limit = (ops.len() as u64)
        .saturating_mul(DENSE_FACTOR)
        .saturating_add(DENSE_SLACK);
    let (tally, phantoms) = match usize::try_from(max_seq) {
        Ok(max) if max_seq <= dense_limit => {
            let mut marks = vec![0u8; max + 1];
            for op in ops {
                marks[op.seq as usize] = WRITTEN;
            }
            let mut phantoms = 0;
            for id in distinct(ids) {
                match usize::try_from(id).ok().and_then(|i| marks.get_mut(i)) {
                    Some(m) if *m & WRITTEN != 0 => *m |= PRESENT,
                    _ => phantoms += 1,
                }
            }
            let t = tally(ops, t_fault_done, |seq| marks[seq as usize] & PRESENT != 0);
            (t, phantoms)
        }
        _ => {
            let mut written: Vec<u64> = ops.iter().map(|o| o.seq).collect();
            written.sort_unstable();
            written.dedup();
            let phantoms = distinct(ids)
                .filter(|id| written.binary_search(id).is_err())
                .count() as u64;
            let t = tally(ops, t_fault_done, |seq| ids.binary_search(&seq).is_ok());
            (t, phantoms)
        }
    };
    let achieved_s = tally.lost_span.map_or(0.0, |(first, _)| {
        secs(t_fault_done.saturating_sub(first) as i128)
    });
    let figures = RpoFigures {
        achieved_s,
        predicted_s: None,
        reported_s: None,
        reported_by: None,
        lost: tally.lost,
        zombie_lost: tally.zombie_lost,
        unknown_survived: tally.unknown_survived,
        unknown_lost: tally.unknown_lost,
        fail_survived: tally.fail_survived,
        duplicates,
        phantoms,
        loss_span_s: tally
            .lost_span
            .map(|(first, last)| [rel(first, t_fault), rel(last, t_fault)]),
    };
    (figures, tally.counts)
}

/// Replication lag just before the fault: the promoted node's latest
/// sample if we know which node was promoted, else the best candidate's
/// (the smallest of each node's latest lag), which is what an ideal
/// failover would have lost.
pub(crate) fn predicted(timeline: &Timeline, t_fault: Micros) -> Option<f64> {
    latest_lag(timeline, &timeline.lag_samples, t_fault)
}

/// The same choice over the lag the store reported about itself.
pub(crate) fn reported(timeline: &Timeline, t_fault: Micros) -> Option<f64> {
    latest_lag(timeline, &timeline.reported_lag, t_fault)
}

fn latest_lag(timeline: &Timeline, samples: &[LagSample], t_fault: Micros) -> Option<f64> {
    let before = samples.iter().filter(|s| s.t <= t_fault);
    let promoted = timeline
        .promoted
        .as_ref()
        .and_then(|name| timeline.nodes.iter().position(|n| n == name));
    let lag = match promoted {
        Some(node) => latest(before.filter(|s| usize::from(s.node) == node))?.lag_us,
        None => {
            let mut per_node: Vec<Option<&LagSample>> = Vec::new();
            for s in before {
                let i = usize::from(s.node);
                if per_node.len() <= i {
                    per_node.resize(i + 1, None);
                }
                match per_node[i] {
                    Some(prev) if prev.t > s.t => {}
                    _ => per_node[i] = Some(s),
                }
            }
            per_node.iter().flatten().map(|s| s.lag_us).min()?
        }
    };
    Some(secs(i128::from(lag)))
}

/// Seconds from a signed microsecond difference.
pub(crate) fn secs(us: i128) -> f64 {
    us as f64 / 1e6
}

/// `t − origin` in seconds, negative when `t` is earlier.
pub(crate) fn rel(t: Micros, origin: Micros) -> f64 {
    secs(i128::from(t) - i128::from(origin))
}

/// Latest sample by time; on equal times the one recorded last wins.
fn latest<'a>(samples: impl Iterator<Item = &'a LagSample>) -> Option<&'a LagSample> {
    samples.max_by_key(|s| s.t)
}

#[derive(Default)]
struct Tally {
    counts: OpCounts,
    lost: u64,
    zombie_lost: u64,
    unknown_survived: u64,
    unknown_lost: u64,
    fail_survived: u64,
    /// (min, max) t_done of lost ops.
    lost_span: Option<(Micros, Micros)>,
}

/// Classifies every op; generic over the membership test so the dense path
/// compiles to a plain indexed load.
fn tally(ops: &[Op], t_fault_done: Micros, present: impl Fn(u64) -> bool) -> Tally {
    let mut t = Tally::default();
    let (mut first, mut last) = (Micros::MAX, Micros::MIN);
    for op in ops {
        let here = present(op.seq);
        match op.outcome {
            Outcome::Ok => {
                t.counts.ok += 1;
                if !here {
                    t.lost += 1;
                    // Zombie: the store acknowledged a write it received after the
                    // fault was in effect. An ack merely *observed* after
                    // t_fault_done may have left the server before the fault
                    // (it sat in a socket buffer or waited for a busy client
                    // task), so the evidence is the invoke time, not t_done.
                    t.zombie_lost += u64::from(op.t_invoke >= t_fault_done);
                    first = first.min(op.t_done);
                    last = last.max(op.t_done);
                }
            }
            Outcome::Fail => {
                t.counts.fail += 1;
                t.fail_survived += u64::from(here);
            }
            Outcome::Unknown => {
                t.counts.unknown += 1;
                if here {
                    t.unknown_survived += 1;
                } else {
                    t.unknown_lost += 1;
                }
            }
        }
    }
    if t.lost > 0 {
        t.lost_span = Some((first, last));
    }
    t
}

/// Distinct values of a sorted slice.
fn distinct(ids: &[u64]) -> impl Iterator<Item = u64> + '_ {
    ids.chunk_by(|a, b| a == b).map(|run| run[0])
}

/// Number of distinct ids that occur more than once in a sorted slice.
fn count_duplicates(ids: &[u64]) -> u64 {
    ids.chunk_by(|a, b| a == b).filter(|r| r.len() > 1).count() as u64
}
