//! Hand-made ledgers with exactly known figures, one behaviour per test.
//! Times are tiny (µs) so expected values can be worked out by hand.

use firedrill_ledger::{
    analyze, AuditSet, FaultRecord, LagSample, Micros, Op, Outcome, Phases, Slo, Timeline,
};

#[allow(dead_code)]
#[path = "../benches/support/synth.rs"]
mod synth;

/// 100 µs buckets, 3-bucket stability: small enough to reason about.
const SLO: Slo = Slo {
    bucket_us: 100,
    success_ratio: 0.99,
    p99_us: None,
    stable_for_us: 300,
    recovery_timeout_us: 10_000,
};

fn s(us: i64) -> f64 {
    us as f64 / 1e6
}

fn fault(action: &str, t_start: Micros, t_done: Option<Micros>, disaster: bool) -> FaultRecord {
    FaultRecord {
        step: 0,
        action: action.into(),
        node: "n0".into(),
        disaster,
        t_start,
        t_done,
        heal_start: None,
        heal_done: None,
        error: None,
    }
}

fn timeline(faults: Vec<FaultRecord>, workload_end: Micros) -> Timeline {
    Timeline {
        nodes: vec!["n0".into(), "n1".into(), "n2".into()],
        workload_end,
        faults,
        ..Timeline::default()
    }
}

/// One op invoked every 10 µs in `[from, to)`, taking 5 µs unless
/// `outcome_at` says otherwise; seqs are assigned afterwards, densely.
fn ops_every_10us(
    from: Micros,
    to: Micros,
    outcome_at: impl Fn(Micros) -> (Outcome, Micros),
) -> Vec<Op> {
    (from..to)
        .step_by(10)
        .enumerate()
        .map(|(i, t)| {
            let (outcome, t_done) = outcome_at(t);
            Op {
                seq: i as u64 + 1,
                t_invoke: t,
                t_done,
                outcome,
            }
        })
        .collect()
}

fn all_ok(ops: &[Op]) -> AuditSet {
    AuditSet::new(
        ops.iter()
            .filter(|o| o.outcome == Outcome::Ok)
            .map(|o| o.seq)
            .collect(),
    )
}

// ---------------------------------------------------------------- RPO

/// The required one: everything acknowledged after the cut at T is missing.
#[test]
fn known_cut_gives_rpo_from_first_ack_after_cut() {
    let ops = ops_every_10us(10, 1010, |t| (Outcome::Ok, t + 5));
    let cut = 300;
    let audit = AuditSet::new(
        ops.iter()
            .filter(|o| o.t_done <= cut)
            .map(|o| o.seq)
            .collect(),
    );
    let tl = timeline(vec![fault("kill", 500, Some(520), true)], 1010);
    let a = analyze(&ops, &tl, &audit, &SLO);
    assert_eq!(a.t_fault_us, Some(500));
    assert_eq!(a.t_fault_done_us, Some(520));
    // First ack after the cut: op invoked at 300, done at 305.
    assert_eq!(a.rpo.achieved_s, s(520 - 305));
    // Ops done at 305..=1005: 71 of them, those done after 520 are zombies.
    assert_eq!(a.rpo.lost, 71);
    assert_eq!(a.rpo.zombie_lost, 49);
    assert_eq!(a.rpo.loss_span_s, Some([s(305 - 500), s(1005 - 500)]));
    assert_eq!((a.rpo.phantoms, a.rpo.duplicates), (0, 0));
    assert_eq!(a.ops.ok, 100);
}

/// A zone step hits several nodes at once: the disaster starts with the
/// first injection and is in effect when the last one is, and the loss
/// window and zombies count from there.
#[test]
fn a_step_on_several_nodes_spans_all_its_records() {
    let ops = ops_every_10us(10, 1010, |t| (Outcome::Ok, t + 5));
    let audit = AuditSet::new(
        ops.iter()
            .filter(|o| o.t_done <= 300)
            .map(|o| o.seq)
            .collect(),
    );
    let mut a_rec = fault("kill", 500, Some(520), true);
    a_rec.node = "n1".into();
    let mut b_rec = fault("kill", 498, Some(560), true);
    b_rec.node = "n2".into();
    let tl = timeline(vec![a_rec, b_rec], 1010);
    let a = analyze(&ops, &tl, &audit, &SLO);
    assert_eq!(a.t_fault_us, Some(498));
    assert_eq!(a.t_fault_done_us, Some(560));
    assert_eq!(a.rpo.achieved_s, s(560 - 305));
    // Negative control: one record alone gives its own instants.
    let one = analyze(
        &ops,
        &timeline(vec![fault("kill", 500, Some(520), true)], 1010),
        &audit,
        &SLO,
    );
    assert_eq!(one.t_fault_done_us, Some(520));
}

