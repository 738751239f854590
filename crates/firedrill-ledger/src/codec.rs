//! Compact binary ledger and audit-set encodings.
//!
//! A drill writes several thousand ops per second for minutes, so the
//! ledger must stay small on disk (a few bytes per op) and be re-readable
//! years later: every file starts with a magic and a version byte.
//!
//! Ledger layout: `FDLG`, version, varint count, then per op
//! - zigzag varint of `seq − previous seq` (wrapping),
//! - zigzag varint of `t_invoke − previous t_invoke` (wrapping),
//! - varint `latency << 2 | outcome`, where latency = `t_done − t_invoke`.
//!
//! Ops are recorded roughly in completion order, so neither seq nor
//! t_invoke is monotonic: signed deltas keep both small anyway. Tag 3 in
//! the low two bits is an escape for latencies that do not fit in 62 bits,
//! which includes `t_done < t_invoke` (a wrapped difference): it is
//! followed by the outcome and the full wrapped difference, so any input
//! round-trips exactly without `encode` ever failing.
//!
//! Audit-set layout: `FDID`, version, varint count, then varint deltas
//! (wrapping) between consecutive ids: sorted ids with repeats cost one
//! byte each for dense ranges.
//!
//! Positions layout (acknowledged writes' places in the store's own order):
//! `FDPS`, version, varint count, then per entry the zigzag deltas of seq,
//! epoch and index from the previous entry: one epoch repeats, so a
//! typical entry is three short varints.
//!
//! Decoding validates everything and returns [`LedgerError::Corrupt`]
//! instead of panicking: a truncated file from a crashed run must be
//! reported, not crash the reporter.

use crate::{LedgerError, Op, Outcome, Position};

const LEDGER_MAGIC: &[u8; 4] = b"FDLG";
const IDS_MAGIC: &[u8; 4] = b"FDID";
const POSITIONS_MAGIC: &[u8; 4] = b"FDPS";
const VERSION: u8 = 1;
/// Low-bits tag meaning "latency did not fit; outcome and full delta follow".
const ESCAPE: u64 = 3;
/// Smallest possible encoded op (three one-byte varints): bounds the
/// pre-allocation so a forged count cannot exhaust memory.
const MIN_OP_BYTES: usize = 3;

pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + ops.len() * 6);
    out.extend_from_slice(LEDGER_MAGIC);
    out.push(VERSION);
    put_varint(&mut out, ops.len() as u64);
    let (mut prev_seq, mut prev_invoke) = (0u64, 0u64);
    for op in ops {
        put_varint(&mut out, zigzag(op.seq.wrapping_sub(prev_seq)));
        put_varint(&mut out, zigzag(op.t_invoke.wrapping_sub(prev_invoke)));
        let latency = op.t_done.wrapping_sub(op.t_invoke);
        let code = op.outcome as u64;
        if latency < 1 << 62 {
            put_varint(&mut out, latency << 2 | code);
        } else {
            put_varint(&mut out, code << 2 | ESCAPE);
            put_varint(&mut out, latency);
        }
        prev_seq = op.seq;
        prev_invoke = op.t_invoke;
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Op>, LedgerError> {
    let mut r = Reader::new(bytes);
    r.header(LEDGER_MAGIC)?;
    let count = r.varint()?;
    let cap = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(r.remaining() / MIN_OP_BYTES);
    let mut ops = Vec::with_capacity(cap);
    let (mut seq, mut t_invoke) = (0u64, 0u64);
    for _ in 0..count {
        seq = seq.wrapping_add(unzigzag(r.varint()?));
        t_invoke = t_invoke.wrapping_add(unzigzag(r.varint()?));
        let word = r.varint()?;
        let (code, latency) = if word & 3 == ESCAPE {
            (word >> 2, r.varint()?)
        } else {
            (word & 3, word >> 2)
        };
        let outcome = match code {
            0 => Outcome::Ok,
            1 => Outcome::Fail,
            2 => Outcome::Unknown,
            _ => return Err(corrupt(format!("outcome code {code} in op {}", ops.len()))),
        };
        ops.push(Op {
            seq,
            t_invoke,
            t_done: t_invoke.wrapping_add(latency),
            outcome,
        });
    }
    r.finish()?;
    Ok(ops)
}

pub fn encode_ids(ids: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + ids.len() * 2);
    out.extend_from_slice(IDS_MAGIC);
    out.push(VERSION);
    put_varint(&mut out, ids.len() as u64);
    let mut prev = 0u64;
    for &id in ids {
        // Unsigned wrapping delta: sorted input stays compact, unsorted
        // input still round-trips (just larger).
        put_varint(&mut out, id.wrapping_sub(prev));
        prev = id;
    }
    out
}

pub fn decode_ids(bytes: &[u8]) -> Result<Vec<u64>, LedgerError> {
    let mut r = Reader::new(bytes);
    r.header(IDS_MAGIC)?;
    let count = r.varint()?;
    let cap = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(r.remaining());
    let mut ids = Vec::with_capacity(cap);
    let mut prev = 0u64;
    for _ in 0..count {
        prev = prev.wrapping_add(r.varint()?);
        ids.push(prev);
    }
    r.finish()?;
    Ok(ids)
}

pub fn encode_positions(entries: &[(u64, Position)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * 4);
    out.extend_from_slice(POSITIONS_MAGIC);
    out.push(VERSION);
    put_varint(&mut out, entries.len() as u64);
    let mut prev = (0u64, Position::default());
    for (seq, p) in entries {
        put_varint(&mut out, zigzag(seq.wrapping_sub(prev.0)));
        put_varint(&mut out, zigzag(p.epoch.wrapping_sub(prev.1.epoch)));
        put_varint(&mut out, zigzag(p.index.wrapping_sub(prev.1.index)));
        prev = (*seq, *p);
    }
    out
}

