//! Advice for a row that does not meet its objective: the smallest change
//! of mechanism or posture that could fit, and the drill that would prove
//! it, written as a spec `firedrill drill --lab FILE` runs (a lab built
//! like the proposed architecture, so the mechanism is proven before the
//! production change).

use crate::assess::{Measure, Row, Subject, Verdict};
use crate::derive::{impact, secs, Impact};
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
                drill: drill_spec(&proposed, o, &name),
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
                Some(d) => drill_spec(d, o, &name),
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

/// `10s`, `1500ms`.
fn spec_dur(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
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
        let fix = match &d.replication {
            Replication::Sync { quorum, standbys } if d.kind == "postgres" => format!(
                "on the primary: ALTER SYSTEM SET synchronous_standby_names = 'ANY {quorum} ({})'; SELECT pg_reload_conf(); (or correct [domain.replication])",
                standbys.join(", ")
            ),
            _ => "make the server match [domain.replication], or correct the declaration".into(),
        };
        return (format!("declaration and server disagree: {fix}"), p);
    }
    let imp = impact(a, d, &o.disruption);
    let change = match (row.measure, &imp) {
        (_, Impact::Corruption | Impact::Total(_)) if d.backups.is_none() => {
            let at = dur(t.clamp(10.0, 60.0));
            p.backups = Some(Backups {
                tool: "pgbackrest".into(),
                interval: Duration::from_secs(86400),
                archive_timeout: Some(at),
                retention: Some(Duration::from_secs(14 * 86400)),
                restore: None,
            });
            let why = if matches!(imp, Impact::Corruption) {
                "replicas copy a bad write"
            } else {
                "no replica survives"
            };
            format!(
                "add PITR (cold posture): [domain.backups] tool = \"pgbackrest\", interval = \"24h\", archive_timeout = \"{}\" — {why}, only a restore brings the data back",
                spec_dur(at)
            )
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
        (Measure::Rpo, Impact::Partial { lost, .. }) => rpo_change(d, lost, &mut p),
        (Measure::Rto, Impact::Partial { .. }) => rto_change(d, t, &mut p),
        _ => "no mechanism change fits: revisit the objective".into(),
    };
    (change, p)
}

