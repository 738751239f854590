//! The factor table, measured: docs/what-moves-rpo-rto.json (written by
//! scripts/what-moves-rpo-rto.py from the example drills) says how far each
//! knob moved RPO or RTO on real labs. A domain's derivation cites the rows
//! of its own mechanisms, with the figures of the run history's newer runs
//! of the same drills when it has them, so the reader sees the measured
//! number beside the derived bound.

use crate::derive::{secs, DomainBound, Impact};
use crate::evidence::Evidence;
use crate::model::{Domain, Replication};
use serde::Deserialize;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../../../docs/what-moves-rpo-rto.json");

#[derive(Debug, Deserialize)]
struct File {
    factors: Vec<Factor>,
}

/// One knob and the drills that measured it.
#[derive(Debug, Clone, Deserialize)]
pub struct Factor {
    pub knob: String,
    /// `RPO` or `RTO`.
    pub moves: String,
    /// The failover mechanism it belongs to (`[domain.failover] kind`).
    #[serde(default)]
    pub mechanism: Option<String>,
    /// Or the store kind whose replication or backups it is.
    #[serde(default)]
    pub store: Option<String>,
    #[serde(default)]
    pub replication: bool,
    #[serde(default)]
    pub backups: bool,
    pub runs: Vec<FactorRun>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FactorRun {
    pub label: String,
    pub figures: Figures,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Figures {
    pub drill: String,
    pub rpo_p50_s: f64,
    pub rto_p50_s: Option<f64>,
    pub started_at: String,
}

/// The embedded table (empty if it does not parse: citations are an aid,
/// never a reason to fail).
pub fn table() -> &'static [Factor] {
    static T: OnceLock<Vec<Factor>> = OnceLock::new();
    T.get_or_init(|| {
        serde_json::from_str::<File>(TABLE)
            .map(|f| f.factors)
            .unwrap_or_default()
    })
}

/// Every drill the table names, for the binary to read from the history.
pub fn drill_names() -> Vec<String> {
    table()
        .iter()
        .flat_map(|f| f.runs.iter().map(|r| r.figures.drill.clone()))
        .collect()
}

/// The median of the latest recorded run of `drill`, if the history has
/// one newer than the table's.
fn from_history(ev: &Evidence, fig: &Figures, rto: bool) -> Option<(f64, String)> {
    let run = ev.drills.get(&fig.drill)?.last()?;
    if run.started_at.as_str() <= fig.started_at.as_str() {
        return None;
    }
    let mut v: Vec<f64> = run
        .trials
        .iter()
        .filter(|t| !t.inconclusive)
        .filter_map(|t| if rto { t.rto_s } else { Some(t.rpo_s) })
        .collect();
    v.sort_by(f64::total_cmp);
    let m = *v.get(v.len() / 2)?;
    Some((m, run.started_at.clone()))
}

/// `measured: Patroni ttl …: ttl 30 s … → RTO 29.8 s (patroni-defaults-kill); …`
fn cite(f: &Factor, ev: &Evidence) -> String {
    let rto = f.moves == "RTO";
    let parts: Vec<String> = f
        .runs
        .iter()
        .map(|r| {
            let (v, when) = match from_history(ev, &r.figures, rto) {
                Some((v, at)) => (Some(v), format!("history {at}")),
                None => (
                    if rto {
                        r.figures.rto_p50_s
                    } else {
                        Some(r.figures.rpo_p50_s)
                    },
                    "docs/what-moves-rpo-rto.md".to_string(),
                ),
            };
            format!(
                "{} → {} {} ({}, {when})",
                r.label,
                f.moves,
                v.map_or("never recovered".into(), secs),
                r.figures.drill
            )
        })
        .collect();
    format!("measured, {}: {}", f.knob, parts.join("; "))
}

/// Adds the measured rows that belong to `d`'s mechanisms to the traces:
/// failover and replication knobs to a failover's bounds, backup knobs to
/// a restore's.
pub fn annotate(d: &Domain, imp: &Impact, b: &mut DomainBound, ev: &Evidence) {
    let mechanism = d.failover.automatic().map(|(m, _)| m.name());
    let replicated = !matches!(d.replication, Replication::Undeclared | Replication::None);
    let restore = matches!(imp, Impact::Corruption | Impact::Total(_));
    if matches!(imp, Impact::Untouched(_) | Impact::Process) {
        return;
    }
    for f in table() {
        let ours = if restore {
            f.backups && f.store.as_deref() == Some(d.kind.as_str()) && d.backups.is_some()
        } else {
            (f.mechanism.is_some() && f.mechanism.as_deref() == mechanism)
                || (f.replication && replicated && f.store.as_deref() == Some(d.kind.as_str()))
        };
        if !ours {
            continue;
        }
        let line = cite(f, ev);
        if f.moves == "RTO" {
            b.rto.trace.push(line);
        } else {
            b.rpo.trace.push(line);
        }
    }
}
