//! What the declared mechanisms allow: for a domain and a disruption, the
//! bounds on RPO and RTO, each with the readable steps that led to it.

use crate::model::*;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// A bound on one figure, in seconds. `lower` is the best the mechanisms
/// can do (`strict`: strictly more than `lower`, as async replication's
/// RPO is more than 0); `upper` is the worst they allow, when the
/// declaration caps it (`None`: only a measurement can tell).
/// `lower = +inf`: the figure cannot be met at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bound {
    pub lower: f64,
    pub strict: bool,
    pub upper: Option<f64>,
    pub trace: Vec<String>,
}

impl Bound {
    pub fn exact(v: f64, why: impl Into<String>) -> Bound {
        Bound {
            lower: v,
            strict: false,
            upper: Some(v),
            trace: vec![why.into()],
        }
    }
    pub fn range(lower: f64, upper: Option<f64>, why: impl Into<String>) -> Bound {
        Bound {
            lower,
            strict: false,
            upper,
            trace: vec![why.into()],
        }
    }
    pub fn above(lower: f64, upper: Option<f64>, why: impl Into<String>) -> Bound {
        Bound {
            lower,
            strict: true,
            upper,
            trace: vec![why.into()],
        }
    }
    pub fn never(why: impl Into<String>) -> Bound {
        Bound {
            lower: f64::INFINITY,
            strict: false,
            upper: None,
            trace: vec![why.into()],
        }
    }
    pub fn unknown(why: impl Into<String>) -> Bound {
        Bound::range(0.0, None, why)
    }
    /// Adds a step to the trace.
    pub fn note(mut self, line: impl Into<String>) -> Bound {
        self.trace.push(line.into());
        self
    }
    /// No mechanism can reach `objective`.
    pub fn cannot(&self, objective: f64) -> bool {
        self.lower > objective || (self.strict && self.lower >= objective)
    }
    /// The declared worst case exceeds `objective`.
    pub fn worst_exceeds(&self, objective: f64) -> bool {
        self.upper.is_some_and(|u| u > objective)
    }
    /// `≥ 20 s, ≤ 40 s`, `> 0 s`, `= 0 s`, `unreachable`.
    pub fn describe(&self) -> String {
        if self.lower.is_infinite() {
            return "unreachable".into();
        }
        let lo = format!(
            "{} {}",
            if self.strict { ">" } else { "≥" },
            secs(self.lower)
        );
        match self.upper {
            Some(u) if u == self.lower && !self.strict => format!("= {}", secs(u)),
            Some(u) => format!("{lo}, ≤ {}", secs(u)),
            None => lo,
        }
    }
}

/// `30 s`, `1.5 s`, `15 min`.
pub fn secs(v: f64) -> String {
    if v.is_infinite() {
        return "∞".into();
    }
    if v >= 3600.0 && v % 3600.0 == 0.0 {
        return format!("{} h", v / 3600.0);
    }
    if v >= 60.0 && v % 60.0 == 0.0 {
        return format!("{} min", v / 60.0);
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} s")
}

fn s(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// What a disruption does to one domain's nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Impact {
    Untouched(String),
    Process,
    /// Nodes lost (the primary among them, the worst case), nodes left.
    Partial {
        lost: Vec<String>,
        why: String,
    },
    Total(String),
    Corruption,
}

