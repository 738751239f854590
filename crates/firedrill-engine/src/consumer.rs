//! The stream consumer's task: the target's consumer group polled for the
//! whole trial, every delivery stamped on the drill clock. It runs past
//! the workload's end, until it has delivered what the audit found (or
//! stops delivering), so a record written in the last second is not
//! counted as skipped merely because the trial ended first.

use crate::trial::{lock, Shared};
use crate::EngineError;
use firedrill_ledger::ConsumerLog;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The longest the audit waits for the group to deliver what survived.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// A group that delivered nothing new for this long is done.
const DRAIN_QUIET: Duration = Duration::from_secs(3);

/// Starts the target's consumer group, if it has one.
pub(crate) fn start(sh: &Arc<Shared>) -> Result<(), EngineError> {
    let Some(mut c) = sh
        .target
        .consumer()
        .map_err(|e| EngineError::Preflight(format!("the consumer group: {e}")))?
    else {
        return Ok(());
    };
    let (group, settings) = c.describe();
    *lock(&sh.consumer) = Some(ConsumerLog {
        group,
        settings,
        ..ConsumerLog::default()
    });
    let task_sh = sh.clone();
    sh.spawn(async move {
        let sh = task_sh;
        while !sh.consumer_stop.load(Ordering::SeqCst) {
            let seqs = c.poll(Duration::from_millis(200)).await;
            let notes = c.notes();
            let t = sh.now();
            if let Some(log) = lock(&sh.consumer).as_mut() {
                log.deliveries.extend(seqs.into_iter().map(|s| (s, t)));
                log.notes.extend(notes.into_iter().map(|n| (t, n)));
            }
        }
    });
    Ok(())
}

/// Lets the group deliver what the audit found (`survived`), then stops
/// it and returns its log.
pub(crate) async fn drain(sh: &Shared, survived: &[u64]) -> Option<ConsumerLog> {
    lock(&sh.consumer).as_ref()?;
    // What is still to come, shrunk by each poll's new deliveries only.
    let mut missing: HashSet<u64> = survived.iter().copied().collect();
    let start = Instant::now();
    let (mut seen, mut last_new) = (0usize, Instant::now());
    loop {
        {
            let g = lock(&sh.consumer);
            let log = g.as_ref()?;
            if log.deliveries.len() > seen {
                for (s, _) in &log.deliveries[seen..] {
                    missing.remove(s);
                }
                (seen, last_new) = (log.deliveries.len(), Instant::now());
            }
        }
        if missing.is_empty() || last_new.elapsed() >= DRAIN_QUIET || start.elapsed() >= DRAIN_LIMIT
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sh.consumer_stop.store(true, Ordering::SeqCst);
    lock(&sh.consumer).take()
}
