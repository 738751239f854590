//! `analyze` on a 10M-op synthetic drill: the target is ≤ 1 s, so that
//! re-analysing a long soak run never dominates report generation.

use criterion::{criterion_group, criterion_main, Criterion};
use firedrill_ledger::{analyze, Slo};
use std::hint::black_box;
use std::time::Duration;

#[allow(dead_code)]
#[path = "support/synth.rs"]
mod synth;

fn bench_analyze(c: &mut Criterion) {
    let d = synth::drill(10_000_000);
    let slo = Slo::default();
    let mut group = c.benchmark_group("analyze");
    // ~120 ms per iteration: 10 samples in 8 s keeps the whole run < 1 min.
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("10M ops", |b| {
        b.iter(|| analyze(black_box(&d.ops), &d.timeline, &d.audit, &slo))
    });
    let with_p99 = Slo {
        p99_us: Some(50_000),
        ..Slo::default()
    };
    group.bench_function("10M ops, p99 bound", |b| {
        b.iter(|| analyze(black_box(&d.ops), &d.timeline, &d.audit, &with_p99))
    });
    group.finish();
}

criterion_group!(benches, bench_analyze);
criterion_main!(benches);
