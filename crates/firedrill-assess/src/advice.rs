//! Advice for a row that does not meet its objective: the smallest change
//! of mechanism or posture that could fit, and the drill that would prove
//! it, written as a spec `firedrill drill --lab FILE` runs (a lab built
//! like the proposed architecture, so the mechanism is proven before the
//! production change).

use crate::assess::{Measure, Row, Subject, Verdict};
use crate::derive::{impact, secs, Impact};
use crate::kind::{spec_dur, LabSketch};
use crate::model::*;
use serde::Serialize;
use std::fmt::Write;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Advice {
    pub change: String,
    /// The drill's name: the objective's default evidence link, so the
    /// recorded run counts for this row without editing the file.
    pub drill_name: String,
    pub drill: String,
}

pub fn advise(a: &Architecture, subject: &Subject<'_>, o: &Objective, row: &Row) -> Advice {
    match subject {
        Subject::Domain(d) => {
            let (change, proposed) = domain_change(a, d, o, row);
            let name = o
                .drills
                .first()
                .cloned()
                .unwrap_or_else(|| format!("{}-{}", d.name, o.key));
            Advice {
                change,
                drill: drill_spec(a, &proposed, o, &name),
                drill_name: name,
            }
        }
        Subject::Capability(c) => {
            let dom = row.dominant.first().cloned().unwrap_or_default();
            let change = match a.domains.iter().find(|d| d.name == dom) {
                _ if row.measure == Measure::Rto && row.dominant.len() > 1 && row.verdict != Verdict::Unproven => format!(
                    "shorten the critical path {}: recover those dependencies in parallel (no `after`), cut the rebuilds, or speed up the slowest step",
                    row.dominant.join(" → ")
                ),
                Some(d) if row.verdict != Verdict::Unproven => {
                    let (c, _) = domain_change(a, d, o, row);
                    format!("{dom} dominates the capability's {}: {c}", row.measure.as_str())
                }
                _ if row.verdict == Verdict::Unproven => format!(
                    "prove it: drill the domains it depends on under {} and record the runs as {:?}",
                    o.disruption.name(),
                    o.drills.first().cloned().unwrap_or_default()
                ),
                _ => format!("{dom} dominates the capability's {}: improve it first", row.measure.as_str()),
            };
            let name = o
                .drills
                .first()
                .cloned()
                .unwrap_or_else(|| format!("{}-{}", c.name, o.key));
            let drill = match a.domains.iter().find(|d| d.name == dom) {
                Some(d) => drill_spec(a, d, o, &name),
                None => format!("# no domain dominates {}: drill its dependencies\n", c.name),
            };
            Advice {
                change,
                drill_name: name,
                drill,
            }
        }
    }
}

fn dur(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0))
}