/// The same on the synthetic drill: RPO ≈ the time between cut and fault.
#[test]
fn synthetic_cut_rpo_matches_cut() {
    let d = synth::drill(200_000);
    let a = analyze(&d.ops, &d.timeline, &d.audit, &Slo::default());
    let first_after_cut = d
        .ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && o.t_done > d.cut)
        .filter(|o| o.t_invoke < d.t_fault_done)
        .map(|o| o.t_done)
        .min()
        .unwrap();
    assert_eq!(
        a.rpo.achieved_s,
        s((d.t_fault_done - first_after_cut) as i64)
    );
    let window = (d.t_fault_done - d.cut) as f64 / 1e6;
    assert!(
        (a.rpo.achieved_s - window).abs() < 0.002,
        "{}",
        a.rpo.achieved_s
    );
    assert_eq!(a.rpo.zombie_lost, 0);
    assert_eq!(a.rpo.phantoms, 0);
    // Promoted pg-1's lag 100 ms before the fault: 1.9 s of cut.
    assert_eq!(a.rpo.predicted_s, Some(1.9));
    assert!(a.rto.achieved_s.unwrap() >= 3.0);
}

#[test]
fn nothing_lost_gives_zero() {
    let ops = ops_every_10us(0, 200, |t| (Outcome::Ok, t + 5));
    let tl = timeline(vec![fault("kill", 100, Some(110), true)], 200);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.rpo.achieved_s, 0.0);
    assert_eq!((a.rpo.lost, a.rpo.zombie_lost), (0, 0));
    assert_eq!(a.rpo.loss_span_s, None);
}

#[test]
fn only_zombies_lost_gives_zero_window_but_counts_them() {
    // Acknowledged at 605 and 615, after the fault took effect at 520.
    let ops = ops_every_10us(0, 620, |t| (Outcome::Ok, t + 5));
    let audit = AuditSet::new(
        ops.iter()
            .filter(|o| o.t_done < 600)
            .map(|o| o.seq)
            .collect(),
    );
    let tl = timeline(vec![fault("pause", 500, Some(520), true)], 620);
    let a = analyze(&ops, &tl, &audit, &SLO);
    assert_eq!(a.rpo.achieved_s, 0.0);
    assert_eq!((a.rpo.lost, a.rpo.zombie_lost), (2, 2));
    assert_eq!(a.rpo.loss_span_s, Some([s(105), s(115)]));
}

#[test]
fn unknowns_fails_duplicates_and_phantoms() {
    let op = |seq, outcome| Op {
        seq,
        t_invoke: seq * 10,
        t_done: seq * 10 + 5,
        outcome,
    };
    let ops = vec![
        op(1, Outcome::Ok),
        op(2, Outcome::Unknown),
        op(3, Outcome::Unknown),
        op(4, Outcome::Fail),
        op(5, Outcome::Ok),
        op(6, Outcome::Fail),
        op(7, Outcome::Unknown),
    ];
    // 0, 9 and u64::MAX were never written; 1, 5 and 9 appear repeatedly.
    let audit = AuditSet::new(vec![5, 1, 1, 1, 2, 4, 5, 0, 9, 9, u64::MAX, 7]);
    let tl = timeline(vec![fault("kill", 100, Some(100), true)], 200);
    let a = analyze(&ops, &tl, &audit, &SLO);
    assert_eq!(a.rpo.lost, 0);
    assert_eq!(a.rpo.unknown_survived, 2);
    assert_eq!(a.rpo.unknown_lost, 1);
    assert_eq!(a.rpo.fail_survived, 1);
    assert_eq!(a.rpo.duplicates, 3);
    assert_eq!(a.rpo.phantoms, 3);
    assert_eq!((a.ops.ok, a.ops.fail, a.ops.unknown), (2, 2, 3));
}

