//! The crash-safe trial journal: what the engine appends to
//! `trial-<n>/journal.bin` while the drill runs, so a SIGKILLed firedrill
//! still leaves the ledger and the fault timeline up to its last flush.
//!
//! Layout: `FDJN`, a version byte, then frames. A frame is a little-endian
//! `u32` payload length, the payload's CRC-32 (`u32` LE), and the payload.
//! A payload is a kind byte and its body: ops are the [`crate::codec`]
//! ledger encoding of the ops completed since the previous frame, the
//! others JSON.
//!
//! Appends are not atomic: a kill can leave half a frame at the end. The
//! reader keeps every complete frame before it and says why it stopped,
//! so a torn tail costs at most the last flush, and a corrupted frame
//! (checksum mismatch) is reported with the count of frames kept, never
//! read past.

use crate::{codec, LagSample, LedgerError, Micros, Op, Timeline};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"FDJN";
const VERSION: u8 = 1;
/// Bytes before the first frame.
pub const HEADER_LEN: usize = 5;
/// Bytes of a frame before its payload.
pub const FRAME_HEAD: usize = 8;

const KIND_START: u8 = 1;
const KIND_OPS: u8 = 2;
const KIND_TIMELINE: u8 = 3;
const KIND_LAG: u8 = 4;
const KIND_MARK: u8 = 5;

/// The file header.
pub fn header() -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.push(VERSION);
    v
}

/// One frame around `payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEAD + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stop", rename_all = "snake_case")]
pub enum Stop {
    /// The file ends exactly after a frame.
    Clean,
    /// The last frame is incomplete (a write cut short): dropped.
    TornTail { offset: usize },
    /// A complete frame whose checksum (or body) is wrong: nothing from it
    /// on is read.
    Corrupt { frame: usize, offset: usize },
}

/// The complete frames' payloads, in order, and why reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frames<'a> {
    pub payloads: Vec<&'a [u8]>,
    pub stop: Stop,
}

/// Splits a journal into its complete, checksummed frames. Only a missing
/// or foreign header is an error; a torn or corrupt frame ends the list.
pub fn read_frames(bytes: &[u8]) -> Result<Frames<'_>, LedgerError> {
    if bytes.len() < HEADER_LEN {
        // A header cut short: the file was just created.
        if MAGIC.starts_with(&bytes[..bytes.len().min(4)]) {
            return Ok(Frames {
                payloads: Vec::new(),
                stop: Stop::TornTail { offset: 0 },
            });
        }
        return Err(LedgerError::Corrupt("not a firedrill journal".into()));
    }
    if &bytes[..4] != MAGIC {
        return Err(LedgerError::Corrupt("not a firedrill journal".into()));
    }
    if bytes[4] != VERSION {
        return Err(LedgerError::Corrupt(format!(
            "journal version {} (this build reads {VERSION})",
            bytes[4]
        )));
    }
    let mut at = HEADER_LEN;
    let mut payloads = Vec::new();
    let stop = loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break Stop::Clean;
        }
        if rest.len() < FRAME_HEAD {
            break Stop::TornTail { offset: at };
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let Some(payload) = rest.get(FRAME_HEAD..FRAME_HEAD + len) else {
            break Stop::TornTail { offset: at };
        };
        if crc32fast::hash(payload) != crc {
            break Stop::Corrupt {
                frame: payloads.len(),
                offset: at,
            };
        }
        payloads.push(payload);
        at += FRAME_HEAD + len;
    };
    Ok(Frames { payloads, stop })
}

/// The first frame of a trial's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartInfo {
    pub trial: u32,
    /// The store-side id of the trial's rows: what a re-audit reads back.
    pub run_id: String,
    /// Unix milliseconds at the trial's observer time 0.
    pub t0_unix_ms: u64,
}

/// Written with every flush: the journal was alive at `t_us`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub t_us: Micros,
    /// The trial's phase at that moment (`warmup`, `steady`, `fault`, …).
    pub phase: String,
    /// Ops issued so far (the next seq − 1), recorded or still in flight.
    pub issued: u64,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Start(StartInfo),
    /// Ops completed since the previous ops record.
    Ops(Vec<Op>),
    /// The timeline so far, without its lag samples (they come as [`Record::Lag`]).
    Timeline(Box<Timeline>),
    /// Lag samples taken since the previous lag record.
    Lag(Vec<LagSample>),
    Mark(Mark),
}