pub fn decode_positions(bytes: &[u8]) -> Result<Vec<(u64, Position)>, LedgerError> {
    let mut r = Reader::new(bytes);
    r.header(POSITIONS_MAGIC)?;
    let count = r.varint()?;
    let cap = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(r.remaining() / 3);
    let mut out = Vec::with_capacity(cap);
    let mut prev = (0u64, Position::default());
    for _ in 0..count {
        let seq = prev.0.wrapping_add(unzigzag(r.varint()?));
        let epoch = prev.1.epoch.wrapping_add(unzigzag(r.varint()?));
        let index = prev.1.index.wrapping_add(unzigzag(r.varint()?));
        prev = (seq, Position { epoch, index });
        out.push(prev);
    }
    r.finish()?;
    Ok(out)
}

fn corrupt(msg: String) -> LedgerError {
    LedgerError::Corrupt(msg)
}

fn zigzag(delta: u64) -> u64 {
    let v = delta as i64;
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> u64 {
    (v >> 1) ^ (v & 1).wrapping_neg()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bounds-checked cursor: every read can fail, none can panic.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn header(&mut self, magic: &[u8; 4]) -> Result<(), LedgerError> {
        if self.bytes.get(..4) != Some(&magic[..]) {
            return Err(corrupt("bad magic".into()));
        }
        match self.bytes.get(4) {
            Some(&VERSION) => {
                self.pos = 5;
                Ok(())
            }
            Some(v) => Err(corrupt(format!("unsupported version {v}"))),
            None => Err(corrupt("truncated header".into())),
        }
    }

    fn varint(&mut self) -> Result<u64, LedgerError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(corrupt(format!("truncated at byte {}", self.pos)));
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return Err(corrupt(format!("varint overflow at byte {}", self.pos - 1)));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt(format!("varint too long at byte {}", self.pos)))
    }

    fn finish(&self) -> Result<(), LedgerError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(corrupt(format!(
                "{} trailing bytes after the last entry",
                self.remaining()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(seq: u64, t_invoke: u64, t_done: u64, outcome: Outcome) -> Op {
        Op {
            seq,
            t_invoke,
            t_done,
            outcome,
        }
    }

    #[test]
    fn round_trips_extremes() {
        let ops = vec![
            op(1, 0, 0, Outcome::Ok),
            op(u64::MAX, u64::MAX, 0, Outcome::Unknown),
            op(0, 5, 3, Outcome::Fail),
            op(7, 1 << 62, u64::MAX, Outcome::Ok),
            op(8, 0, (1 << 62) - 1, Outcome::Unknown),
        ];
        assert_eq!(decode(&encode(&ops)).unwrap(), ops);
        let ids = vec![0, 0, 1, u64::MAX, 3, 3];
        assert_eq!(decode_ids(&encode_ids(&ids)).unwrap(), ids);
        let p = |epoch, index| Position { epoch, index };
        let pos = vec![
            (1, p(u64::MAX, 5)),
            (0, p(u64::MAX, 4)),
            (u64::MAX, p(0, u64::MAX)),
            (3, p(7, 0)),
        ];
        assert_eq!(decode_positions(&encode_positions(&pos)).unwrap(), pos);
        assert!(decode_positions(&encode_ids(&[1])).is_err());
    }

    #[test]
    fn typical_position_is_small() {
        // One cluster, revisions one apart, seqs in completion order.
        let pos: Vec<(u64, Position)> = (1..=1000u64)
            .map(|i| {
                (
                    i,
                    Position {
                        epoch: 0xdead_beef_cafe_f00d,
                        index: 100 + i,
                    },
                )
            })
            .collect();
        // The first entry pays for the epoch (10 bytes) and index.
        assert!(encode_positions(&pos).len() <= 5 + 2 + 12 + 999 * 3);
    }

    #[test]
    fn typical_op_is_small() {
        // 1 ms ops, in completion order: seq and invoke deltas are tiny.
        let ops: Vec<Op> = (1..=1000u64)
            .map(|i| op(i, i * 1000, i * 1000 + 900, Outcome::Ok))
            .collect();
        let bytes = encode(&ops);
        // 1 (seq) + 2 (invoke delta 1000) + 2 (latency 900) per op.
        assert_eq!(bytes.len(), 5 + 2 + ops.len() * 5);
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode(b"").is_err());
        assert!(decode(b"FDLG").is_err());
        assert!(decode(b"FDLG\x02\x00").is_err());
        assert!(decode(b"FDID\x01\x00").is_err());
        assert_eq!(decode(b"FDLG\x01\x00").unwrap(), vec![]);
        // One op announced, none present.
        assert!(decode(b"FDLG\x01\x01").is_err());
        // Escape with outcome code 3.
        assert!(decode(b"FDLG\x01\x01\x02\x00\x0f\x00").is_err());
        // Trailing byte.
        assert!(decode(b"FDLG\x01\x00\x00").is_err());
        // Eleven-byte varint.
        assert!(decode_ids(b"FDID\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00").is_err());
        // Tenth byte overflowing u64.
        assert!(decode_ids(b"FDID\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02").is_err());
        // Huge count, no data: must fail without allocating it.
        assert!(decode(b"FDLG\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01").is_err());
    }
}