/// Seqs far apart take the sparse path; figures must not change.
#[test]
fn sparse_seqs_give_same_figures() {
    let op = |seq, t, outcome| Op {
        seq,
        t_invoke: t,
        t_done: t + 5,
        outcome,
    };
    let ops = vec![
        op(1 << 50, 10, Outcome::Ok),
        op(3, 20, Outcome::Ok),
        op(u64::MAX, 30, Outcome::Unknown),
        op(1, 40, Outcome::Ok),
    ];
    let audit = AuditSet::new(vec![1, 1 << 50, 1 << 50, 7, u64::MAX]);
    let tl = timeline(vec![fault("kill", 100, Some(100), true)], 200);
    let a = analyze(&ops, &tl, &audit, &SLO);
    assert_eq!(a.rpo.lost, 1);
    assert_eq!(a.rpo.achieved_s, s(100 - 25));
    assert_eq!(a.rpo.unknown_survived, 1);
    assert_eq!(a.rpo.duplicates, 1);
    assert_eq!(a.rpo.phantoms, 1);
}

#[test]
fn predicted_uses_promoted_node_else_best_candidate() {
    let sample = |t, node, lag_us| LagSample { t, node, lag_us };
    let ops = ops_every_10us(0, 200, |t| (Outcome::Ok, t + 5));
    let mut tl = timeline(vec![fault("kill", 100, Some(110), true)], 200);
    tl.lag_samples = vec![
        sample(50, 1, 7_000),
        sample(90, 1, 3_000),
        sample(100, 2, 9_000),
        sample(60, 2, 1_000),
        // After the fault: ignored.
        sample(101, 1, 1),
        sample(150, 2, 1),
    ];
    let predicted = |tl: &Timeline| analyze(&ops, tl, &all_ok(&ops), &SLO).rpo.predicted_s;
    // Latest per node: n1 3 ms, n2 9 ms; best candidate is n1.
    assert_eq!(predicted(&tl), Some(0.003));
    tl.promoted = Some("n2".into());
    assert_eq!(predicted(&tl), Some(0.009));
    // A promoted node we never sampled: no prediction rather than a guess.
    tl.promoted = Some("n0".into());
    assert_eq!(predicted(&tl), None);
    // A name outside the node list: fall back to the best candidate.
    tl.promoted = Some("elsewhere".into());
    assert_eq!(predicted(&tl), Some(0.003));
    tl.lag_samples.clear();
    assert_eq!(predicted(&tl), None);
}

// ------------------------------------------------------- disaster step

#[test]
fn disaster_is_marked_step_else_last_non_resume() {
    let ops = ops_every_10us(0, 2000, |t| (Outcome::Ok, t + 5));
    let audit = all_ok(&ops);
    let faults = vec![
        fault("cut_replication", 300, Some(310), false),
        fault("kill", 700, Some(750), false),
        fault("resume", 900, Some(905), false),
    ];
    let a = analyze(&ops, &timeline(faults.clone(), 2000), &audit, &SLO);
    assert_eq!((a.t_fault_us, a.t_fault_done_us), (Some(700), Some(750)));

    let mut marked = faults;
    marked[0].disaster = true;
    marked[0].t_done = None; // injection failed: fault_done falls back to start
    let a = analyze(&ops, &timeline(marked, 2000), &audit, &SLO);
    assert_eq!((a.t_fault_us, a.t_fault_done_us), (Some(300), Some(300)));
}

