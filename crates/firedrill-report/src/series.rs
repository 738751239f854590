//! Per-bucket series for a trial's timeline: op counts, latency p50/p99 and
//! lost acknowledged writes, on the same grid as the analysis's SLO buckets.
//!
//! The analysis keeps only what the verdict needs (counts and health per
//! bucket, from the first fault step on). A reader of the HTML timeline also
//! wants latency and *where* the lost writes were acknowledged, which only
//! the ledger knows. The engine saves each trial's ledger and audit set
//! before it announces `TrialFinished`, so [`RunCollector`](crate::RunCollector)
//! folds them into `run.json` here, once, and every renderer stays a pure
//! consumer of the record.

use std::path::{Path, PathBuf};

use firedrill_ledger::{Analysis, Micros, Op, Outcome, Timeline};
use serde::{Deserialize, Serialize};

use crate::ReportError;

/// A long drill is coarsened to at most this many points: the chart is a
/// picture, and run.json stays small.
pub const MAX_POINTS: usize = 1500;

/// The trial files the engine leaves in `<run_dir>/trial-<n>/`.
const LEDGER_FILE: &str = "ledger.bin";
const AUDIT_FILE: &str = "audit.bin";
const TIMELINE_FILE: &str = "timeline.json";

/// Columns of equal length, one entry per bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrialSeries {
    /// Bucket width, seconds.
    pub bucket_s: f64,
    /// Start of the first bucket, seconds on the trial's clock (relative to
    /// the disaster, like every other time in the trial).
    pub start_s: f64,
    /// Ops by invoke time, as the SLO buckets count them.
    pub ok: Vec<u32>,
    pub fail: Vec<u32>,
    pub unknown: Vec<u32>,
    /// Latency (done − invoke) of the ops invoked in the bucket, every
    /// outcome included, milliseconds; None for an empty bucket.
    pub p50_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// Lost acknowledged writes, by acknowledgement time (`t_done`, the
    /// time the RPO is measured from).
    pub lost: Vec<u32>,
}

impl TrialSeries {
    pub fn len(&self) -> usize {
        self.ok.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ok.is_empty()
    }

    /// Start of bucket `i`, seconds.
    pub fn at(&self, i: usize) -> f64 {
        self.start_s + i as f64 * self.bucket_s
    }

    /// Builds the series from a ledger. `origin` is the trial's time zero
    /// (the disaster's start, else the measurement start), `from..to` the
    /// span to cover, `width` the SLO bucket width; all in observer µs.
    pub fn build(
        ops: &[Op],
        present: &[u64],
        origin: Micros,
        from: Micros,
        to: Micros,
        width: Micros,
    ) -> TrialSeries {
        let mut width = width.max(1);
        // Widen by whole buckets so coarse buckets still align with the
        // analysis's grid.
        let span = to.saturating_sub(from);
        let per = usize::try_from(span / width)
            .unwrap_or(usize::MAX)
            .div_ceil(MAX_POINTS)
            .max(1);
        width = width.saturating_mul(per as u64);
        let first = from / width;
        let n = usize::try_from(to.div_ceil(width).saturating_sub(first)).unwrap_or(0);
        let mut s = TrialSeries {
            bucket_s: width as f64 / 1e6,
            start_s: (i128::from(first * width) - i128::from(origin)) as f64 / 1e6,
            ok: vec![0; n],
            fail: vec![0; n],
            unknown: vec![0; n],
            p50_ms: vec![None; n],
            p99_ms: vec![None; n],
            lost: vec![0; n],
        };
        let index = |t: Micros| -> Option<usize> {
            let b = usize::try_from((t / width).checked_sub(first)?).ok()?;
            (b < n).then_some(b)
        };
        let mut lat: Vec<Vec<u32>> = vec![Vec::new(); n];
        for op in ops {
            if let Some(b) = index(op.t_invoke) {
                match op.outcome {
                    Outcome::Ok => s.ok[b] += 1,
                    Outcome::Fail => s.fail[b] += 1,
                    Outcome::Unknown => s.unknown[b] += 1,
                }
                let us = op.t_done.saturating_sub(op.t_invoke);
                lat[b].push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            if op.outcome == Outcome::Ok && present.binary_search(&op.seq).is_err() {
                if let Some(b) = index(op.t_done) {
                    s.lost[b] += 1;
                }
            }
        }
        for (b, l) in lat.iter_mut().enumerate() {
            s.p50_ms[b] = nearest_rank(l, 50);
            s.p99_ms[b] = nearest_rank(l, 99);
        }
        s
    }
}

/// Nearest-rank percentile (the definition the SLO's p99 check uses), ms.
fn nearest_rank(v: &mut [u32], pct: usize) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = (v.len() * pct).div_ceil(100).max(1);
    let (_, x, _) = v.select_nth_unstable(rank - 1);
    Some(f64::from(*x) / 1e3)
}