pub fn impact(a: &Architecture, d: &Domain, dis: &Disruption) -> Impact {
    let zone_of = |n: &str| d.zones.get(n).cloned();
    let lose = |lost: BTreeSet<String>, what: &str, all: &str| -> Impact {
        let lost: Vec<String> = d
            .nodes
            .iter()
            .filter(|n| lost.contains(*n))
            .cloned()
            .collect();
        if lost.is_empty() {
            Impact::Untouched(format!("{what} takes out none of {}'s nodes", d.name))
        } else if lost.len() == d.nodes.len() {
            Impact::Total(all.to_string())
        } else {
            Impact::Partial {
                why: format!(
                    "{what} takes out {} of {} nodes ({})",
                    lost.len(),
                    d.nodes.len(),
                    lost.join(", ")
                ),
                lost,
            }
        }
    };
    // The failure domain holding the most nodes, with the primary (the
    // first node) counted in it: the worst one to lose.
    let worst = |key: &dyn Fn(&str) -> Option<String>, unit: &str| -> Impact {
        if d.zones.is_empty() {
            return Impact::Total(format!(
                "placement not declared → assumed all replicas in one {unit}: {unit} loss = total loss"
            ));
        }
        let keys: BTreeSet<String> = d.nodes.iter().filter_map(|n| key(n)).collect();
        if keys.len() <= 1 {
            return Impact::Total(format!("replicas in one {unit} → {unit} loss = total loss"));
        }
        let primary = d.nodes.first().and_then(|n| key(n));
        let lost: BTreeSet<String> = d
            .nodes
            .iter()
            .filter(|n| key(n) == primary)
            .cloned()
            .collect();
        lose(
            lost,
            &format!(
                "replicas in {} {unit}s; losing the primary's ({})",
                keys.len(),
                primary.unwrap_or_default()
            ),
            "",
        )
    };
    match dis {
        Disruption::Standard(Standard::Process) => Impact::Process,
        Disruption::Standard(Standard::Corruption) => Impact::Corruption,
        Disruption::Standard(Standard::Node) => {
            if d.nodes.len() <= 1 {
                Impact::Total("one node → node loss = total loss".into())
            } else {
                Impact::Partial {
                    lost: d.nodes.iter().take(1).cloned().collect(),
                    why: format!("node loss takes the primary ({})", d.nodes[0]),
                }
            }
        }
        Disruption::Standard(Standard::Zone) => worst(&zone_of, "zone"),
        Disruption::Standard(Standard::Region) => {
            if a.regions.is_empty() && !d.zones.is_empty() {
                return Impact::Total(
                    "no [topology]: every zone counted in one region → region loss = total loss"
                        .into(),
                );
            }
            worst(
                &|n: &str| zone_of(n).and_then(|z| a.region_of(&z).map(str::to_string)),
                "region",
            )
        }
        Disruption::Custom { name, zones } => {
            if d.zones.is_empty() {
                return Impact::Total(format!(
                    "placement not declared → assumed {name} takes every replica"
                ));
            }
            let lost = d
                .nodes
                .iter()
                .filter(|n| zone_of(n).is_some_and(|z| zones.contains(&z)))
                .cloned()
                .collect();
            lose(
                lost,
                name,
                &format!("{name} takes out every replica → total loss"),
            )
        }
    }
}

/// Both bounds of one (domain, disruption).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainBound {
    pub rpo: Bound,
    pub rto: Bound,
}

pub fn domain_bound(a: &Architecture, d: &Domain, dis: &Disruption) -> DomainBound {
    match impact(a, d, dis) {
        Impact::Untouched(why) => DomainBound {
            rpo: Bound::exact(0.0, why.clone()),
            rto: Bound::exact(0.0, why),
        },
        Impact::Process => DomainBound {
            rpo: Bound::exact(
                0.0,
                "process crash → committed writes are on disk; the node restarts with them",
            ),
            rto: Bound::unknown(
                "process crash → RTO = restart (or failover) time, measured by a drill",
            ),
        },
        Impact::Partial { lost, why } => partial(d, &lost, &why),
        Impact::Total(why) => restore(d, &why),
        Impact::Corruption => restore(
            d,
            "corruption → replication copies it to every replica; failover cannot help",
        ),
    }
}

