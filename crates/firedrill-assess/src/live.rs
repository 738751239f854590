//! The live side: one probe round of every domain, as `firedrill status`
//! does, and the settings in force the probes read, compared with what the
//! file declares.

use crate::kind::Mismatch;
use crate::model::{Architecture, Domain};
use firedrill_watch::board::Board;
use firedrill_watch::board::Extras;
use firedrill_watch::plan::WatchedDomain;
use firedrill_watch::Plan;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Live {
    pub domains: BTreeMap<String, DomainLive>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DomainLive {
    /// Some node answered.
    pub reached: bool,
    /// Objective key → (worst-source exposure s, every source up).
    pub exposure: BTreeMap<String, (f64, bool)>,
    /// Settings in force as read (name → value).
    pub settings: BTreeMap<String, String>,
    /// Where the declaration and the server disagree.
    pub mismatches: Vec<Mismatch>,
}

/// Probes every domain once and reads what the probes found, then the
/// settings in force of every domain (its store's and its failover
/// mechanism's), and where they disagree with the declaration.
pub async fn probe(plan: &Plan, arch: &Architecture, settle: Duration) -> Live {
    let board = Mutex::new(Board::new(plan));
    firedrill_watch::probe::probe_once(plan, &board, settle).await;
    let (mut live, extras) = {
        let b = board.lock().unwrap_or_else(|p| p.into_inner());
        let extras: Vec<_> = b.domains.iter().map(|d| d.extras.clone()).collect();
        (from_board(plan, &b, Instant::now()), extras)
    };
    let timeout = plan.settings.timeout;
    let empty = Extras::new();
    let reads = plan.domains.iter().enumerate().filter_map(|(i, wd)| {
        let d = arch.domains.iter().find(|d| d.name == wd.name)?;
        let x = extras.get(i).unwrap_or(&empty);
        Some(read_settings(arch, d, wd, x, timeout))
    });
    for (name, settings, mismatches) in futures_util::future::join_all(reads).await {
        let dl = live.domains.entry(name).or_default();
        dl.reached |= settings.keys().any(|k| !k.ends_with("error"));
        dl.settings = settings;
        dl.mismatches = mismatches;
    }
    live
}

/// One domain's settings in force and its mismatches. A read that fails
/// is kept as `error` (a mechanism's as `<name>.error`).
async fn read_settings(
    arch: &Architecture,
    d: &Domain,
    wd: &WatchedDomain,
    extras: &Extras,
    timeout: Duration,
) -> (String, BTreeMap<String, String>, Vec<Mismatch>) {
    let mut settings = BTreeMap::new();
    let mut mismatches = Vec::new();
    let kind = arch.knowledge.kind(&d.kind);
    if let Some(k) = kind {
        match k.read_settings(d, wd, extras, timeout).await {
            Ok(s) => settings.extend(s),
            Err(e) => {
                settings.insert("error".to_string(), e);
            }
        }
    }
    let mechanism = d.failover.automatic();
    if let Some((m, p)) = mechanism {
        match m.read_settings(p, timeout).await {
            Ok(s) => settings.extend(s),
            Err(e) => {
                settings.insert(format!("{}.error", m.name()), e);
            }
        }
    }
    if let Some(k) = kind {
        mismatches.extend(k.mismatches(d, &settings));
    }
    if let Some((m, p)) = mechanism {
        mismatches.extend(m.mismatches(p, &settings));
    }
    (d.name.clone(), settings, mismatches)
}

/// The exposure of every objective as one probe round found it.
pub fn from_board(plan: &Plan, board: &Board, now: Instant) -> Live {
    let mut live = Live::default();
    for (i, wd) in plan.domains.iter().enumerate() {
        let mut dl = DomainLive::default();
        if let Some(st) = board.domains.get(i) {
            dl.reached = !st.extras.is_empty() || st.sources.values().any(|s| !s.nodes.is_empty());
        }
        for o in &wd.objectives {
            let e = board.objective_exposure(i, o, now);
            let up = o.sources.iter().all(|s| board.up(i, *s, now));
            dl.exposure.insert(o.disruption.0.clone(), (e, up));
        }
        live.domains.insert(wd.name.clone(), dl);
    }
    live
}