#[test]
fn no_fault_counts_loss_against_workload_end() {
    let ops = ops_every_10us(0, 1000, |t| (Outcome::Ok, t + 5));
    let audit = AuditSet::new(ops.iter().filter(|o| o.seq != 50).map(|o| o.seq).collect());
    let mut tl = timeline(vec![], 1000);
    tl.measure_start = 200;
    let a = analyze(&ops, &tl, &audit, &SLO);
    assert_eq!((a.t_fault_us, a.t_fault_done_us), (None, None));
    // Seq 50 was invoked at 490, done at 495.
    assert_eq!(a.rpo.lost, 1);
    assert_eq!(a.rpo.achieved_s, s(1000 - 495));
    assert_eq!(a.rpo.zombie_lost, 0);
    assert_eq!(a.rto.achieved_s, Some(0.0));
    assert_eq!(a.rto.incident_s, None);
    assert_eq!(a.rto.phases, Phases::default());
    // Buckets from measure_start (bucket 2) to the end (bucket 9).
    assert_eq!(a.buckets.len(), 8);
    assert_eq!(a.buckets[0].start_s, 0.0);
    assert!(a.buckets.iter().all(|b| b.healthy && b.ok == 10));
}

// ---------------------------------------------------------------- RTO

/// Ops fail while invoked in [1000, 1300); a kill at 1000.
fn outage(fail_until: Micros, workload_end: Micros) -> (Vec<Op>, Timeline) {
    let ops = ops_every_10us(0, workload_end, |t| {
        if (1000..fail_until).contains(&t) {
            (Outcome::Fail, t + 5)
        } else {
            (Outcome::Ok, t + 5)
        }
    });
    let mut tl = timeline(vec![fault("kill", 1000, Some(1010), true)], workload_end);
    tl.detected = Some(1100);
    (ops, tl)
}

#[test]
fn outage_rto_and_phases() {
    let (ops, tl) = outage(1300, 2000);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.rto.achieved_s, Some(s(300)));
    assert_eq!(a.rto.incident_s, Some(0.0));
    assert_eq!(
        a.rto.phases,
        Phases {
            impact_s: Some(0.0),
            detected_s: Some(s(100)),
            // First ok invoked at or after 1010: invoked 1300, done 1305.
            first_write_s: Some(s(305)),
            recovered_s: Some(s(300)),
        }
    );
    // Buckets 10..20, relative to t_fault.
    assert_eq!(a.buckets.len(), 10);
    assert_eq!(a.buckets[0].start_s, 0.0);
    assert_eq!(a.buckets[9].start_s, s(900));
    let health: Vec<bool> = a.buckets.iter().map(|b| b.healthy).collect();
    assert_eq!(&health[..4], &[false, false, false, true]);
    assert_eq!((a.buckets[0].ok, a.buckets[0].fail), (0, 10));
    assert_eq!(a.rpo.lost, 0);
}

#[test]
fn never_recovered_gives_none() {
    let (ops, tl) = outage(2000, 2000);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.rto.achieved_s, None);
    assert_eq!(a.rto.phases.recovered_s, None);
    assert_eq!(a.rto.incident_s, Some(0.0));
    assert_eq!(a.rto.phases.first_write_s, None);
}

#[test]
fn stable_run_must_fit_before_workload_end() {
    // Healthy again from 1800: only two complete buckets before 2000.
    let (ops, tl) = outage(1800, 2000);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.rto.achieved_s, None);
    // One more bucket makes the run.
    let (ops, tl) = outage(1800, 2100);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.rto.achieved_s, Some(s(800)));
}

#[test]
fn recovery_after_timeout_is_never() {
    let (ops, tl) = outage(1300, 2000);
    let slo = Slo {
        recovery_timeout_us: 299,
        ..SLO
    };
    let a = analyze(&ops, &tl, &all_ok(&ops), &slo);
    assert_eq!(a.rto.achieved_s, None);
    let slo = Slo {
        recovery_timeout_us: 300,
        ..SLO
    };
    let a = analyze(&ops, &tl, &all_ok(&ops), &slo);
    assert_eq!(a.rto.achieved_s, Some(s(300)));
}

#[test]
fn healthy_throughout_gives_zero_rto() {
    let (ops, tl) = outage(0, 2000);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.rto.achieved_s, Some(0.0));
    assert_eq!(a.rto.incident_s, None);
    assert_eq!(a.rto.phases.impact_s, None);
    assert_eq!(a.rto.phases.recovered_s, None);
    assert_eq!(a.rto.phases.first_write_s, Some(s(1015 - 1000)));
    assert!(a.buckets.iter().all(|b| b.healthy));
}

