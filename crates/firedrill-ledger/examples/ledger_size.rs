//! Prints the encoded size per op and the analysis wall time (median of 5)
//! for the 10M-op synthetic drill, the two budgets the ledger must keep.

use firedrill_ledger::{analyze, codec, Slo};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../benches/support/synth.rs"]
mod synth;

fn main() -> Result<(), firedrill_ledger::LedgerError> {
    let n = 10_000_000;
    let d = synth::drill(n);
    let bytes = codec::encode(&d.ops);
    let ids = codec::encode_ids(d.audit.ids());
    let back = codec::decode(&bytes)?;
    assert_eq!(back, d.ops, "ledger round trip");
    println!(
        "ledger: {} ops, {} bytes, {:.3} bytes/op",
        n,
        bytes.len(),
        bytes.len() as f64 / n as f64
    );
    println!(
        "audit set: {} ids, {} bytes, {:.3} bytes/id",
        d.audit.len(),
        ids.len(),
        ids.len() as f64 / d.audit.len().max(1) as f64
    );

    let slo = Slo::default();
    let mut times: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let start = Instant::now();
        let a = analyze(&d.ops, &d.timeline, &d.audit, &slo);
        times.push(start.elapsed());
        last = Some(a);
    }
    times.sort();
    println!("analyze: median {:?} over 5 runs ({:?})", times[2], times);
    if let Some(a) = last {
        println!(
            "figures: rpo {:.6} s (predicted {:?}), lost {}, rto {:?} s, incident {:?} s",
            a.rpo.achieved_s, a.rpo.predicted_s, a.rpo.lost, a.rto.achieved_s, a.rto.incident_s
        );
    }
    Ok(())
}
