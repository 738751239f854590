//! The outbox variant of a capability trial (DESIGN.md, "Capabilities"):
//! the consumer runs for the whole trial, and after the audit firedrill
//! waits for the log and the projection to catch up with the source (up
//! to `catch_up`), then compares the three.

use crate::audit::Audited;
use crate::trial::Shared;
use firedrill_ledger::outbox::{outbox_figures, OutboxFigures, OutboxRead};
use firedrill_ledger::{Micros, Outcome};
use firedrill_targets::OutboxPipeline;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What a capability's outbox needs at run time.
#[derive(Clone)]
pub struct OutboxPlan {
    /// The indices in the capability's domains of the source (the
    /// PostgreSQL one), the log and the projection.
    pub source: usize,
    pub log: usize,
    pub projection: usize,
    pub pipeline: Arc<dyn OutboxPipeline>,
    /// `idempotent` or `non_idempotent`.
    pub consumer: String,
    pub catch_up: Duration,
}

impl std::fmt::Debug for OutboxPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutboxPlan({})", self.pipeline.describe())
    }
}

/// The read that shows everything caught up: every order the source holds
/// has its event in the log, the consumer read the log to its end, and
/// every event in the log was applied.
fn caught_up(r: &OutboxRead, present: &[u64]) -> bool {
    let logged: BTreeSet<u64> = r.log.iter().map(|(s, _)| *s).collect();
    r.consumer_caught_up
        && present.iter().all(|s| logged.contains(s))
        && logged
            .iter()
            .all(|s| r.applied.get(s).copied().unwrap_or(0) > 0)
}

/// Waits for the pipeline to catch up, then audits it three ways.
pub(crate) async fn audit(
    o: &OutboxPlan,
    source: &Audited,
    sh: &Shared,
    workload_end: Micros,
) -> Option<OutboxFigures> {
    let present = source.audit.ids().to_vec();
    let acked: Vec<u64> = source
        .ops
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .map(|op| op.seq)
        .collect();
    let end = Instant::now() + o.catch_up;
    let mut last: Option<OutboxRead> = None;
    let mut at = None;
    loop {
        match o.pipeline.read(Duration::from_secs(15)).await {
            Ok(r) => {
                let done = caught_up(&r, &present);
                last = Some(r);
                if done {
                    at = Some(sh.now().saturating_sub(workload_end) as f64 / 1e6);
                    break;
                }
            }
            Err(e) => sh.warn(format!("outbox: reading the log and the projection: {e}")),
        }
        if Instant::now() >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    o.pipeline.stop().await;
    let Some(r) = last else {
        sh.warn("outbox: the log and the projection could not be read: no outbox figures".into());
        return None;
    };
    Some(outbox_figures(&o.consumer, &acked, &present, &r, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_needs_all_three() {
        let mut r = OutboxRead {
            log: vec![(1, "a".into()), (2, "b".into())],
            applied: [(1, 1), (2, 1)].into_iter().collect(),
            consumer_caught_up: true,
            ..Default::default()
        };
        assert!(caught_up(&r, &[1, 2]));
        assert!(!caught_up(&r, &[1, 2, 3]), "3 has no event yet");
        r.applied.remove(&2);
        assert!(!caught_up(&r, &[1, 2]), "2 not applied yet");
        r.applied.insert(2, 2);
        r.consumer_caught_up = false;
        assert!(!caught_up(&r, &[1, 2]), "the consumer is behind");
    }
}