/// A replication cut under synchronous commit stalls writes before the
/// primary dies: the incident, and the RTO, start at the stall.
#[test]
fn outage_before_fault_starts_the_incident() {
    let ops = ops_every_10us(0, 2000, |t| {
        if (600..1300).contains(&t) {
            (Outcome::Unknown, 1300)
        } else {
            (Outcome::Ok, t + 5)
        }
    });
    let faults = vec![
        fault("cut_replication", 500, Some(510), false),
        fault("kill", 1000, Some(1010), false),
        fault("resume", 1500, Some(1510), false),
    ];
    let a = analyze(&ops, &timeline(faults, 2000), &all_ok(&ops), &SLO);
    assert_eq!(a.t_fault_us, Some(1000));
    assert_eq!(a.rto.incident_s, Some(s(-400)));
    assert_eq!(a.rto.phases.impact_s, Some(s(-400)));
    assert_eq!(a.rto.phases.recovered_s, Some(s(300)));
    assert_eq!(a.rto.achieved_s, Some(s(700)));
    // Buckets start at the cut's bucket (500), relative to the kill.
    assert_eq!(a.buckets[0].start_s, s(-500));
    assert!(a.buckets[0].healthy);
    assert_eq!(a.buckets.len(), 15);
}

/// Clients blocked on hung requests issue nothing: the empty buckets are
/// the outage, not a gap in the evidence.
#[test]
fn empty_buckets_are_unhealthy() {
    let ops: Vec<Op> = ops_every_10us(0, 2000, |t| (Outcome::Ok, t + 5))
        .into_iter()
        .filter(|o| !(1000..1200).contains(&o.t_invoke))
        .collect();
    let tl = timeline(vec![fault("kill", 1000, Some(1010), true)], 2000);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.rto.achieved_s, Some(s(200)));
    assert_eq!(a.rto.phases.impact_s, None);
    assert_eq!((a.buckets[0].ok, a.buckets[0].healthy), (0, false));
    assert!(!a.buckets[1].healthy && a.buckets[2].healthy);
}

#[test]
fn partial_last_bucket_is_ignored() {
    // The workload stops at 1950: bucket 19 is incomplete and left out,
    // so the healthy run 1600..1900 is the last one that counts.
    let (ops, tl) = outage(1600, 1950);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.buckets.len(), 9);
    assert_eq!(a.rto.achieved_s, Some(s(600)));
    let (ops, tl) = outage(1700, 1950);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.rto.achieved_s, None);
}

#[test]
fn success_ratio_boundary() {
    // 1000 µs buckets of 100 ops; 1 failure = exactly 0.99: healthy.
    let slo = Slo {
        bucket_us: 1000,
        stable_for_us: 1000,
        ..SLO
    };
    let run = |fails: Micros| {
        let ops = ops_every_10us(0, 5000, |t| {
            let fail = (1000..1000 + fails * 10).contains(&t);
            (if fail { Outcome::Fail } else { Outcome::Ok }, t + 5)
        });
        let tl = timeline(vec![fault("kill", 1000, Some(1000), true)], 5000);
        analyze(&ops, &tl, &all_ok(&ops), &slo)
    };
    assert!(run(1).buckets[0].healthy);
    assert_eq!(run(1).rto.achieved_s, Some(0.0));
    assert!(!run(2).buckets[0].healthy);
    assert_eq!(run(2).rto.achieved_s, Some(s(1000)));
}

#[test]
fn p99_bound_counts_only_when_set() {
    // 100 ops per bucket: nearest-rank p99 is the 99th smallest latency,
    // so one slow op is tolerated and two are not.
    let slo = Slo {
        bucket_us: 1000,
        stable_for_us: 1000,
        p99_us: Some(50),
        ..SLO
    };
    let run = |slow: Micros, slo: &Slo| {
        let ops = ops_every_10us(0, 5000, |t| {
            let lat = if (1000..1000 + slow * 10).contains(&t) {
                51
            } else {
                50
            };
            (Outcome::Ok, t + lat)
        });
        let tl = timeline(vec![fault("kill", 1000, Some(1000), true)], 5000);
        analyze(&ops, &tl, &all_ok(&ops), slo)
    };
    assert!(run(1, &slo).buckets[0].healthy);
    assert!(!run(2, &slo).buckets[0].healthy);
    assert_eq!(run(2, &slo).rto.achieved_s, Some(s(1000)));
    assert!(run(100, &SLO).buckets.iter().all(|b| b.healthy));
}