fn domain_change(a: &Architecture, d: &Domain, o: &Objective, row: &Row) -> (String, Domain) {
    let mut p = d.clone();
    let t = row.target_s;
    if row.verdict == Verdict::Unproven {
        return (
            format!(
                "nothing to change: run the drill below and record it (firedrill drill --lab FILE records it in the history as {:?})",
                o.drills.first().cloned().unwrap_or_default()
            ),
            p,
        );
    }
    if row.verdict == Verdict::AtRisk && !row.live.mismatches.is_empty() {
        let fix = if row.live.fixes.is_empty() {
            "make the server match the declaration, or correct the declaration".to_string()
        } else {
            row.live.fixes.join("; ")
        };
        return (format!("declaration and server disagree: {fix}"), p);
    }
    let imp = impact(a, d, &o.disruption);
    let change = match (row.measure, &imp) {
        (_, Impact::Corruption | Impact::Total(_)) if d.backups.is_none() => {
            let at = dur(t.clamp(10.0, 60.0));
            let why = if matches!(imp, Impact::Corruption) {
                "replicas copy a bad write"
            } else {
                "no replica survives"
            };
            match a.knowledge.kind(&d.kind).and_then(|k| k.pitr_tool()) {
                Some(tool) => {
                    p.backups = Some(Backups {
                        tool: tool.into(),
                        interval: Duration::from_secs(86400),
                        archive_timeout: Some(at),
                        retention: Some(Duration::from_secs(14 * 86400)),
                        restore: None,
                    });
                    format!(
                        "add PITR (cold posture): [domain.backups] tool = \"{tool}\", interval = \"24h\", archive_timeout = \"{}\" — {why}, only a restore brings the data back",
                        spec_dur(at)
                    )
                }
                None => format!(
                    "add backups with continuous archiving (cold posture), archived at least every {} — {why}, only a restore (or a delayed copy) brings the data back",
                    spec_dur(at)
                ),
            }
        }
        (Measure::Rpo, Impact::Corruption | Impact::Total(_)) => match &d.backups {
            Some(b) if b.archive_timeout.is_none_or(|x| x.as_secs_f64() > t) && t > 0.0 => {
                let at = dur(t.max(1.0));
                if let Some(pb) = p.backups.as_mut() {
                    pb.archive_timeout = Some(at);
                }
                format!("lower archive_timeout to {} (continuous archiving bounds the loss)", spec_dur(at))
            }
            _ => "a restore always loses the unarchived tail: keep a delayed replica, or accept an RPO above 0 for this disruption".into(),
        },
        (Measure::Rto, Impact::Corruption | Impact::Total(_)) => {
            "a restore is too slow: keep a warm standby outside the failure domain (or a delayed replica for corruption)".into()
        }
        (Measure::Rpo, Impact::Partial { lost, .. }) => rpo_change(a, d, lost, &mut p),
        (Measure::Rto, Impact::Partial { .. }) => rto_change(a, d, t, &mut p),
        _ => "no mechanism change fits: revisit the objective".into(),
    };
    (change, p)
}

fn rpo_change(a: &Architecture, d: &Domain, lost: &[String], p: &mut Domain) -> String {
    if let Some((m, params)) = d.failover.automatic() {
        if m.loses_acknowledged(params).is_some() {
            if let Some((safe, say)) = m.lossless(params) {
                p.failover = Failover::Automatic {
                    kind: m,
                    params: safe,
                };
                return say;
            }
        }
    }
    let others: Vec<String> = d
        .nodes
        .iter()
        .filter(|n| !lost.contains(n))
        .cloned()
        .collect();
    match &d.replication {
        Replication::Async | Replication::Undeclared => {
            p.replication = Replication::Sync {
                quorum: 1,
                standbys: others.clone(),
            };
            let how = a
                .knowledge
                .kind(&d.kind)
                .and_then(|k| k.sync_setting(1, &others))
                .unwrap_or_else(|| format!("every commit waits for 1 of {}", others.join(", ")));
            format!(
                "sync ANY 1 across zones (hot standby): {how}, and promote only a synchronous standby"
            )
        }
        Replication::Sync { quorum, .. } => {
            p.replication = Replication::Sync {
                quorum: *quorum,
                standbys: others.clone(),
            };
            format!(
                "place the synchronous standbys outside the lost failure domain: ANY {quorum} ({})",
                others.join(", ")
            )
        }
        Replication::Quorum => {
            "spread the members over 3 failure domains, a minority in each".into()
        }
        Replication::None => "add a streaming standby in another zone (warm posture)".into(),
    }
}

fn rto_change(a: &Architecture, d: &Domain, t: f64, p: &mut Domain) -> String {
    match &d.failover {
        Failover::Automatic { kind, params } => match kind.tune(params, t) {
            Some((tuned, say)) => {
                p.failover = Failover::Automatic {
                    kind: *kind,
                    params: tuned,
                };
                say
            }
            None => "no failover takes 0 s: revisit the objective".into(),
        },
        Failover::Manual { .. } | Failover::Undeclared => {
            // The store's first mechanism (the registry lists its own first).
            let auto = a.knowledge.failovers_of(&d.kind).into_iter().next();
            match auto {
                Some(m) => {
                    let params = crate::kind::defaults(m);
                    p.failover = Failover::Automatic { kind: m, params };
                    format!("automate failover with {} (hot posture): a human cannot page, decide and promote within {}", m.title(), secs(t))
                }
                None => format!(
                    "automate failover (hot posture): a human cannot page, decide and promote within {}",
                    secs(t)
                ),
            }
        }
    }
}

