//! Restores into a new node and restore tests, on hand-made ledgers whose
//! figures are worked out by hand (times in µs).

use firedrill_ledger::{
    analyze, AuditSet, Damage, FaultRecord, Micros, Op, Outcome, RestoreMarks, Slo, Timeline,
};

/// 100 µs buckets, 300 µs stability.
const SLO: Slo = Slo {
    bucket_us: 100,
    success_ratio: 0.99,
    p99_us: None,
    stable_for_us: 300,
    recovery_timeout_us: 100_000,
};

fn ok_every_10us(from: Micros, to: Micros, first_seq: u64) -> Vec<Op> {
    (from..to)
        .step_by(10)
        .enumerate()
        .map(|(i, t)| Op {
            seq: first_seq + i as u64,
            t_invoke: t,
            t_done: t + 5,
            outcome: Outcome::Ok,
        })
        .collect()
}

fn fault(t: Micros) -> FaultRecord {
    FaultRecord {
        step: 0,
        action: "delete_rows".into(),
        node: "n1".into(),
        disaster: true,
        t_start: t,
        t_done: Some(t + 5),
        heal_start: None,
        heal_done: None,
        error: None,
    }
}

/// A data disaster at 1000 restored into a new node whose clients moved at
/// 2000: the damaged primary kept every bucket healthy, so the recovery is
/// the first write on the restored node, once stable_for of workload
/// followed it; until then, never.
#[test]
fn new_node_recovers_at_its_first_write_and_not_before() {
    // Writes to the old primary until 2000 (those after the fault are
    // rolled back), then to the restored node.
    let ops = ok_every_10us(0, 3000, 1);
    let marks = RestoreMarks {
        target: "before_fault".into(),
        start: 1500,
        fetched: Some(1600),
        promoted: Some(1900),
        moved: Some(2000),
        reached: true,
        node: Some("r1".into()),
        ..RestoreMarks::default()
    };
    let survived: Vec<u64> = ops
        .iter()
        .filter(|o| o.t_done < 1000 || o.t_invoke >= 2000)
        .map(|o| o.seq)
        .collect();
    let mut tl = Timeline {
        workload_end: 3000,
        faults: vec![fault(1000)],
        damage: Some(Damage::default()),
        discovered: Some(1500),
        restore: Some(marks),
        ..Timeline::default()
    };
    let a = analyze(&ops, &tl, &AuditSet::new(survived.clone()), &SLO);
    let r = a.restore.as_ref().expect("restore figures");
    assert_eq!(r.lost_before, 0);
    assert_eq!(r.node.as_deref(), Some("r1"));
    // Invoked at 2000, acknowledged at 2005: 1005 µs after the fault.
    assert_eq!(a.rto.phases.first_write_s, Some(1005e-6));
    assert_eq!(a.rto.achieved_s, Some(1005e-6));
    assert_eq!(r.duration_s, Some(400e-6), "start 1500 → promoted 1900");
    // Negative control: the same trial cut short 100 µs after that write
    // has no stable_for behind it: not recovered.
    tl.workload_end = 2100;
    let short: Vec<Op> = ops.iter().filter(|o| o.t_invoke < 2100).cloned().collect();
    let a = analyze(&short, &tl, &AuditSet::new(survived.clone()), &SLO);
    assert_eq!(a.rto.achieved_s, None);
    // And before any write reached the restored node: never, though
    // every bucket is healthy.
    tl.workload_end = 3000;
    let none_moved: Vec<Op> = ops.iter().filter(|o| o.t_invoke < 2000).cloned().collect();
    let a = analyze(&none_moved, &tl, &AuditSet::new(survived), &SLO);
    assert_eq!(a.rto.phases.first_write_s, None);
    assert_eq!(a.rto.achieved_s, None);
}

/// A restore test: no fault, t_fault is the restore's start (1000); lost
/// = writes acknowledged before it that the copy lacks; RTO = duration.
#[test]
fn restore_test_figures() {
    let ops = ok_every_10us(0, 2000, 1);
    let marks = RestoreMarks {
        target: "latest".into(),
        start: 1000,
        flushed: Some(1010),
        fetched: Some(1200),
        replayed: Some(1300),
        promoted: Some(1350),
        reached: true,
        node: Some("r1".into()),
        ..RestoreMarks::default()
    };
    let tl = Timeline {
        workload_end: 2000,
        restore: Some(marks),
        ..Timeline::default()
    };
    // The copy has everything acknowledged before 1000 but seq 50 (t_done
    // 495), and nothing written during the restore.
    let copy: Vec<u64> = ops
        .iter()
        .filter(|o| o.t_done < 1000 && o.seq != 50)
        .map(|o| o.seq)
        .collect();
    let a = analyze(&ops, &tl, &AuditSet::new(copy), &SLO);
    let r = a.restore.as_ref().expect("restore figures");
    assert!(r.test);
    assert_eq!(a.t_fault_us, Some(1000));
    assert_eq!(r.lost_before, 1);
    assert_eq!(a.rpo.lost, 1, "writes after the start are not lost");
    assert_eq!(a.rpo.achieved_s, 505e-6, "1000 - 495");
    assert_eq!(r.rolled_back, 100, "written while it ran, not in the copy");
    assert_eq!(a.rto.achieved_s, Some(350e-6));
    assert_eq!(r.duration_s, Some(350e-6));
    assert_eq!(a.rpo.predicted_s, Some(0.0), "flushed first");
    // Negative control: a restore that did not reach its target never
    // recovered, whatever its duration.
    let mut tl = tl;
    if let Some(m) = tl.restore.as_mut() {
        m.reached = false;
    }
    let a = analyze(&ops, &tl, &AuditSet::new(vec![]), &SLO);
    assert_eq!(a.rto.achieved_s, None);
    assert_eq!(a.rpo.lost, 100, "nothing came back");
}