/// A healthy stretch shorter than stable_for does not count as recovery:
/// the run restarts after the relapse.
#[test]
fn relapse_restarts_the_stable_run() {
    let ops = ops_every_10us(0, 2500, |t| {
        let bad = (1000..1300).contains(&t) || (1500..1600).contains(&t);
        (if bad { Outcome::Fail } else { Outcome::Ok }, t + 5)
    });
    let tl = timeline(vec![fault("kill", 1000, Some(1010), true)], 2500);
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert_eq!(a.rto.achieved_s, Some(s(600)));
    assert_eq!(a.rto.phases.recovered_s, Some(s(600)));
}

/// Boundaries of the phase and zombie definitions: an ack exactly at
/// t_fault_done is not a zombie, a failure ending exactly at the first
/// step is an impact, one ending before it is not.
#[test]
fn boundaries_are_inclusive_as_defined() {
    let op = |seq, t_invoke, t_done, outcome| Op {
        seq,
        t_invoke,
        t_done,
        outcome,
    };
    let ops = vec![
        op(1, 400, 499, Outcome::Fail),
        op(2, 450, 500, Outcome::Unknown),
        op(3, 510, 520, Outcome::Ok),
        op(4, 520, 530, Outcome::Ok),
        op(5, 519, 521, Outcome::Ok),
    ];
    let tl = timeline(vec![fault("kill", 500, Some(520), true)], 600);
    let a = analyze(&ops, &tl, &AuditSet::new(vec![4, 5]), &SLO);
    assert_eq!((a.rpo.lost, a.rpo.zombie_lost), (1, 0));
    assert_eq!(a.rpo.achieved_s, 0.0);
    assert_eq!(a.rto.phases.impact_s, Some(s(-50)));
    // Op 4 is the first invoked at t_fault_done; op 5 was invoked before.
    assert_eq!(a.rto.phases.first_write_s, Some(s(30)));
}

/// A stage-setting step causes a blip that heals before the disaster; the
/// RTO must cover the disaster's outage, not just the blip.
#[test]
fn blip_before_disaster_does_not_hide_the_real_outage() {
    use firedrill_ledger::*;
    let mut ops = Vec::new();
    let mut seq = 1;
    // 1 op every 10 ms from 0 to 20 s; failures in [2.0, 2.5) s (blip) and
    // in [10.0, 13.0) s (the disaster's outage).
    let mut t = 0u64;
    while t < 20_000_000 {
        let bad = (2_000_000..2_500_000).contains(&t) || (10_000_000..13_000_000).contains(&t);
        ops.push(Op {
            seq,
            t_invoke: t,
            t_done: t + 1_000,
            outcome: if bad { Outcome::Fail } else { Outcome::Ok },
        });
        seq += 1;
        t += 10_000;
    }
    let tl = Timeline {
        measure_start: 0,
        workload_end: 20_000_000,
        faults: vec![
            FaultRecord {
                step: 0,
                action: "cut_replication".into(),
                node: "n2".into(),
                disaster: false,
                t_start: 2_000_000,
                t_done: Some(2_000_000),
                heal_start: None,
                heal_done: None,
                error: None,
            },
            FaultRecord {
                step: 1,
                action: "kill".into(),
                node: "n1".into(),
                disaster: true,
                t_start: 10_000_000,
                t_done: Some(10_000_000),
                heal_start: None,
                heal_done: None,
                error: None,
            },
        ],
        ..Default::default()
    };
    let slo = Slo {
        stable_for_us: 2_000_000,
        ..Slo::default()
    };
    let audit = AuditSet::new(
        ops.iter()
            .filter(|o| o.outcome == Outcome::Ok)
            .map(|o| o.seq)
            .collect(),
    );
    let a = analyze(&ops, &tl, &audit, &slo);
    // Incident starts at the blip (2.0 s, i.e. -8 s); recovery at 13.0 s.
    assert_eq!(a.rto.incident_s, Some(-8.0));
    assert_eq!(a.rto.phases.recovered_s, Some(3.0));
    assert_eq!(a.rto.achieved_s, Some(11.0));
}