impl Record {
    /// The frame payload: kind byte and body.
    pub fn encode(&self) -> Vec<u8> {
        let json = |kind: u8, v: serde_json::Result<Vec<u8>>| {
            let mut out = vec![kind];
            // These types always serialize: no map with non-string keys.
            out.extend(v.unwrap_or_default());
            out
        };
        match self {
            Record::Start(s) => json(KIND_START, serde_json::to_vec(s)),
            Record::Ops(ops) => {
                let mut out = vec![KIND_OPS];
                out.extend(codec::encode(ops));
                out
            }
            Record::Timeline(t) => json(KIND_TIMELINE, serde_json::to_vec(t)),
            Record::Lag(l) => json(KIND_LAG, serde_json::to_vec(l)),
            Record::Mark(m) => json(KIND_MARK, serde_json::to_vec(m)),
        }
    }

    pub fn decode(payload: &[u8]) -> Result<Record, LedgerError> {
        let (&kind, body) = payload
            .split_first()
            .ok_or_else(|| LedgerError::Corrupt("empty journal record".into()))?;
        let bad = |e: serde_json::Error| LedgerError::Corrupt(format!("journal record: {e}"));
        Ok(match kind {
            KIND_START => Record::Start(serde_json::from_slice(body).map_err(bad)?),
            KIND_OPS => Record::Ops(codec::decode(body)?),
            KIND_TIMELINE => Record::Timeline(serde_json::from_slice(body).map_err(bad)?),
            KIND_LAG => Record::Lag(serde_json::from_slice(body).map_err(bad)?),
            KIND_MARK => Record::Mark(serde_json::from_slice(body).map_err(bad)?),
            k => return Err(LedgerError::Corrupt(format!("journal record kind {k}"))),
        })
    }
}

/// What a journal holds, folded: the partial ledger and timeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partial {
    pub start: Option<StartInfo>,
    pub ops: Vec<Op>,
    /// The last timeline written, with every lag sample journaled.
    pub timeline: Timeline,
    pub last_mark: Option<Mark>,
    /// Complete frames read.
    pub frames: usize,
    /// Why reading stopped; `Clean` for a journal written to its end.
    pub stop: Option<Stop>,
}

impl Partial {
    /// Recovers everything up to the first torn or corrupt frame. A frame
    /// whose checksum holds but whose record does not decode stops reading
    /// too, as corrupt.
    pub fn recover(bytes: &[u8]) -> Result<Partial, LedgerError> {
        let frames = read_frames(bytes)?;
        let mut p = Partial::default();
        let mut lag = Vec::new();
        let mut stop = frames.stop;
        let mut offset = HEADER_LEN;
        for payload in &frames.payloads {
            match Record::decode(payload) {
                Ok(Record::Start(s)) => p.start = Some(s),
                Ok(Record::Ops(ops)) => p.ops.extend(ops),
                Ok(Record::Timeline(t)) => p.timeline = *t,
                Ok(Record::Lag(l)) => lag.extend(l),
                Ok(Record::Mark(m)) => p.last_mark = Some(m),
                Err(_) => {
                    stop = Stop::Corrupt {
                        frame: p.frames,
                        offset,
                    };
                    break;
                }
            }
            p.frames += 1;
            offset += FRAME_HEAD + payload.len();
        }
        p.timeline.lag_samples = lag;
        p.stop = Some(stop);
        Ok(p)
    }
}

