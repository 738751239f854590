//! Probe scheduling: one probe per domain (its store's [`Probe`], which
//! keeps one connection per node open and re-opens it after any error). A
//! probe round never touches the board while it waits on the network: it
//! returns a [`Round`] that is applied at once.

use crate::board::{Board, Extras};
use crate::kind::Probe;
use crate::plan::{Settings, Source, WatchedDomain};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one round learnt about one source.
#[derive(Debug, Clone)]
pub struct SourceResult {
    pub source: Source,
    /// (node, exposure seconds); node "" for store-level sources.
    pub observed: Vec<(String, f64)>,
    /// Nodes that should have been observed and were not.
    pub missing: Vec<String>,
    pub error: Option<String>,
    pub ages: bool,
}

impl SourceResult {
    pub fn failed(source: Source, error: String) -> Self {
        SourceResult {
            source,
            observed: Vec::new(),
            missing: Vec::new(),
            error: Some(error),
            ages: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct Round {
    pub results: Vec<SourceResult>,
    /// Replaces the domain's extra gauges when `Some`.
    pub extras: Option<Extras>,
    /// Merged into the extra gauges (sources probed at their own pace).
    pub extra_updates: Extras,
}

/// The probe of one domain's store.
fn prober(dom: &WatchedDomain, settings: &Settings) -> Box<dyn Probe> {
    dom.store.prober(dom, settings)
}

/// Applies a round to the board.
pub fn apply(board: &Mutex<Board>, d: usize, round: Round, now: Instant) {
    let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
    for r in round.results {
        match r.error {
            Some(e) if r.observed.is_empty() => b.fail(d, r.source, now, e),
            _ => b.record(d, now, r),
        }
    }
    if let Some(dom) = b.domains.get_mut(d) {
        if let Some(x) = round.extras {
            dom.extras = x;
        }
        dom.extras.extend(round.extra_updates);
    }
}

/// Probes one domain forever, every `interval`, starting after `offset`
/// (spreads many domains over the interval instead of a burst each second).
pub async fn run_domain(
    dom: Arc<WatchedDomain>,
    d: usize,
    settings: Settings,
    board: Arc<Mutex<Board>>,
    offset: Duration,
) {
    tokio::time::sleep(offset).await;
    let mut prober = prober(&dom, &settings);
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let limit = settings.timeout * 3;
        let round = match tokio::time::timeout(limit, prober.round(&dom)).await {
            Ok(r) => r,
            Err(_) => {
                // A hung round: every source of the domain failed.
                Round {
                    results: Source::ALL
                        .iter()
                        .filter(|s| dom.wants(**s))
                        .map(|s| {
                            SourceResult::failed(*s, format!("probe round took over {limit:?}"))
                        })
                        .collect(),
                    ..Round::default()
                }
            }
        };
        for r in &round.results {
            if let Some(e) = &r.error {
                tracing::debug!(domain = %dom.name, source = r.source.as_str(), "probe: {e}");
            }
        }
        apply(&board, d, round, Instant::now());
    }
}

/// Probes every domain once, concurrently (for `firedrill status`). The
/// heartbeat needs two rounds: the first writes it, the second reads it
/// back on the standbys after `settle`.
pub async fn probe_once(plan: &crate::Plan, board: &Mutex<Board>, settle: Duration) {
    let mut probers: Vec<Box<dyn Probe>> = plan
        .domains
        .iter()
        .map(|d| prober(d, &plan.settings))
        .collect();
    let limit = plan.settings.timeout * 3;
    let first = futures_util::future::join_all(
        probers
            .iter_mut()
            .zip(&plan.domains)
            .map(|(p, d)| tokio::time::timeout(limit, p.round(d))),
    )
    .await;
    for (i, r) in first.into_iter().enumerate() {
        if let Ok(r) = r {
            apply(board, i, r, Instant::now());
        }
    }
    tokio::time::sleep(settle).await;
    let second = futures_util::future::join_all(
        probers
            .iter_mut()
            .zip(&plan.domains)
            .map(|(p, d)| tokio::time::timeout(limit, p.round(d))),
    )
    .await;
    for (i, (r, dom)) in second.into_iter().zip(&plan.domains).enumerate() {
        let round = r.unwrap_or_else(|_| Round {
            results: Source::ALL
                .iter()
                .filter(|s| dom.wants(**s))
                .map(|s| SourceResult::failed(*s, format!("probe took over {limit:?}")))
                .collect(),
            ..Round::default()
        });
        apply(board, i, round, Instant::now());
    }
}

/// Label set of an extra gauge: the domain's and the store's, then `more`.
pub fn labels(dom: &WatchedDomain, more: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![
        ("domain".to_string(), dom.name.clone()),
        ("store".to_string(), dom.store_name.clone()),
    ];
    v.extend(more.iter().map(|(k, x)| (k.to_string(), x.to_string())));
    v
}
