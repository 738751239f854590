//! The heal watchdog: a detached process started when a fault is injected.
//! If firedrill dies before healing, the watchdog heals at the TTL.

use crate::Failure;
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
            let with = HealWith {
                opener: &opener_for_kind,
                password: pw.as_deref(),
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

/// Opens the kind of store a journaled heal names (a replication cut is
/// healed by its target). The watchdog has no plan to take it from: the
/// store registry answers.
fn opener_for_kind(kind: &str) -> Option<Arc<dyn TargetOpener>> {
    firedrill_stores::get(kind).and_then(|s| s.heal_target())
}