/// Reads a trial's saved ledger, audit set and timeline and builds its
/// series. `Ok(None)` when the trial left no files (an aborted trial, or
/// a record built without an engine).
pub fn load_trial_series(
    run_dir: &Path,
    trial: u32,
    analysis: &Analysis,
) -> Result<Option<TrialSeries>, ReportError> {
    let dir = run_dir.join(format!("trial-{trial}"));
    let ledger_path = dir.join(LEDGER_FILE);
    if !ledger_path.exists() {
        return Ok(None);
    }
    let read = |p: PathBuf| {
        std::fs::read(&p).map_err(|source| ReportError::Io {
            op: "read",
            path: p,
            source,
        })
    };
    let bad = |p: &Path, e: firedrill_ledger::LedgerError| ReportError::Ledger {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    let ops = firedrill_ledger::codec::decode(&read(ledger_path.clone())?)
        .map_err(|e| bad(&ledger_path, e))?;
    let audit_path = dir.join(AUDIT_FILE);
    let mut present = firedrill_ledger::codec::decode_ids(&read(audit_path.clone())?)
        .map_err(|e| bad(&audit_path, e))?;
    present.sort_unstable();
    let tl_path = dir.join(TIMELINE_FILE);
    let tl: Timeline =
        serde_json::from_slice(&read(tl_path.clone())?).map_err(|source| ReportError::Json {
            path: tl_path,
            source,
        })?;

    let origin = analysis.t_fault_us.unwrap_or(tl.measure_start);
    let width = bucket_width_us(analysis);
    // From the measurement start (or earlier, if writes acknowledged during
    // warmup were lost) to the end of the workload: the loss window before
    // the fault must be on the chart.
    let first_lost = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && present.binary_search(&o.seq).is_err())
        .map(|o| o.t_done)
        .min();
    let from = first_lost.map_or(tl.measure_start, |t| t.min(tl.measure_start));
    let to = if tl.workload_end > from {
        tl.workload_end
    } else {
        ops.iter().map(|o| o.t_done).max().unwrap_or(from)
    };
    Ok(Some(TrialSeries::build(
        &ops, &present, origin, from, to, width,
    )))
}

/// The SLO bucket width, read off the analysis's buckets (100 ms, the
/// default, when there are too few to tell).
fn bucket_width_us(a: &Analysis) -> Micros {
    match a.buckets.as_slice() {
        [x, y, ..] => ((y.start_s - x.start_s) * 1e6).round().max(1.0) as Micros,
        _ => 100_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(seq: u64, t_invoke: Micros, t_done: Micros, outcome: Outcome) -> Op {
        Op {
            seq,
            t_invoke,
            t_done,
            outcome,
        }
    }

    #[test]
    fn counts_latency_and_losses_land_in_their_buckets() {
        // Origin at 1 s; buckets of 100 ms from 0.8 s.
        let ops = vec![
            op(1, 800_000, 801_000, Outcome::Ok),
            op(2, 810_000, 830_000, Outcome::Ok),
            op(3, 905_000, 906_000, Outcome::Ok), // lost, acked at 0.906
            op(4, 1_000_000, 2_000_000, Outcome::Unknown),
            op(5, 1_050_000, 1_051_000, Outcome::Fail),
        ];
        let s = TrialSeries::build(&ops, &[1, 2, 4], 1_000_000, 800_000, 1_100_000, 100_000);
        assert_eq!(s.len(), 3);
        assert!((s.start_s + 0.2).abs() < 1e-9);
        assert_eq!(s.ok, vec![2, 1, 0]);
        assert_eq!(s.unknown, vec![0, 0, 1]);
        assert_eq!(s.fail, vec![0, 0, 1]);
        assert_eq!(s.lost, vec![0, 1, 0]);
        assert_eq!(s.p50_ms[0], Some(1.0));
        assert_eq!(s.p99_ms[0], Some(20.0));
        assert_eq!(s.p99_ms[2], Some(1000.0));
        assert_eq!(s.p50_ms[2], Some(1.0));
    }

    #[test]
    fn long_spans_are_coarsened_on_the_same_grid() {
        let s = TrialSeries::build(&[], &[], 0, 0, 3_600_000_000, 100_000);
        assert!(s.len() <= MAX_POINTS, "{}", s.len());
        assert!(s.bucket_s >= 0.1 && (s.bucket_s * 10.0).fract().abs() < 1e-9);
        assert!(s.p50_ms.iter().all(Option::is_none));
    }

    #[test]
    fn no_trial_files_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let got = load_trial_series(dir.path(), 1, &Analysis::default()).unwrap();
        assert!(got.is_none());
    }
}
