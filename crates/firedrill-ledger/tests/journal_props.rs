//! Property tests of the crash-safe journal's framing: a kill can cut the
//! file anywhere, and a disk can flip a byte anywhere.

use firedrill_ledger::journal::{frame, header, read_frames, Partial, Record, Stop, HEADER_LEN};
use firedrill_ledger::{Op, Outcome};
use proptest::prelude::*;

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..12)
}

fn build(ps: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut f = header();
    // ends[i] = file length once frame i is complete
    let mut ends = Vec::new();
    for p in ps {
        f.extend(frame(p));
        ends.push(f.len());
    }
    (f, ends)
}

proptest! {
    /// Any truncation recovers exactly the frames complete before the cut,
    /// and says the tail was torn unless the cut falls on a frame boundary.
    #[test]
    fn any_truncation_keeps_exactly_the_complete_frames(ps in payloads(), cut in any::<prop::sample::Index>()) {
        let (f, ends) = build(&ps);
        let cut = HEADER_LEN + cut.index(f.len() - HEADER_LEN + 1);
        let r = read_frames(&f[..cut]).unwrap();
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        prop_assert_eq!(r.payloads.len(), complete);
        for (got, want) in r.payloads.iter().zip(&ps) {
            prop_assert_eq!(*got, want.as_slice());
        }
        let boundary = cut == HEADER_LEN || ends.contains(&cut);
        prop_assert_eq!(r.stop == Stop::Clean, boundary);
    }

    /// A flipped byte inside a frame stops reading at that frame: the frames
    /// before it are kept, nothing after it is.
    #[test]
    fn a_corrupted_frame_stops_reading_there(ps in payloads(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (mut f, ends) = build(&ps);
        prop_assume!(f.len() > HEADER_LEN);
        let pos = HEADER_LEN + at.index(f.len() - HEADER_LEN);
        f[pos] ^= 1 << bit;
        let hit = ends.iter().position(|&e| e > pos).unwrap();
        let r = read_frames(&f).unwrap();
        prop_assert!(r.payloads.len() <= hit);
        for (got, want) in r.payloads.iter().zip(&ps) {
            prop_assert_eq!(*got, want.as_slice());
        }
        // A flipped length byte may make the frame look longer than the
        // file (a torn tail) or shorter (its checksum then fails); a flipped
        // checksum or payload byte is always caught as corrupt at `hit`.
        let frame_start = if hit == 0 { HEADER_LEN } else { ends[hit - 1] };
        if pos >= frame_start + 4 {
            prop_assert_eq!(r.payloads.len(), hit);
            prop_assert_eq!(r.stop, Stop::Corrupt { frame: hit, offset: frame_start });
        } else {
            prop_assert!(r.stop != Stop::Clean || r.payloads.len() < ps.len());
        }
    }

    /// Ops journaled in chunks come back whole and in order from any cut.
    #[test]
    fn ops_recover_up_to_the_last_complete_chunk(chunks in prop::collection::vec(1usize..30, 1..8), cut in any::<prop::sample::Index>()) {
        let mut f = header();
        let mut seq = 0u64;
        let mut ends = Vec::new();
        for n in &chunks {
            let ops: Vec<Op> = (0..*n).map(|_| { seq += 1; Op { seq, t_invoke: seq * 7, t_done: seq * 7 + 2, outcome: Outcome::Ok } }).collect();
            f.extend(frame(&Record::Ops(ops).encode()));
            ends.push((f.len(), seq));
        }
        let cut = HEADER_LEN + cut.index(f.len() - HEADER_LEN + 1);
        let p = Partial::recover(&f[..cut]).unwrap();
        let want = ends.iter().filter(|(e, _)| *e <= cut).map(|(_, s)| *s).next_back().unwrap_or(0);
        prop_assert_eq!(p.ops.len() as u64, want);
        prop_assert!(p.ops.iter().enumerate().all(|(i, o)| o.seq == i as u64 + 1));
    }
}
