//! The live side: one probe round of every domain, as `firedrill status`
//! does, and the settings in force the probes read, compared with what the
//! file declares.

use crate::model::{Architecture, Failover, Replication};
use firedrill_watch::board::Board;
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
    pub mismatches: Vec<String>,
}

/// Probes every domain once and reads what the probes found.
pub async fn probe(plan: &Plan, arch: &Architecture, settle: Duration) -> Live {
    let board = Mutex::new(Board::new(plan));
    firedrill_watch::probe::probe_once(plan, &board, settle).await;
    let b = board.lock().unwrap_or_else(|p| p.into_inner());
    from_board(plan, &b, arch, Instant::now())
}

/// The settings in force a probe exported, per store kind: PostgreSQL's
/// `synchronous_standby_names` on the primary.
fn settings(extras: &firedrill_watch::board::Extras) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    for ((metric, labels), v) in extras {
        let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, x)| x.clone());
        match metric.as_str() {
            "firedrill_pg_synchronous_standby_names" => {
                if let Some(x) = label("value") {
                    s.insert("synchronous_standby_names".into(), x);
                }
            }
            "firedrill_pg_primary" => {
                if let Some(x) = label("node") {
                    s.insert("primary".into(), x);
                }
            }
            "firedrill_kafka_under_min_isr_partitions" => {
                s.insert("under_min_isr_partitions".into(), format!("{v}"));
            }
            _ => {}
        }
    }
    s
}

pub fn from_board(plan: &Plan, board: &Board, arch: &Architecture, now: Instant) -> Live {
    let mut live = Live::default();
    for (i, wd) in plan.domains.iter().enumerate() {
        let mut dl = DomainLive::default();
        if let Some(st) = board.domains.get(i) {
            dl.settings = settings(&st.extras);
            dl.reached = !st.extras.is_empty() || st.sources.values().any(|s| !s.nodes.is_empty());
        }
        for o in &wd.objectives {
            let e = board.objective_exposure(i, o, now);
            let up = o.sources.iter().all(|s| board.up(i, *s, now));
            dl.exposure.insert(o.disruption.0.clone(), (e, up));
        }
        if let Some(d) = arch.domains.iter().find(|d| d.name == wd.name) {
            dl.mismatches = mismatches(&d.replication, &d.failover, &d.kind, &dl.settings);
        }
        live.domains.insert(wd.name.clone(), dl);
    }
    live
}

/// `ANY 2 (a, b)`, `FIRST 1 (a)`, `2 (a, b)`, `a, b`, `*`: how many
/// standbys each commit waits for (0: asynchronous).
pub fn sync_count(ssn: &str) -> u32 {
    let t = ssn.trim();
    if t.is_empty() {
        return 0;
    }
    let upper = t.to_ascii_uppercase();
    let rest = upper
        .strip_prefix("ANY ")
        .or_else(|| upper.strip_prefix("FIRST "))
        .unwrap_or(&upper)
        .trim();
    match rest.split_once('(') {
        Some((n, _)) => n.trim().parse().unwrap_or(1),
        // A plain list: the first one is synchronous (FIRST 1).
        None => 1,
    }
}

/// Declaration against reality, for the settings this build reads.
pub fn mismatches(
    rep: &Replication,
    _failover: &Failover,
    kind: &str,
    settings: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    if kind != "postgres" {
        return out;
    }
    let Some(ssn) = settings.get("synchronous_standby_names") else {
        return out;
    };
    let n = sync_count(ssn);
    match rep {
        Replication::Sync { quorum, .. } if n == 0 => out.push(format!(
            "declared sync ANY {quorum}, but synchronous_standby_names is '' on the primary: replication is asynchronous"
        )),
        Replication::Sync { quorum, .. } if n < *quorum => out.push(format!(
            "declared sync ANY {quorum}, but the primary waits for {n} standby(s) (synchronous_standby_names = '{ssn}')"
        )),
        Replication::Async if n > 0 => out.push(format!(
            "declared async, but synchronous_standby_names = '{ssn}': commits wait for standbys (writes stall when they are gone)"
        )),
        _ => {}
    }
    out
}
