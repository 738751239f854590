//! Property tests: the codec round-trips and never panics, and the RPO
//! figures obey the definition on random ledgers and random cuts.

use firedrill_ledger::{
    analyze, codec, AuditSet, FaultRecord, Op, Outcome, Position, Slo, Timeline,
};
use proptest::prelude::*;

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Ok),
        Just(Outcome::Fail),
        Just(Outcome::Unknown)
    ]
}

fn any_op() -> impl Strategy<Value = Op> {
    (any::<u64>(), any::<u64>(), any::<u64>(), outcome()).prop_map(
        |(seq, t_invoke, t_done, outcome)| Op {
            seq,
            t_invoke,
            t_done,
            outcome,
        },
    )
}

/// A plausible ledger: dense seqs, small times, in completion order.
fn ledger() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec((0u64..10_000, 0u64..500, outcome()), 0..200).prop_map(|raw| {
        let mut ops: Vec<Op> = raw
            .into_iter()
            .enumerate()
            .map(|(i, (t_invoke, lat, outcome))| Op {
                seq: i as u64 + 1,
                t_invoke,
                t_done: t_invoke + lat,
                outcome,
            })
            .collect();
        ops.sort_by_key(|o| o.t_done);
        ops
    })
}

fn one_fault(t_start: u64, took: u64) -> Timeline {
    Timeline {
        workload_end: 10_500,
        faults: vec![FaultRecord {
            step: 0,
            action: "kill".into(),
            node: "n0".into(),
            disaster: true,
            t_start,
            t_done: Some(t_start + took),
            heal_start: None,
            heal_done: None,
            error: None,
        }],
        ..Timeline::default()
    }
}

const SLO: Slo = Slo {
    bucket_us: 100,
    success_ratio: 0.99,
    p99_us: Some(200),
    stable_for_us: 300,
    recovery_timeout_us: 5_000,
};

proptest! {
    #[test]
    fn codec_round_trips(ops in prop::collection::vec(any_op(), 0..100)) {
        prop_assert_eq!(codec::decode(&codec::encode(&ops)).unwrap(), ops);
    }

    #[test]
    fn ids_round_trip(mut ids in prop::collection::vec(any::<u64>(), 0..100), sort in any::<bool>()) {
        if sort {
            ids.sort_unstable();
        }
        prop_assert_eq!(codec::decode_ids(&codec::encode_ids(&ids)).unwrap(), ids);
    }

    #[test]
    fn positions_round_trip(pos in prop::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 0..100)) {
        let pos: Vec<(u64, Position)> = pos
            .into_iter()
            .map(|(s, epoch, index)| (s, Position { epoch, index }))
            .collect();
        prop_assert_eq!(codec::decode_positions(&codec::encode_positions(&pos)).unwrap(), pos);
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = codec::decode(&bytes);
        let _ = codec::decode_ids(&bytes);
        let _ = codec::decode_positions(&bytes);
        // Behind a valid header, so the body parser sees the garbage too.
        let mut framed = b"FDLG\x01".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = codec::decode(&framed);
        framed[..4].copy_from_slice(b"FDID");
        let _ = codec::decode_ids(&framed);
        framed[..4].copy_from_slice(b"FDPS");
        let _ = codec::decode_positions(&framed);
    }

    #[test]
    fn truncated_ledger_is_corrupt(ops in prop::collection::vec(any_op(), 1..50), cut in any::<prop::sample::Index>()) {
        let bytes = codec::encode(&ops);
        let at = cut.index(bytes.len());
        prop_assert!(codec::decode(&bytes[..at]).is_err());
    }

    /// S = {ok ops done by T} ∪ some unknowns: everything ok after T is
    /// lost, and the window reaches back to the first of them.
    #[test]
    fn rpo_matches_cut(
        ops in ledger(),
        cut in 0u64..11_000,
        keep_unknown in prop::collection::vec(any::<bool>(), 200),
        t_fault in 0u64..11_000,
        took in 0u64..200,
    ) {
        let ids = ops
            .iter()
            .filter(|o| match o.outcome {
                Outcome::Ok => o.t_done <= cut,
                Outcome::Unknown => keep_unknown[(o.seq - 1) as usize],
                Outcome::Fail => false,
            })
            .map(|o| o.seq)
            .collect();
        let a = analyze(&ops, &one_fault(t_fault, took), &AuditSet::new(ids), &SLO);
        let after: Vec<&Op> = ops.iter().filter(|o| o.outcome == Outcome::Ok && o.t_done > cut).collect();
        let fault_done = t_fault + took;
        let expected = after
            .iter()
            .map(|o| o.t_done)
            .min()
            .map_or(0.0, |first| fault_done.saturating_sub(first) as f64 / 1e6);
        prop_assert_eq!(a.rpo.lost, after.len() as u64);
        prop_assert_eq!(a.rpo.achieved_s, expected);
        prop_assert_eq!(a.rpo.zombie_lost, after.iter().filter(|o| o.t_invoke >= fault_done).count() as u64);
        prop_assert_eq!(a.rpo.phantoms, 0);
        prop_assert_eq!(a.rpo.duplicates, 0);
        prop_assert_eq!(a.rpo.unknown_survived + a.rpo.unknown_lost, a.ops.unknown);
    }

    /// More evidence of survival can only reduce what counts as lost.
    #[test]
    fn more_ids_never_increase_lost(
        ops in ledger(),
        keep in prop::collection::vec(any::<bool>(), 200),
        extra in prop::collection::vec(0u64..300, 0..50),
        t_fault in 0u64..11_000,
    ) {
        let base: Vec<u64> = ops.iter().filter(|o| keep[(o.seq - 1) as usize]).map(|o| o.seq).collect();
        let mut more = base.clone();
        more.extend(extra);
        let tl = one_fault(t_fault, 10);
        let a = analyze(&ops, &tl, &AuditSet::new(base), &SLO);
        let b = analyze(&ops, &tl, &AuditSet::new(more), &SLO);
        prop_assert!(b.rpo.lost <= a.rpo.lost);
        prop_assert!(b.rpo.achieved_s <= a.rpo.achieved_s);
        prop_assert!(b.rpo.zombie_lost <= a.rpo.zombie_lost);
    }

    /// Invariants of any analysis; and shifting every seq far away (the
    /// sparse path) changes nothing.
    #[test]
    fn invariants_hold(
        ops in ledger(),
        ids in prop::collection::vec(0u64..250, 0..250),
        t_fault in 0u64..11_000,
        took in 0u64..200,
    ) {
        let tl = one_fault(t_fault, took);
        let a = analyze(&ops, &tl, &AuditSet::new(ids.clone()), &SLO);
        prop_assert!(a.rpo.achieved_s >= 0.0);
        prop_assert!(a.rpo.zombie_lost <= a.rpo.lost);
        prop_assert_eq!(a.ops.ok + a.ops.fail + a.ops.unknown, ops.len() as u64);
        if let Some(rto) = a.rto.achieved_s {
            prop_assert!(rto >= 0.0);
        }
        if let Some(incident) = a.rto.incident_s {
            prop_assert!(incident <= 0.0);
        }
        if let Some([first, last]) = a.rpo.loss_span_s {
            prop_assert!(first <= last);
        }

        const FAR: u64 = 1 << 40;
        let shifted: Vec<Op> = ops.iter().map(|o| Op { seq: o.seq + FAR, ..*o }).collect();
        let shifted_ids = ids.iter().map(|i| i + FAR).collect();
        let b = analyze(&shifted, &tl, &AuditSet::new(shifted_ids), &SLO);
        prop_assert_eq!(a, b);
    }
}