/// Only a restore from backups brings the data back.
fn restore(d: &Domain, why: &str) -> DomainBound {
    let Some(b) = &d.backups else {
        let no = format!("{why}; no backups declared → nothing to restore from");
        return DomainBound {
            rpo: Bound::never(no.clone()),
            rto: Bound::never(no),
        };
    };
    let rpo = match b.archive_timeout {
        Some(t) => Bound::above(
            0.0,
            Some(s(t)),
            format!(
                "{why}; PITR ({}) with archive_timeout {} → RPO ≤ {} + archive lag",
                b.tool,
                secs(s(t)),
                secs(s(t))
            ),
        ),
        None => Bound::above(
            0.0,
            Some(s(b.interval)),
            format!(
                "{why}; base backups only ({}, every {}) → RPO ≤ {}",
                b.tool,
                secs(s(b.interval)),
                secs(s(b.interval))
            ),
        ),
    };
    let rto = match b.restore {
        Some(r) => Bound::range(
            s(r),
            None,
            format!("restore declared at {} → RTO ≥ {}", secs(s(r)), secs(s(r))),
        ),
        None => Bound::unknown("restore time not declared → only a restore drill can tell"),
    };
    DomainBound { rpo, rto }
}

fn partial(d: &Domain, lost: &[String], why: &str) -> DomainBound {
    let survivors = d.nodes.len() - lost.len();
    let mut rpo = match &d.replication {
        Replication::Undeclared => Bound::unknown(format!("{why}; replication not declared → no RPO bound")),
        Replication::None => return restore(d, &format!("{why}; no replication → the primary's loss = total loss")),
        Replication::Async => Bound::above(
            0.0,
            None,
            format!("{why}; async replication → RPO ≥ replication lag > 0 (acknowledged writes not yet on a standby are lost)"),
        ),
        Replication::Sync { quorum, standbys } => {
            let lost_s = standbys.iter().filter(|n| lost.contains(n)).count();
            if lost_s < *quorum as usize {
                Bound::exact(
                    0.0,
                    format!(
                        "{why}; sync ANY {quorum} ({}) → every acknowledged write is on {quorum} standby(s), {lost_s} of them lost → RPO = 0 if a synchronous standby is promoted",
                        standbys.join(", ")
                    ),
                )
            } else {
                Bound::above(
                    0.0,
                    None,
                    format!(
                        "{why}; sync ANY {quorum} ({}) but {lost_s} of those standbys are lost with the primary → the surviving ones may lag: RPO > 0",
                        standbys.join(", ")
                    ),
                )
            }
        }
        Replication::Quorum => {
            let majority = d.nodes.len() / 2 + 1;
            if survivors >= majority {
                Bound::exact(0.0, format!("{why}; Raft: commits are on a majority ({majority} of {}), {survivors} survive → RPO = 0", d.nodes.len()))
            } else {
                Bound::above(0.0, None, format!("{why}; Raft: only {survivors} of {} survive, below the majority of {majority} → the survivors may lack commits", d.nodes.len()))
            }
        }
    };
    if let Some(why) = d
        .failover
        .automatic()
        .and_then(|(k, p)| k.loses_acknowledged(p))
    {
        rpo = Bound::above(0.0, None, rpo.trace.join("; ")).note(why);
    }
    let quorum_lost = d.replication == Replication::Quorum && survivors < d.nodes.len() / 2 + 1;
    let rto = if quorum_lost {
        Bound::never(format!(
            "{why}; Raft quorum lost → no leader until members return"
        ))
    } else {
        failover_rto(&d.failover)
    };
    DomainBound { rpo, rto }
}

fn failover_rto(f: &Failover) -> Bound {
    match f {
        Failover::Undeclared => Bound::unknown("failover not declared → no RTO bound"),
        Failover::Manual { response: Some(r) } => Bound::range(
            s(*r),
            None,
            format!(
                "manual failover, response {} → RTO ≥ {}",
                secs(s(*r)),
                secs(s(*r))
            ),
        ),
        Failover::Manual { response: None } => Bound::range(
            300.0,
            None,
            "manual failover, response not declared → assumed ≥ 5 min to page a human and promote",
        ),
        Failover::Automatic { kind, params } => kind.rto(params),
    }
}
