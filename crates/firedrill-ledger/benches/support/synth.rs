//! Synthetic drill shared by the benchmark, the size example and the tests:
//! 8 clients writing back to back (~1 ms per op), a replication cut 2 s
//! before a primary kill, and a 3 s outage during which every op hangs
//! until its 1 s timeout. Deterministic, so figures are comparable across
//! runs.

use firedrill_ledger::{AuditSet, FaultRecord, LagSample, Micros, Op, Outcome, Timeline};

pub const CLIENTS: usize = 8;
pub const CUT_BEFORE_FAULT: Micros = 2_000_000;
pub const OUTAGE: Micros = 3_000_000;
pub const KILL_TAKES: Micros = 50_000;
pub const TIMEOUT: Micros = 1_000_000;

pub struct Synth {
    /// In completion order, as the engine records them.
    pub ops: Vec<Op>,
    pub timeline: Timeline,
    pub audit: AuditSet,
    /// Every ok op acknowledged after this is missing from the audit set.
    pub cut: Micros,
    pub t_fault: Micros,
    pub t_fault_done: Micros,
    pub outage_end: Micros,
}

/// xorshift64*: enough randomness for latencies, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A drill of `n` ops, the fault in the middle.
pub fn drill(n: u64) -> Synth {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t_fault = n * 1000 / CLIENTS as u64 / 2 + 1_000_000;
    let t_fault_done = t_fault + KILL_TAKES;
    let cut = t_fault - CUT_BEFORE_FAULT;
    let outage_end = t_fault + OUTAGE;

    let mut next = [0u64; CLIENTS];
    for (i, t) in next.iter_mut().enumerate() {
        *t = 1_000 + i as u64 * 125;
    }
    let mut ops = Vec::with_capacity(n as usize);
    for seq in 1..=n {
        let (c, &t_invoke) = next
            .iter()
            .enumerate()
            .min_by_key(|&(_, t)| *t)
            .expect("CLIENTS > 0");
        let latency = 800 + rng.next() % 400;
        let ends = t_invoke + latency;
        let in_outage = t_invoke < outage_end && ends > t_fault;
        let (t_done, outcome) = if in_outage {
            (t_invoke + TIMEOUT, Outcome::Unknown)
        } else {
            (ends, Outcome::Ok)
        };
        ops.push(Op {
            seq,
            t_invoke,
            t_done,
            outcome,
        });
        next[c] = t_done;
    }
    let workload_end = next.iter().copied().max().unwrap_or(0);

    let mut ids = Vec::with_capacity(ops.len());
    for op in &ops {
        let survived = match op.outcome {
            Outcome::Ok => op.t_done <= cut || op.t_invoke >= t_fault_done,
            Outcome::Unknown => op.seq % 2 == 0,
            Outcome::Fail => false,
        };
        if survived {
            ids.push(op.seq);
        }
    }
    ops.sort_by_key(|o| o.t_done);

    let lag_samples = (0..100u64)
        .flat_map(|i| {
            let t = t_fault - 10_000_000 + i * 100_000;
            let growing = t.saturating_sub(cut);
            [
                LagSample {
                    t,
                    node: 1,
                    lag_us: growing,
                },
                LagSample {
                    t,
                    node: 2,
                    lag_us: 1_000 + growing,
                },
            ]
        })
        .collect();
    let fault = |step: usize, action: &str, node: &str, t: Micros, disaster: bool| FaultRecord {
        step,
        action: action.into(),
        node: node.into(),
        disaster,
        t_start: t,
        t_done: Some(t + if disaster { KILL_TAKES } else { 10_000 }),
        heal_start: None,
        heal_done: None,
        error: None,
    };
    let timeline = Timeline {
        nodes: vec!["pg-0".into(), "pg-1".into(), "pg-2".into()],
        measure_start: 1_000,
        workload_end,
        faults: vec![
            fault(0, "cut_replication", "pg-1", cut, false),
            fault(1, "kill", "pg-0", t_fault, true),
        ],
        detected: Some(t_fault + 1_000_000),
        recovery_start: Some(t_fault + 1_000_000),
        recovery_done: Some(outage_end),
        promoted: Some("pg-1".into()),
        lag_samples,
        ..Default::default()
    };
    Synth {
        ops,
        timeline,
        audit: AuditSet::new(ids),
        cut,
        t_fault,
        t_fault_done,
        outage_end,
    }
}