/// A drill spec for `d` under `o`'s disruption, with a lab like `d`.
pub fn drill_spec(a: &Architecture, d: &Domain, o: &Objective, name: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {name}: {} of {} ({}), proving {}.\n# Run: firedrill drill --lab {name}.toml (the lab is started, drilled, removed; the run is recorded).",
        o.disruption.name(),
        d.name,
        d.kind,
        [o.rpo.map(|r| format!("RPO ≤ {}", spec_dur(r))), o.rto.map(|r| format!("RTO ≤ {}", spec_dur(r)))]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
    );
    let corruption = matches!(o.disruption, Disruption::Standard(Standard::Corruption));
    // A mechanism that is its own lab (Patroni) for failovers; the store's
    // own lab when it can drill the corruption.
    let own = a.knowledge.kind(&d.kind).map(|k| k.lab(d));
    let mechanism = d.failover.automatic().and_then(|(m, p)| m.lab(d, p));
    let lab = match (own, mechanism) {
        (Some(l), _) if corruption && l.corruption.is_some() => l,
        (_, Some(m)) => m,
        (Some(l), None) => l,
        (None, None) => LabSketch {
            table: format!("kind = \"{}\"", d.kind),
            automatic: true,
            corruption: None,
        },
    };
    let _ = writeln!(s, "\n[lab]\nname = \"{name}\"\n{}", lab.table.trim_end());
    let _ = writeln!(s, "\n[drill]\nname = \"{name}\"");
    let _ = writeln!(
        s,
        "\n[drill.workload]\nmode = \"closed\"\nclients = 4\nop_timeout = \"1s\"\nwarmup = \"2s\"\nduration = \"10s\""
    );
    match (&lab.corruption, corruption) {
        (Some(steps), true) => {
            let _ = writeln!(s, "\n{}", steps.trim_end());
        }
        (None, true) => {
            let _ = writeln!(
                s,
                "\n# Corruption: {} has no data-disaster faults in firedrill yet; drill the restore by hand.\n[[drill.faults]]\nat = \"3s\"\naction = \"kill\"\nnode = \"primary\"",
                d.kind
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "\n[[drill.faults]]\nat = \"3s\"\naction = \"kill\"\nnode = \"primary\"{}",
                match o.disruption {
                    Disruption::Standard(Standard::Node | Standard::Process) => "",
                    _ => "\n# zone / region loss: on a lab with zones, hit the primary's: zone = \"...\"",
                }
            );
        }
    }
    if corruption && lab.corruption.is_some() {
        // The steps carry their own recovery.
    } else if lab.automatic {
        let _ = writeln!(s, "\n[drill.recovery]\nautomatic = true");
    } else {
        let to = d.nodes.get(1).cloned().unwrap_or_else(|| "n2".into());
        let _ = writeln!(s, "\n[drill.recovery]\npromote = \"{to}\"");
    }
    let timeout = o
        .rto
        .map_or(30.0, |r| (r.as_secs_f64() * 3.0).clamp(30.0, 600.0));
    let _ = writeln!(
        s,
        "\n[drill.slo]\nstable_for = \"3s\"\nrecovery_timeout = \"{}\"",
        spec_dur(dur(timeout.round()))
    );
    let _ = writeln!(s, "\n[drill.objectives]");
    if let Some(r) = o.rpo {
        let _ = writeln!(s, "rpo = \"{}\"", spec_dur(r));
    }
    if let Some(r) = o.rto {
        let _ = writeln!(s, "rto = \"{}\"", spec_dur(r));
    }
    s
}
