//! CDC lag, an outbox's predicted gap (DESIGN.md, "Capabilities"): how far
//! the logical slot Debezium reads through (`confirmed_flush_lsn`) is
//! behind the primary's WAL (`pg_current_wal_lsn()`), in seconds. The
//! probe notes the primary's WAL position every round (its heartbeat
//! advances it): the lag is the time since the WAL was last at the slot's
//! confirmed position, so it grows one second per second while the
//! connector is stopped and writes keep coming, and is 0 when nothing is
//! pending. It reads at most one round high (the position was reached
//! between two samples); Debezium confirms at each offset flush, so it
//! also carries up to one `offset_flush` of events already published.

use super::node::{connect_pub, Node};
use firedrill_watch::board::Extras;
use firedrill_watch::plan::{Source, WatchedDomain};
use firedrill_watch::{labels, SourceResult};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::time::timeout;

const SLOT: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8, \
    (confirmed_flush_lsn - '0/0'::pg_lsn)::float8, active \
    FROM pg_replication_slots WHERE slot_name = $1";

/// The primary's WAL position over time, oldest first.
#[derive(Debug, Default)]
pub(super) struct WalClock {
    samples: VecDeque<(Instant, f64)>,
}

impl WalClock {
    /// Notes the WAL at `current` now; returns how long ago the WAL was
    /// last at or before `confirmed` (0 when nothing is pending). Before
    /// the history reaches back that far, the age of the oldest sample.
    pub(super) fn lag(&mut self, now: Instant, current: f64, confirmed: f64) -> f64 {
        self.samples.push_back((now, current));
        if confirmed >= current {
            self.samples.drain(..self.samples.len() - 1);
            return 0.0;
        }
        let at = self.samples.iter().rposition(|(_, l)| *l <= confirmed);
        let i = at.unwrap_or(0);
        self.samples.drain(..i);
        self.samples
            .front()
            .map_or(0.0, |(t, _)| now.duration_since(*t).as_secs_f64())
    }
}

/// One round's CDC lag of `slot` on the primary, with the slot's bytes
/// behind and whether a consumer is attached.
pub(super) async fn cdc_result(
    n: &mut Node,
    clock: &mut WalClock,
    slot: &str,
    limit: Duration,
    dom: &WatchedDomain,
    extras: &mut Extras,
) -> SourceResult {
    let r = timeout(limit, async {
        let c = connect_pub(n, limit).await?;
        c.client
            .query_opt(SLOT, &[&slot])
            .await
            .map_err(|e| crate::postgres::target::PgMessage::message(&e))
    })
    .await
    .map_err(|_| format!("timed out after {limit:?}"))
    .and_then(|r| r);
    let row = match r {
        Ok(Some(row)) => row,
        Ok(None) => {
            return SourceResult::failed(
                Source::Cdc,
                format!("{}: no replication slot named {slot}", n.name),
            )
        }
        Err(e) => {
            n.conn = None;
            return SourceResult::failed(Source::Cdc, format!("{}: {e}", n.name));
        }
    };
    let current: f64 = row.get(0);
    let confirmed: Option<f64> = row.get(1);
    let active: bool = row.get(2);
    let confirmed = confirmed.unwrap_or(0.0);
    let lag = clock.lag(Instant::now(), current, confirmed);
    let l = labels(dom, &[("slot", slot)]);
    extras.insert(
        ("firedrill_pg_cdc_lag_bytes".into(), l.clone()),
        (current - confirmed).max(0.0),
    );
    extras.insert(
        ("firedrill_pg_cdc_slot_active".into(), l),
        f64::from(u8::from(active)),
    );
    SourceResult {
        source: Source::Cdc,
        observed: vec![(String::new(), lag)],
        missing: vec![],
        error: None,
        ages: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_time_since_the_wal_was_confirmed() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut c = WalClock::default();
        assert_eq!(c.lag(s(0), 100.0, 100.0), 0.0, "nothing pending");
        assert_eq!(c.lag(s(1), 200.0, 100.0), 1.0, "WAL was at 100 a second ago");
        assert_eq!(c.lag(s(2), 300.0, 100.0), 2.0, "and grows while stopped");
        assert_eq!(c.lag(s(3), 400.0, 250.0), 2.0, "250 is past 200 (1 s), not 300");
        assert_eq!(c.lag(s(4), 400.0, 400.0), 0.0, "caught up");
        let mut fresh = WalClock::default();
        assert_eq!(fresh.lag(s(5), 500.0, 10.0), 0.0, "no history yet");
        assert_eq!(fresh.lag(s(7), 600.0, 10.0), 2.0, "at least the history");
    }
}