/// An ack observed after the fault took effect, for a write sent before it,
/// may have left the server before the fault: lost, but not a zombie. A
/// write sent after the fault took effect and acknowledged is a zombie.
#[test]
fn zombie_needs_a_write_sent_after_the_fault_took_effect() {
    let ops = vec![
        Op {
            seq: 1,
            t_invoke: 100,
            t_done: 110,
            outcome: Outcome::Ok,
        },
        Op {
            seq: 2,
            t_invoke: 515,
            t_done: 560,
            outcome: Outcome::Ok,
        },
        Op {
            seq: 3,
            t_invoke: 530,
            t_done: 540,
            outcome: Outcome::Ok,
        },
    ];
    let tl = timeline(vec![fault("kill", 500, Some(520), true)], 600);
    let a = analyze(&ops, &tl, &AuditSet::new(vec![1]), &SLO);
    assert_eq!((a.rpo.lost, a.rpo.zombie_lost), (2, 1));
}

/// The outage cannot start before the first fault step, even when the
/// first unhealthy bucket (aligned to the drill clock) does.
#[test]
fn incident_starts_no_earlier_than_the_first_step() {
    // One op every 10 µs, failing from 2_050 on (the stage-setting step),
    // healthy again from 3_000; bucket 100 µs.
    let ops = ops_every_10us(0, 6_000, |t| {
        if (2_050..3_000).contains(&t) {
            (Outcome::Unknown, t + 5)
        } else {
            (Outcome::Ok, t + 5)
        }
    });
    let tl = timeline(
        vec![
            fault("cut_replication", 2_050, Some(2_055), false),
            fault("kill", 2_500, Some(2_510), true),
        ],
        6_000,
    );
    let a = analyze(
        &ops,
        &tl,
        &AuditSet::new(ops.iter().map(|o| o.seq).collect()),
        &SLO,
    );
    assert_eq!(a.rto.incident_s, Some(-s(450)));
}

/// A crash in the middle of a bucket: the outage starts at the crash, not
/// at the bucket's edge.
#[test]
fn incident_starts_at_the_fault_inside_its_bucket() {
    let ops = ops_every_10us(0, 3_000, |t| {
        if (1_050..2_000).contains(&t) {
            (Outcome::Fail, t + 5)
        } else {
            (Outcome::Ok, t + 5)
        }
    });
    let tl = timeline(vec![fault("kill", 1_050, Some(1_052), true)], 3_000);
    let a = analyze(
        &ops,
        &tl,
        &AuditSet::new(ops.iter().map(|o| o.seq).collect()),
        &SLO,
    );
    assert_eq!(a.rto.incident_s, Some(0.0));
    assert_eq!(a.rto.achieved_s, Some(s(2_000 - 1_050)));
}

// ---------------------------------------------------------------- wipes

/// Backup at 500, every node wiped at 1000 (in effect at 1010), service
/// back from 1300: ops every 10 µs, failing in between except the one
/// invoked at 1000, acknowledged at 1005 by a node about to die.
fn wiped(restored: bool) -> (Vec<Op>, Timeline) {
    let ops = ops_every_10us(0, 3000, |t| {
        if (1010..1300).contains(&t) {
            (Outcome::Fail, t + 5)
        } else {
            (Outcome::Ok, t + 5)
        }
    });
    let mut tl = timeline(vec![fault("wipe", 1000, Some(1010), true)], 3000);
    tl.damage = Some(firedrill_ledger::Damage {
        action: firedrill_ledger::WIPE.into(),
        t_commit: 1010,
        ..Default::default()
    });
    tl.discovered = Some(1000);
    tl.backups.push(firedrill_ledger::BackupMark {
        t_start: 500,
        t_done: 520,
        label: "backup/0002.db".into(),
        ..Default::default()
    });
    if restored {
        tl.restore = Some(firedrill_ledger::RestoreMarks {
            target: "latest".into(),
            start: 1010,
            fetched: Some(1100),
            replayed: Some(1150),
            promoted: Some(1290),
            reached: true,
            ..Default::default()
        });
    }
    (ops, tl)
}

