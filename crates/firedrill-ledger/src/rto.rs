//! SLO buckets and recovery time.
//!
//! Ops are bucketed by invoke time, so a request that hangs counts against
//! the moment it was made, not the moment it gave up.

use crate::rpo::rel;
use crate::{Bucket, Micros, Op, Outcome, Slo};

/// Per-bucket tallies: ok, fail, unknown, and ops within the p99 bound.
type Counts = [u64; 4];
const WITHIN_P99: usize = 3;

/// Health of the considered buckets and where recovery happened.
pub(crate) struct Scan {
    /// Considered buckets, `start_s` relative to the origin given to [`scan`].
    pub buckets: Vec<Bucket>,
    /// Start of the first unhealthy bucket.
    pub first_unhealthy: Option<Micros>,
    /// Start of the first stable healthy run after the first unhealthy
    /// bucket.
    pub recovered: Option<Micros>,
}

/// Buckets from the one containing `from` up to the last bucket that ends
/// at or before `workload_end`; the trailing partial bucket is ignored
/// because the workload stopping would make it look unhealthy.
pub(crate) fn scan(
    ops: &[Op],
    slo: &Slo,
    from: Micros,
    workload_end: Micros,
    origin: Micros,
) -> Scan {
    // A zero-width bucket is a spec error caught elsewhere; never divide by it.
    let width = slo.bucket_us.max(1);
    let first = from / width;
    let end = workload_end / width;
    let n = usize::try_from(end.saturating_sub(first)).unwrap_or(usize::MAX);
    let mut counts: Vec<Counts> = vec![[0; 4]; n];
    let p99_bound = slo.p99_us;
    for op in ops {
        let b = op.t_invoke / width;
        if b < first || b >= end {
            continue;
        }
        let c = &mut counts[(b - first) as usize];
        c[op.outcome as usize] += 1;
        if let Some(bound) = p99_bound {
            c[WITHIN_P99] += u64::from(op.t_done.saturating_sub(op.t_invoke) <= bound);
        }
    }

    let healthy: Vec<bool> = counts.iter().map(|c| is_healthy(c, slo)).collect();
    let start_of = |i: usize| (first + i as u64) * width;
    let buckets = counts
        .iter()
        .zip(&healthy)
        .enumerate()
        .map(|(i, (c, &healthy))| Bucket {
            start_s: rel(start_of(i), origin),
            ok: clamp_u32(c[Outcome::Ok as usize]),
            fail: clamp_u32(c[Outcome::Fail as usize]),
            unknown: clamp_u32(c[Outcome::Unknown as usize]),
            healthy,
        })
        .collect();

    let first_bad = healthy.iter().position(|h| !h);
    let run = slo.stable_for_us.div_ceil(width).max(1);
    // Recovery is from the disaster's outage: when a stage-setting step
    // caused an earlier blip that healed before the disaster, the healthy
    // run must still come after the first unhealthy bucket at or after the
    // disaster (`origin`), or it would measure the blip instead.
    let bad_after_fault = (0..healthy.len()).find(|&i| !healthy[i] && start_of(i) + width > origin);
    let recovered = bad_after_fault.or(first_bad).and_then(|bad| {
        let mut streak = 0u64;
        for (i, &h) in healthy.iter().enumerate().skip(bad + 1) {
            streak = if h { streak + 1 } else { 0 };
            if streak == run {
                return Some(start_of(i + 1 - run as usize));
            }
        }
        None
    });
    Scan {
        buckets,
        first_unhealthy: first_bad.map(start_of),
        recovered,
    }
}

/// Healthy: at least one op, success ratio met, and (if set) the
/// nearest-rank p99 latency within bound. The p99 test needs no sort: the
/// rank-th smallest latency is ≤ bound exactly when at least rank ops are.
fn is_healthy(c: &Counts, slo: &Slo) -> bool {
    let total = c[0] + c[1] + c[2];
    if total == 0 {
        return false;
    }
    if (c[Outcome::Ok as usize] as f64) / (total as f64) < slo.success_ratio {
        return false;
    }
    match slo.p99_us {
        Some(_) => {
            let rank = (total as u128 * 99).div_ceil(100);
            u128::from(c[WITHIN_P99]) >= rank
        }
        None => true,
    }
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// First failed/unknown invoke among ops still running at or after the
/// first fault step, and first acknowledgement of an op invoked after the
/// fault took effect.
pub(crate) fn impact_and_first_write(
    ops: &[Op],
    first_step: Micros,
    t_fault_done: Micros,
) -> (Option<Micros>, Option<Micros>) {
    let (mut impact, mut first_write) = (Micros::MAX, Micros::MAX);
    let (mut any_impact, mut any_write) = (false, false);
    for op in ops {
        match op.outcome {
            Outcome::Ok => {
                if op.t_invoke >= t_fault_done {
                    any_write = true;
                    first_write = first_write.min(op.t_done);
                }
            }
            Outcome::Fail | Outcome::Unknown => {
                if op.t_done >= first_step {
                    any_impact = true;
                    impact = impact.min(op.t_invoke);
                }
            }
        }
    }
    (
        any_impact.then_some(impact),
        any_write.then_some(first_write),
    )
}
