//! Converts a replication offset gap (bytes) into seconds of data at risk,
//! as kafka-lag-exporter does: remember when the primary's offset had which
//! value, and find when it passed the replica's offset. Redis' own `lag`
//! field is the age of the replica's last ACK, not the age of its data.

use std::collections::VecDeque;

/// Recent (time in seconds, primary offset) samples, oldest first.
#[derive(Debug, Clone, Default)]
pub struct OffsetHistory {
    samples: VecDeque<(f64, i64)>,
    cap: usize,
}

impl OffsetHistory {
    pub fn new(cap: usize) -> Self {
        OffsetHistory {
            samples: VecDeque::with_capacity(cap),
            cap: cap.max(2),
        }
    }

    /// Adds a sample. A time or offset going backwards (a failover, a
    /// restarted primary) starts the history afresh.
    pub fn push(&mut self, t: f64, offset: i64) {
        if let Some(&(lt, lo)) = self.samples.back() {
            if t < lt || offset < lo {
                self.samples.clear();
            } else if offset == lo && self.samples.len() >= 2 {
                // Idle: keep the first sample of the flat run (when the
                // offset got there), move the last one forward.
                let n = self.samples.len();
                if self.samples[n - 2].1 == lo {
                    self.samples[n - 1].0 = t;
                    return;
                }
            }
        }
        if self.samples.len() == self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back((t, offset));
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Seconds of writes a replica at `replica_offset` lacks at time `now`:
    /// `now` minus the moment the primary's offset passed `replica_offset`
    /// (linear between samples). 0 when the replica has everything the
    /// primary had at its last sample. Before the oldest sample, the
    /// average rate of the whole history extrapolates; with no rate known
    /// the result is the history's age, a lower bound. `None` without samples.
    pub fn seconds_behind(&self, replica_offset: i64, now: f64) -> Option<f64> {
        let &(t_last, o_last) = self.samples.back()?;
        if replica_offset >= o_last {
            return Some(0.0);
        }
        let &(t0, o0) = self.samples.front()?;
        let passed_at = if replica_offset < o0 {
            let span_o = (o_last - o0) as f64;
            let span_t = t_last - t0;
            if span_o > 0.0 && span_t > 0.0 {
                t0 - (o0 - replica_offset) as f64 * span_t / span_o
            } else {
                t0
            }
        } else {
            // First sample strictly above the replica: the first write the
            // replica lacks was made between it and its predecessor.
            let i = self
                .samples
                .iter()
                .position(|&(_, o)| o > replica_offset)
                .unwrap_or(self.samples.len() - 1);
            let (ta, oa) = self.samples[i.saturating_sub(1)];
            let (tb, ob) = self.samples[i];
            if ob > oa {
                ta + (replica_offset - oa) as f64 / (ob - oa) as f64 * (tb - ta)
            } else {
                ta
            }
        };
        Some((now - passed_at).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn steady_rate_gives_bytes_over_rate() {
        let mut h = OffsetHistory::new(60);
        for i in 0..=10 {
            h.push(i as f64, i * 1000);
        }
        // 2500 bytes behind at 1000 B/s, observed at the last sample.
        let s = h.seconds_behind(7500, 10.0).unwrap();
        assert!((s - 2.5).abs() < 1e-9, "{s}");
        assert_eq!(h.seconds_behind(10_000, 10.0), Some(0.0));
        assert_eq!(h.seconds_behind(20_000, 10.0), Some(0.0));
    }

    #[test]
    fn idle_primary_does_not_grow_the_lag_of_a_caught_up_replica() {
        let mut h = OffsetHistory::new(60);
        h.push(0.0, 500);
        for i in 1..100 {
            h.push(i as f64, 500);
        }
        assert_eq!(h.seconds_behind(500, 100.0), Some(0.0));
        assert!(h.len() <= 2);
    }

    #[test]
    fn a_replica_stuck_before_an_idle_period_keeps_growing() {
        let mut h = OffsetHistory::new(60);
        h.push(0.0, 0);
        h.push(1.0, 1000); // the last write at t=1
        for i in 2..50 {
            h.push(i as f64, 1000);
        }
        // The replica lacks the write made between t=0 and t=1.
        let s = h.seconds_behind(500, 50.0).unwrap();
        assert!((s - 49.5).abs() < 1e-9, "{s}");
    }

    #[test]
    fn a_reset_offset_restarts_the_history() {
        let mut h = OffsetHistory::new(60);
        h.push(0.0, 1000);
        h.push(1.0, 2000);
        h.push(2.0, 10);
        assert_eq!(h.len(), 1);
    }

    fn history() -> impl Strategy<Value = (Vec<(f64, i64)>, f64)> {
        proptest::collection::vec((0.01f64..5.0, 0i64..10_000), 1..40).prop_map(|steps| {
            let mut t = 0.0;
            let mut o = 0;
            let mut v = Vec::new();
            for (dt, d) in steps {
                t += dt;
                o += d;
                v.push((t, o));
            }
            (v, t)
        })
    }

    proptest! {
        /// More data on the replica never means more exposure; the result
        /// is never negative, and 0 exactly when the replica has caught up.
        #[test]
        fn monotone_and_bounded((samples, t_end) in history(), a in -5_000i64..400_000, b in -5_000i64..400_000, wait in 0.0f64..10.0) {
            let mut h = OffsetHistory::new(1000);
            for &(t, o) in &samples { h.push(t, o); }
            let now = t_end + wait;
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let s_lo = h.seconds_behind(lo, now).unwrap();
            let s_hi = h.seconds_behind(hi, now).unwrap();
            prop_assert!(s_lo >= 0.0 && s_hi >= 0.0);
            prop_assert!(s_lo + 1e-9 >= s_hi, "lo {} -> {}, hi {} -> {}", lo, s_lo, hi, s_hi);
            let last = samples.last().unwrap().1;
            if hi >= last { prop_assert_eq!(s_hi, 0.0); }
        }

        /// Within the history, the exposure lies between the ages of the
        /// samples around the replica's offset.
        #[test]
        fn bracketed_by_samples((samples, t_end) in history(), pick in 0usize..40, frac in 0.0f64..1.0) {
            let mut h = OffsetHistory::new(1000);
            for &(t, o) in &samples { h.push(t, o); }
            let (o0, o_last) = (samples[0].1, samples.last().unwrap().1);
            prop_assume!(o_last > o0);
            let _ = pick;
            let off = o0 + ((o_last - o0) as f64 * frac) as i64;
            prop_assume!(off < o_last);
            let s = h.seconds_behind(off, t_end).unwrap();
            // The replica lacks writes made no earlier than the first sample.
            prop_assert!(s <= t_end - samples[0].0 + 1e-9);
            // ...and no later than the last sample with an offset <= off... the
            // next sample above off bounds it from below.
            let next = samples.iter().find(|&&(_, o)| o > off).unwrap();
            prop_assert!(s + 1e-9 >= t_end - next.0);
        }
    }
}