#[test]
fn a_restored_wipe_counts_every_missing_write_as_lost() {
    let (ops, tl) = wiped(true);
    // The snapshot kept what was acknowledged before 500; the restored
    // store took everything from 1300 on.
    let audit = AuditSet::new(
        ops.iter()
            .filter(|o| o.outcome == Outcome::Ok && (o.t_invoke < 500 || o.t_invoke >= 1300))
            .map(|o| o.seq)
            .collect(),
    );
    let a = analyze(&ops, &tl, &audit, &SLO);
    let r = a.restore.as_ref().expect("restore figures");
    // 500..=990 acknowledged before the wipe, and 1000 acknowledged at
    // 1005, after it began: all lost, none a trade the restore chose.
    assert_eq!((r.lost_before, r.rolled_back), (50, 1));
    assert_eq!(a.rpo.lost, 51);
    assert_eq!(a.rpo.zombie_lost, 0);
    // The failover's window: to when the wipe was in effect.
    assert_eq!(a.rpo.achieved_s, s(1010 - 505));
    // The backup's age at the wipe, as the timeline knew it.
    assert_eq!(a.rpo.predicted_s, Some(s(500)));
    assert_eq!(a.rto.achieved_s, Some(s(300)));
    assert_eq!(r.fetch_s, Some(s(100)));
    assert_eq!(r.promote_s, Some(s(290)));
    // An older restore of the same wipe must not look better.
    let worse = AuditSet::new(
        ops.iter()
            .filter(|o| o.outcome == Outcome::Ok && (o.t_invoke < 300 || o.t_invoke >= 1300))
            .map(|o| o.seq)
            .collect(),
    );
    let b = analyze(&ops, &tl, &worse, &SLO);
    assert_eq!(b.rpo.lost, 71);
    assert_eq!(b.rpo.achieved_s, s(1010 - 305));
}

#[test]
fn a_wipe_without_a_restore_is_a_failover() {
    let (ops, tl) = wiped(false);
    // Raft kept every acknowledged write on the survivors.
    let a = analyze(&ops, &tl, &all_ok(&ops), &SLO);
    assert!(a.restore.is_none(), "no restore ran: {:?}", a.restore);
    assert_eq!(a.rpo.lost, 0);
    assert_eq!(a.rto.achieved_s, Some(s(300)));
}

/// A data disaster recovers when the restored server serves, not at a
/// blip before the restore: writes fail for one bucket right after the
/// fault (1000) and are healthy again for a while, then the restore takes
/// the server down (1500..2000) and it promotes at 2000. The RTO counts
/// from t_fault to the stable healthy run that begins at the promotion.
#[test]
fn a_restore_recovers_at_its_promotion_not_at_an_earlier_blip() {
    let down = |t: Micros| (1000..1100).contains(&t) || (1500..2000).contains(&t);
    let ops = ops_every_10us(0, 3000, |t| {
        if down(t) {
            (Outcome::Fail, t + 5)
        } else {
            (Outcome::Ok, t + 5)
        }
    });
    let all: Vec<u64> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.seq)
        .collect();
    let mut tl = timeline(vec![fault("delete_rows", 1000, Some(1001), true)], 3000);
    tl.damage = Some(firedrill_ledger::Damage {
        action: "delete_rows".into(),
        ..Default::default()
    });
    tl.restore = Some(firedrill_ledger::RestoreMarks {
        start: 1400,
        fetched: Some(1600),
        replayed: Some(1900),
        promoted: Some(2000),
        reached: true,
        ..Default::default()
    });
    let a = analyze(&ops, &tl, &AuditSet::new(all.clone()), &SLO);
    // At the promotion (1000 after t_fault), within a bucket.
    let r = a.rto.achieved_s.expect("recovered");
    assert!((s(1000)..=s(1100)).contains(&r), "{:?}", a.rto);
    assert_eq!(a.rto.phases.recovered_s, Some(r));
    // Negative control: the same trial read as a failover recovers at the
    // blip's end.
    tl.damage = None;
    tl.restore = None;
    let a = analyze(&ops, &tl, &AuditSet::new(all), &SLO);
    assert_eq!(a.rto.phases.recovered_s, Some(s(100)), "{:?}", a.rto);
}
