//! The heal watchdog: a detached process started when a fault is injected.
//! If firedrill dies before healing, the watchdog heals at the TTL.

use crate::Failure;
use firedrill_faults::exec::Ran;
use firedrill_faults::{HealJournal, HealWith};
use firedrill_targets::TargetOpener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub async fn watchdog(journal: &Path, id: &str) -> Result<u8, Failure> {
    let j = HealJournal::open(journal).map_err(|e| Failure::aborted(e.to_string()))?;
    loop {
        let Some(entry) = j.get(id) else {
            return Ok(0); // healed by the drill itself
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now >= entry.expires_at {
            let pw = std::env::var("PGPASSWORD").ok();
            let log = |ran: &Ran| log_command(journal, id, ran);
            let with = HealWith {
                opener: &opener_for_kind,
                password: pw.as_deref(),
                on_command: Some(&log),
            };
            for _ in 0..10 {
                if firedrill_engine::heal_entry(&entry, &with).await.is_ok() {
                    j.remove(id);
                    return Ok(0);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            return Err(Failure::aborted(format!("could not heal {id}")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Appends a heal command the watchdog ran to `RUN_DIR/watchdog.jsonl`
/// (beside the journal, never in it): after a kill -9 it is the only
/// record of the heal. Times are Unix microseconds: firedrill's clock died
/// with it. Best effort: the heal matters more than its record.
fn log_command(journal: &Path, id: &str, ran: &Ran) {
    use std::io::Write;
    let Some(dir) = journal.parent() else { return };
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let ago = ran.started.elapsed().as_micros() as u64;
    let mut run = ran.record(ran.started);
    run.t_start = now_us.saturating_sub(ago);
    run.t_done += run.t_start;
    let line = serde_json::json!({"heal": id, "clock": "unix_us", "run": run});
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("watchdog.jsonl"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Opens the kind of store a journaled heal names (a replication cut is
/// healed by its target). The watchdog has no plan to take it from: the
/// store registry answers.
fn opener_for_kind(kind: &str) -> Option<Arc<dyn TargetOpener>> {
    firedrill_stores::get(kind).and_then(|s| s.heal_target())
}
