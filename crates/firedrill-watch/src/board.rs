//! What the probes observed, and the exposure it implies at a given
//! instant. Pure: the probes write observations, the exporter and `status`
//! read exposures, and the staleness rule lives in one place.
//!
//! The rule: a failing or silent source is a breach, never a zero. While a
//! source's probe succeeds, its exposure is the value measured at the last
//! observation. Once it fails (or has not reported for three cadences), the
//! exposure keeps growing from the last good observation, one second per
//! second, as the data at risk does; a source never observed is `+Inf`.

use crate::plan::{Objective, Plan, Source};
use crate::probe::SourceResult;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One estimate for one node (or for the whole store: `node` empty).
#[derive(Debug, Clone, Copy)]
pub struct Obs {
    /// Exposure in seconds when observed.
    pub value: f64,
    pub at: Instant,
    /// Grows between observations even while fresh (backup age: probed
    /// rarely, but the backup gets older every second).
    pub ages: bool,
    /// The last attempt to observe this node succeeded.
    pub ok: bool,
}

impl Obs {
    /// Exposure at `now` given how often the source is probed.
    pub fn exposure(&self, now: Instant, cadence: Duration) -> f64 {
        let elapsed = now.saturating_duration_since(self.at);
        let fresh = self.ok && elapsed <= cadence * 3;
        if fresh && !self.ages {
            self.value
        } else {
            self.value + elapsed.as_secs_f64()
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct SourceState {
    pub nodes: BTreeMap<String, Obs>,
    /// The last probe round observed everything this source needs.
    pub up: bool,
    pub rounds: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub last_round: Option<Instant>,
}

/// Extra per-store gauges (lag bytes, leader presence, ...), by metric
/// name and label values; refreshed every probe round.
pub type Extras = BTreeMap<(String, Vec<(String, String)>), f64>;

#[derive(Debug, Default)]
pub struct DomainState {
    pub sources: BTreeMap<Source, SourceState>,
    pub extras: Extras,
    /// The newest passing restore test, from the run history.
    pub restore_test: crate::restore_test::RestoreTestState,
}

/// Shared between the probe tasks and the exporter.
#[derive(Debug)]
pub struct Board {
    pub domains: Vec<DomainState>,
    pub interval: Duration,
}

/// How often a source is probed.
pub fn cadence(source: Source, interval: Duration) -> Duration {
    match source {
        // Running pgbackrest each second would be a load of its own.
        Source::Backup => interval.max(BACKUP_EVERY),
        _ => interval,
    }
}

pub const BACKUP_EVERY: Duration = Duration::from_secs(60);

impl Board {
    pub fn new(plan: &Plan) -> Self {
        Board {
            domains: plan
                .domains
                .iter()
                .map(|_| DomainState::default())
                .collect(),
            interval: plan.settings.interval,
        }
    }

    /// Records one probe round of `source` for domain `d`: the nodes
    /// observed, and the nodes that should have been but were not.
    pub fn record(&mut self, d: usize, now: Instant, r: SourceResult) {
        let SourceResult {
            source,
            observed,
            missing,
            error,
            ages,
        } = r;
        let Some(dom) = self.domains.get_mut(d) else {
            return;
        };
        let st = dom.sources.entry(source).or_default();
        st.rounds += 1;
        st.last_round = Some(now);
        let failed = error.is_some() || !missing.is_empty();
        st.up = !failed;
        if failed {
            st.errors += 1;
            st.last_error = error.or_else(|| Some(format!("not observed: {}", missing.join(", "))));
        } else {
            st.last_error = None;
        }
        for (node, value) in observed {
            st.nodes.insert(
                node,
                Obs {
                    value: value.max(0.0),
                    at: now,
                    ages,
                    ok: true,
                },
            );
        }
        for node in missing {
            if let Some(o) = st.nodes.get_mut(&node) {
                o.ok = false;
            }
        }
    }

    /// Marks every node of a source as not observed (the whole probe failed).
    pub fn fail(&mut self, d: usize, source: Source, now: Instant, error: String) {
        let Some(dom) = self.domains.get_mut(d) else {
            return;
        };
        let st = dom.sources.entry(source).or_default();
        st.rounds += 1;
        st.errors += 1;
        st.up = false;
        st.last_round = Some(now);
        st.last_error = Some(error);
        for o in st.nodes.values_mut() {
            o.ok = false;
        }
    }

    /// The source is up at `now`: its last round succeeded and it is not silent.
    pub fn up(&self, d: usize, source: Source, now: Instant) -> bool {
        let Some(st) = self.domains.get(d).and_then(|x| x.sources.get(&source)) else {
            return false;
        };
        let c = cadence(source, self.interval);
        st.up
            && st
                .last_round
                .is_some_and(|t| now.saturating_duration_since(t) <= c * 3)
    }

    /// Exposure of one objective through one source: the best surviving
    /// node (the one that would be promoted), `+Inf` if none was ever seen.
    pub fn exposure(&self, d: usize, o: &Objective, source: Source, now: Instant) -> f64 {
        let Some(st) = self.domains.get(d).and_then(|x| x.sources.get(&source)) else {
            return f64::INFINITY;
        };
        let c = cadence(source, self.interval);
        let silent = st
            .last_round
            .is_none_or(|t| now.saturating_duration_since(t) > c * 3);
        st.nodes
            .iter()
            .filter(|(n, _)| n.is_empty() || o.counts(n))
            .map(|(_, obs)| {
                let mut obs = *obs;
                if silent {
                    obs.ok = false;
                }
                obs.exposure(now, c)
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// Worst source of an objective: what the alert compares.
    pub fn objective_exposure(&self, d: usize, o: &Objective, now: Instant) -> f64 {
        o.sources
            .iter()
            .map(|s| self.exposure(d, o, *s, now))
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Disruption;

    fn objective(nodes: Option<Vec<&str>>) -> Objective {
        Objective {
            disruption: Disruption("node_loss".into()),
            rpo: Some(Duration::from_secs(5)),
            rto: None,
            sources: vec![Source::Heartbeat],
            nodes: nodes.map(|v| v.into_iter().map(String::from).collect()),
        }
    }

    fn hb(observed: Vec<(String, f64)>, missing: Vec<String>) -> SourceResult {
        SourceResult {
            source: Source::Heartbeat,
            observed,
            missing,
            error: None,
            ages: false,
        }
    }

    fn board() -> Board {
        Board {
            domains: vec![DomainState::default()],
            interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn never_observed_is_infinite_not_zero() {
        let b = board();
        let now = Instant::now();
        assert_eq!(
            b.exposure(0, &objective(None), Source::Heartbeat, now),
            f64::INFINITY
        );
        assert!(!b.up(0, Source::Heartbeat, now));
    }

    #[test]
    fn fresh_value_is_kept_failed_value_grows() {
        let mut b = board();
        let t0 = Instant::now();
        b.record(0, t0, hb(vec![("n2".into(), 0.4)], vec![]));
        let o = objective(None);
        assert_eq!(
            b.exposure(0, &o, Source::Heartbeat, t0 + Duration::from_millis(900)),
            0.4
        );
        assert!(b.up(0, Source::Heartbeat, t0));
        b.fail(
            0,
            Source::Heartbeat,
            t0 + Duration::from_secs(1),
            "refused".into(),
        );
        let e = b.exposure(0, &o, Source::Heartbeat, t0 + Duration::from_secs(10));
        assert!((e - 10.4).abs() < 1e-9, "{e}");
        assert!(!b.up(0, Source::Heartbeat, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn silence_is_a_breach() {
        let mut b = board();
        let t0 = Instant::now();
        b.record(0, t0, hb(vec![("n2".into(), 0.5)], vec![]));
        let later = t0 + Duration::from_secs(20);
        assert!(!b.up(0, Source::Heartbeat, later));
        let e = b.exposure(0, &objective(None), Source::Heartbeat, later);
        assert!((e - 20.5).abs() < 1e-9, "{e}");
    }

    #[test]
    fn best_counted_node_wins() {
        let mut b = board();
        let t0 = Instant::now();
        b.record(
            0,
            t0,
            hb(vec![("n2".into(), 3.0), ("n3".into(), 0.2)], vec![]),
        );
        assert_eq!(b.exposure(0, &objective(None), Source::Heartbeat, t0), 0.2);
        assert_eq!(
            b.exposure(0, &objective(Some(vec!["n2"])), Source::Heartbeat, t0),
            3.0
        );
    }

    #[test]
    fn a_missing_node_ages_and_downs_the_source() {
        let mut b = board();
        let t0 = Instant::now();
        b.record(0, t0, hb(vec![("n2".into(), 0.1)], vec![]));
        let t1 = t0 + Duration::from_secs(1);
        b.record(0, t1, hb(vec![], vec!["n2".into()]));
        assert!(!b.up(0, Source::Heartbeat, t1));
        let e = b.exposure(
            0,
            &objective(None),
            Source::Heartbeat,
            t0 + Duration::from_secs(4),
        );
        assert!((e - 4.1).abs() < 1e-9);
    }
}