/// A died trial's ledger, completed: every seq up to the highest issued,
/// journaled or `found` in the store whose outcome was never recorded (in
/// flight at the kill, or completed after the last flush) is an unknown op
/// at `t_dead`, the last moment the process was known alive. Returns the
/// ops and how many were added.
pub fn complete(journaled: &[Op], issued: u64, found: &[u64], t_dead: Micros) -> (Vec<Op>, u64) {
    let mut ops = journaled.to_vec();
    let t_dead = ops.iter().map(|o| o.t_done).max().unwrap_or(0).max(t_dead);
    let seen: std::collections::HashSet<u64> = ops.iter().map(|o| o.seq).collect();
    let top = found
        .iter()
        .chain(seen.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(issued);
    let mut added = 0;
    for seq in 1..=top {
        if !seen.contains(&seq) {
            added += 1;
            ops.push(Op {
                seq,
                t_invoke: t_dead,
                t_done: t_dead,
                outcome: crate::Outcome::Unknown,
            });
        }
    }
    (ops, added)
}

/// Checks a died trial. An RTO the kill cut short is not judged, and its
/// figure is cleared: no disaster yet; a recovery not yet stable for
/// `stable_for_us` past the last fault step (`settle_from`, as the drill's
/// own end-of-trial check requires); or a service not yet recovered before
/// the objective's window ended, which may still have recovered in time.
/// An outage already longer than the objective is judged (violated).
pub fn judge(
    a: &mut crate::Analysis,
    o: &crate::Objectives,
    t_dead: Micros,
    settle_from: Option<Micros>,
    stable_for_us: Micros,
) -> (crate::ObjectiveCheck, crate::Verdict) {
    let settled = settle_from.is_some_and(|f| t_dead >= f + stable_for_us);
    let why = match (a.t_fault_us, a.rto.achieved_s) {
        (None, _) => Some("RTO not judged: the process died before the disaster".to_string()),
        (Some(f), Some(_)) if !settled => Some(format!(
            "RTO not judged: the process died {:.2} s after the fault, before the service was stable again",
            t_dead.saturating_sub(f) as f64 / 1e6
        )),
        (Some(f), None) if o.rto_us.is_some_and(|r| t_dead < f + r) => Some(format!(
            "RTO not judged: the process died {:.2} s after the fault, before the service recovered and before the objective's window ended",
            t_dead.saturating_sub(f) as f64 / 1e6
        )),
        _ => None,
    };
    let mut o = *o;
    if why.is_some() {
        o.rto_us = None;
        a.rto.achieved_s = None;
    }
    let (mut chk, verdict) = crate::check(a, &o);
    chk.reasons.extend(why);
    (chk, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    fn file(payloads: &[&[u8]]) -> Vec<u8> {
        let mut f = header();
        for p in payloads {
            f.extend(frame(p));
        }
        f
    }

    #[test]
    fn reads_every_frame_of_a_whole_file() {
        let f = file(&[b"a", b"", b"hello"]);
        let r = read_frames(&f).unwrap();
        assert_eq!(r.payloads, vec![&b"a"[..], b"", b"hello"]);
        assert_eq!(r.stop, Stop::Clean);
    }

    #[test]
    fn a_torn_last_frame_is_dropped() {
        let f = file(&[b"first", b"second"]);
        let cut = &f[..f.len() - 3];
        let r = read_frames(cut).unwrap();
        assert_eq!(r.payloads, vec![&b"first"[..]]);
        assert_eq!(
            r.stop,
            Stop::TornTail {
                offset: HEADER_LEN + FRAME_HEAD + 5
            }
        );
    }

    #[test]
    fn a_flipped_byte_stops_at_that_frame() {
        let mut f = file(&[b"one", b"two", b"three"]);
        let second = HEADER_LEN + FRAME_HEAD + 3;
        f[second + FRAME_HEAD] ^= 0x40;
        let r = read_frames(&f).unwrap();
        assert_eq!(r.payloads, vec![&b"one"[..]]);
        assert_eq!(
            r.stop,
            Stop::Corrupt {
                frame: 1,
                offset: second
            }
        );
    }

    #[test]
    fn a_foreign_file_is_an_error_and_a_short_header_is_empty() {
        assert!(read_frames(b"FDLG\x01").is_err());
        assert!(read_frames(b"FDJN\x09").is_err());
        let r = read_frames(b"FDJ").unwrap();
        assert!(r.payloads.is_empty());
        assert_eq!(r.stop, Stop::TornTail { offset: 0 });
    }

    #[test]
    fn records_fold_into_the_partial_ledger() {
        let op = |seq| Op {
            seq,
            t_invoke: seq * 10,
            t_done: seq * 10 + 3,
            outcome: Outcome::Ok,
        };
        let tl = Timeline {
            measure_start: 1_000,
            ..Timeline::default()
        };
        let sample = |t| LagSample {
            t,
            node: 0,
            lag_us: 5,
        };
        let recs = [
            Record::Start(StartInfo {
                trial: 1,
                run_id: "r".into(),
                t0_unix_ms: 7,
            }),
            Record::Ops(vec![op(1), op(2)]),
            Record::Lag(vec![sample(1)]),
            Record::Timeline(Box::new(tl.clone())),
            Record::Ops(vec![op(3)]),
            Record::Lag(vec![sample(2)]),
            Record::Mark(Mark {
                t_us: 99,
                phase: "steady".into(),
                issued: 4,
            }),
        ];
        let mut f = header();
        for r in &recs {
            assert_eq!(&Record::decode(&r.encode()).unwrap(), r);
            f.extend(frame(&r.encode()));
        }
        let p = Partial::recover(&f).unwrap();
        assert_eq!(p.ops, vec![op(1), op(2), op(3)]);
        assert_eq!(p.timeline.measure_start, 1_000);
        assert_eq!(p.timeline.lag_samples, vec![sample(1), sample(2)]);
        assert_eq!(p.last_mark.as_ref().map(|m| m.t_us), Some(99));
        assert_eq!(p.frames, recs.len());
        assert_eq!(p.stop, Some(Stop::Clean));
    }

    #[test]
    fn a_frame_with_a_good_checksum_but_a_bad_record_is_corrupt() {
        let mut f = header();
        f.extend(frame(&Record::Ops(vec![]).encode()));
        f.extend(frame(&[KIND_MARK, b'{']));
        let p = Partial::recover(&f).unwrap();
        assert_eq!(p.frames, 1);
        assert!(matches!(p.stop, Some(Stop::Corrupt { frame: 1, .. })));
    }

    #[test]
    fn unrecorded_seqs_become_unknown_at_the_death() {
        let ok = |seq| Op {
            seq,
            t_invoke: seq * 10,
            t_done: seq * 10 + 1,
            outcome: Outcome::Ok,
        };
        // 2 and 4 were issued but never journaled; 5 is only in the store.
        let (ops, added) = complete(&[ok(1), ok(3)], 4, &[1, 3, 5], 100);
        assert_eq!(added, 3);
        let unknown: Vec<(u64, u64)> = ops
            .iter()
            .filter(|o| o.outcome == Outcome::Unknown)
            .map(|o| (o.seq, o.t_invoke))
            .collect();
        assert_eq!(unknown, vec![(2, 100), (4, 100), (5, 100)]);
        // Nothing missing: nothing added.
        assert_eq!(complete(&[ok(1), ok(2)], 2, &[1, 2], 5).1, 0);
    }

    #[test]
    fn an_rto_cut_short_by_the_kill_is_not_judged_but_a_long_outage_is() {
        let down = crate::Analysis {
            t_fault_us: Some(1_000_000),
            ..crate::Analysis::default()
        };
        let o = crate::Objectives {
            rpo_us: Some(1_000_000),
            rto_us: Some(5_000_000),
        };
        let fault = Some(1_000_000);
        let (chk, v) = judge(&mut down.clone(), &o, 3_000_000, fault, 2_000_000);
        assert_eq!(chk.rto_met, None);
        assert_eq!(v, crate::Verdict::Pass, "{chk:?}");
        assert!(
            chk.reasons[0].contains("before the service recovered"),
            "{chk:?}"
        );
        // Down for longer than the objective before the kill: violated.
        let (chk, v) = judge(&mut down.clone(), &o, 7_000_000, fault, 2_000_000);
        assert_eq!(chk.rto_met, Some(false));
        assert_eq!(v, crate::Verdict::Fail);
        // Back, but not yet for stable_for: the figure is not kept.
        let mut back = down.clone();
        back.rto.achieved_s = Some(0.0);
        let (chk, _) = judge(&mut back, &o, 2_500_000, fault, 2_000_000);
        assert_eq!((chk.rto_met, back.rto.achieved_s), (None, None), "{chk:?}");
        // Back and stable: judged as usual.
        let mut stable = down.clone();
        stable.rto.achieved_s = Some(0.4);
        let (chk, _) = judge(&mut stable, &o, 3_500_000, fault, 2_000_000);
        assert_eq!(
            (chk.rto_met, stable.rto.achieved_s),
            (Some(true), Some(0.4))
        );
        // No disaster at all.
        let mut none = crate::Analysis::default();
        none.rto.achieved_s = Some(0.0);
        let (chk, _) = judge(&mut none, &o, 3_000_000, None, 2_000_000);
        assert_eq!((chk.rto_met, none.rto.achieved_s), (None, None));
    }
}