fn rpo_change(d: &Domain, lost: &[String], p: &mut Domain) -> String {
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
            format!(
                "sync ANY 1 across zones (hot standby): synchronous_standby_names = 'ANY 1 ({})', synchronous_commit = on, and promote only a synchronous standby",
                others.join(", ")
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

fn rto_change(d: &Domain, t: f64, p: &mut Domain) -> String {
    match &d.failover {
        Failover::Patroni { api, ttl: cur, .. } if t > 0.0 => {
            let lw = (t / 5.0).floor().clamp(1.0, 10.0);
            let ttl = (t - lw).max(lw + 2.0).floor().min(cur.as_secs_f64());
            let rt = ((ttl - lw) / 2.0).floor().max(1.0);
            p.failover = Failover::Patroni {
                ttl: dur(ttl),
                loop_wait: dur(lw),
                retry_timeout: dur(rt),
                api: api.clone(),
            };
            format!(
                "lower ttl to {}, loop_wait to {}, retry_timeout to {} (Patroni: ttl ≥ loop_wait + 2 × retry_timeout; RTO then ≤ ttl + loop_wait = {})",
                secs(ttl), secs(lw), secs(rt), secs(ttl + lw)
            )
        }
        Failover::Sentinel {
            failover_timeout, ..
        } => {
            let da = (t / 2.0).max(1.0);
            p.failover = Failover::Sentinel {
                down_after: dur(da),
                failover_timeout: *failover_timeout,
            };
            format!(
                "lower down_after to {} (Sentinel declares the master down after it)",
                secs(da)
            )
        }
        Failover::Raft { .. } => {
            let e = (t / 2.0).max(0.1);
            p.failover = Failover::Raft {
                election_timeout: dur(e),
            };
            format!(
                "lower election_timeout to {} (heartbeat ≈ election / 10)",
                secs(e)
            )
        }
        Failover::Kafka {
            unclean_leader_election,
            ..
        } => {
            let s = (t / 2.0).max(1.0);
            p.failover = Failover::Kafka {
                session_timeout: dur(s),
                unclean_leader_election: *unclean_leader_election,
            };
            format!("lower broker.session.timeout.ms to {}", secs(s))
        }
        Failover::Patroni { .. } => "no failover takes 0 s: revisit the objective".into(),
        Failover::Manual { .. } | Failover::Undeclared => {
            let auto = match d.kind.as_str() {
                "redis" => "Redis Sentinel",
                "etcd" => "Raft (built in)",
                "kafka" => "the KRaft controller",
                _ => "Patroni",
            };
            format!("automate failover with {auto} (hot posture): a human cannot page, decide and promote within {}", secs(t))
        }
    }
}

/// A drill spec for `d` under `o`'s disruption, with a lab like `d`.
pub fn drill_spec(d: &Domain, o: &Objective, name: &str) -> String {
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
    let standbys = d.nodes.len().saturating_sub(1).max(1);
    let _ = writeln!(s, "\n[lab]\nname = \"{name}\"");
    let automatic = lab_table(&mut s, d, standbys);
    let _ = writeln!(s, "\n[drill]\nname = \"{name}\"");
    let _ = writeln!(
        s,
        "\n[drill.workload]\nmode = \"closed\"\nclients = 4\nop_timeout = \"1s\"\nwarmup = \"2s\"\nduration = \"10s\""
    );
    match o.disruption {
        Disruption::Standard(Standard::Corruption) => {
            let _ = writeln!(
                s,
                "\n# Corruption: a destructive transaction, then a restore to before it.\n# Needs the data-disaster fault kinds; until then, drill the restore by hand.\n[[drill.faults]]\nat = \"3s\"\naction = \"kill\"\nnode = \"primary\""
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
    if automatic {
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

/// The `[lab]` keys of `d`'s kind; true when the store fails over itself.
fn lab_table(s: &mut String, d: &Domain, standbys: usize) -> bool {
    let sync = match &d.replication {
        Replication::Sync { quorum, .. } => Some(*quorum),
        _ => None,
    };
    match (d.kind.as_str(), &d.failover) {
        (
            "postgres",
            Failover::Patroni {
                ttl,
                loop_wait,
                retry_timeout,
                ..
            },
        ) => {
            let _ = writeln!(
                s,
                "kind = \"patroni\"\nstandbys = {standbys}\n\n[lab.patroni]\nttl = \"{}\"\nloop_wait = \"{}\"\nretry_timeout = \"{}\"\nsynchronous_mode = {}",
                spec_dur(*ttl), spec_dur(*loop_wait), spec_dur(*retry_timeout), sync.is_some()
            );
            true
        }
        ("postgres", _) => {
            let _ = writeln!(s, "kind = \"postgres\"\nstandbys = {standbys}");
            match sync {
                Some(k) => {
                    let _ = writeln!(
                        s,
                        "replication = \"sync\"\nsync_quorum = {k}\nsynchronous_commit = \"on\""
                    );
                }
                None => {
                    let _ = writeln!(s, "replication = \"async\"");
                }
            }
            false
        }
        ("redis", f) => {
            let (da, ft) = match f {
                Failover::Sentinel {
                    down_after,
                    failover_timeout,
                } => (*down_after, *failover_timeout),
                _ => (Duration::from_secs(30), Duration::from_secs(180)),
            };
            let _ = writeln!(
                s,
                "kind = \"redis-sentinel\"\nstandbys = {standbys}\n\n[lab.redis]\ndown_after = \"{}\"\nfailover_timeout = \"{}\"",
                spec_dur(da), spec_dur(ft)
            );
            true
        }
        ("etcd", f) => {
            let e = match f {
                Failover::Raft { election_timeout } => *election_timeout,
                _ => Duration::from_secs(1),
            };
            let _ = writeln!(
                s,
                "kind = \"etcd\"\n\n[lab.etcd]\nmembers = {}\nelection = \"{}\"",
                d.nodes.len().max(3),
                spec_dur(e)
            );
            true
        }
        ("kafka", f) => {
            let (st, unclean) = match f {
                Failover::Kafka {
                    session_timeout,
                    unclean_leader_election,
                } => (*session_timeout, *unclean_leader_election),
                _ => (Duration::from_secs(9), false),
            };
            let n = d.nodes.len().max(3);
            let _ = writeln!(
                s,
                "kind = \"kafka\"\nnodes = {n}\n\n[lab.kafka]\nreplication_factor = {}\nmin_insync_replicas = {}\nunclean_leader_election = {unclean}\nsession_timeout = \"{}\"",
                n.min(3), sync.map_or(1, |k| k + 1), spec_dur(st)
            );
            true
        }
        (k, _) => {
            let _ = writeln!(s, "kind = \"{k}\"\nstandbys = {standbys}");
            true
        }
    }
}
