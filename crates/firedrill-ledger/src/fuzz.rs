//! The fuzzing entry of everything this crate's types are read back from
//! disk as: the ledger, the audit set and the positions files, the trial
//! journal, and the lines of events.jsonl. Shared by `fuzz/fuzz_targets/ledger_decode.rs`
//! and the replay test, so a saved crash replays on stable CI.

use crate::codec;
use crate::events::DrillEvent;
use crate::journal::{self, Partial, Stop};

/// Feeds `data` to every decoder; `Err` says which property broke. A
/// decoder may refuse the input, never panic; what it accepts must survive
/// an encode and decode unchanged (the bytes may differ: a varint can be
/// written longer than needed).
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) -> Result<(), String> {
    if let Ok(ops) = codec::decode(data) {
        let again = codec::decode(&codec::encode(&ops)).map_err(|e| format!("ledger: {e}"))?;
        if again != ops {
            return Err(format!("ledger changed on re-encode: {ops:?} -> {again:?}"));
        }
    }
    if let Ok(ids) = codec::decode_ids(data) {
        let again = codec::decode_ids(&codec::encode_ids(&ids)).map_err(|e| format!("ids: {e}"))?;
        if again != ids {
            return Err(format!(
                "audit set changed on re-encode: {ids:?} -> {again:?}"
            ));
        }
    }
    if let Ok(ps) = codec::decode_positions(data) {
        let again = codec::decode_positions(&codec::encode_positions(&ps))
            .map_err(|e| format!("positions: {e}"))?;
        if again != ps {
            return Err(format!(
                "positions changed on re-encode: {ps:?} -> {again:?}"
            ));
        }
    }
    let _ = Partial::recover(data);
    // The checksums keep mutated bytes out of the records: frame each line
    // of the input as one record, so the record decoders see them.
    let mut j = journal::header();
    for payload in data.split(|&b| b == b'\n') {
        j.extend(journal::frame(payload));
    }
    let p = Partial::recover(&j).map_err(|e| format!("journal with a good header: {e}"))?;
    if matches!(p.stop, Some(Stop::TornTail { .. }) | None) {
        return Err(format!("whole frames read as {:?}", p.stop));
    }
    for line in String::from_utf8_lossy(data).lines() {
        let _ = serde_json::from_str::<DrillEvent>(line);
    }
    Ok(())
}
