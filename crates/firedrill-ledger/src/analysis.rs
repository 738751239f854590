//! The analysis proper: ledger + timeline + audit set → RPO/RTO figures,
//! following DESIGN.md's measurement semantics to the letter, because the
//! figures are what a drill's verdict rests on.
use crate::rpo::{self, rel};
use crate::rto;
use crate::*;

/// p50 / p95 / max across trials.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

/// Analyses one trial. Pure and single-threaded; linear in the ledger
/// (about three passes), so a 10M-op ledger takes well under a second.
pub fn analyze(ops: &[Op], timeline: &Timeline, audit: &AuditSet, slo: &Slo) -> Analysis {
    let mut a = analyze_store(ops, timeline, audit, slo);
    let to = a.t_fault_us.unwrap_or(timeline.workload_end);
    a.latency_before = WriteLatency::of(ops, timeline.measure_start, to);
    for (home, seqs) in &timeline.homes {
        let mine: std::collections::HashSet<u64> = seqs.iter().copied().collect();
        let own: Vec<Op> = ops
            .iter()
            .filter(|o| mine.contains(&o.seq))
            .cloned()
            .collect();
        let h = analyze_store(&own, timeline, audit, slo);
        a.by_home.push(HomeFigures {
            home: home.clone(),
            ok: h.ops.ok,
            lost: h.rpo.lost,
            rpo_s: h.rpo.achieved_s,
            rto_s: h.rto.achieved_s,
        });
    }
    if let Some(log) = &timeline.consumer {
        a.consumer = Some(crate::consumer_figures(
            ops,
            audit,
            log,
            a.t_fault_us,
            slo.stable_for_us,
        ));
    }
    a
}

/// The producer side: RPO, RTO and the buckets.
fn analyze_store(ops: &[Op], timeline: &Timeline, audit: &AuditSet, slo: &Slo) -> Analysis {
    let Some(disaster) = disaster_step(&timeline.faults) else {
        if let Some(m) = &timeline.restore {
            return restore_test(ops, timeline, audit, slo, m);
        }
        return analyze_without_fault(ops, timeline, audit, slo);
    };
    // A step can hit several nodes at once (a zone): the disaster began
    // when the first injection started and was in effect when the last was.
    let records = timeline.faults.iter().filter(|f| {
        std::ptr::eq(*f, disaster) || (disaster.disaster && f.disaster && f.step == disaster.step)
    });
    let t_fault = records
        .clone()
        .map(|f| f.t_start)
        .min()
        .unwrap_or(disaster.t_start);
    // A failed injection never took effect: its start is the best bound.
    let t_fault_done = records
        .map(|f| f.t_done.unwrap_or(f.t_start))
        .max()
        .unwrap_or(t_fault);
    let first_step = timeline
        .faults
        .iter()
        .map(|f| f.t_start)
        .min()
        .unwrap_or(t_fault);

    let (mut rpo, ops_counts) = rpo::achieved(ops, audit, t_fault, t_fault_done);
    rpo.predicted_s = rpo::predicted(timeline, t_fault);
    rpo.reported_s = rpo::reported(timeline, t_fault);
    if rpo.reported_s.is_some() {
        rpo.reported_by = timeline.reported_by.clone();
    }

    let scan = rto::scan(ops, slo, first_step, timeline.workload_end, t_fault);
    let (impact, first_write) = rto::impact_and_first_write(ops, first_step, t_fault_done);
    let mut phases = Phases {
        impact_s: impact.map(|t| rel(t, t_fault)),
        detected_s: timeline.detected.map(|t| rel(t, t_fault)),
        first_write_s: first_write.map(|t| rel(t, t_fault)),
        recovered_s: None,
    };
    let rto = match scan.first_unhealthy {
        None => RtoFigures {
            achieved_s: Some(0.0),
            incident_s: None,
            phases,
        },
        Some(bad) => {
            // Buckets are aligned to the drill clock, not to the faults: when
            // the first unhealthy bucket holds the start of a fault step, the
            // outage starts with that step, not at the bucket's edge (nothing
            // is caused before its fault).
            let width = slo.bucket_us.max(1);
            let step_in_bucket = timeline
                .faults
                .iter()
                .map(|f| f.t_start)
                .filter(|&t| t >= bad && t < bad + width)
                .min();
            let t_incident = t_fault.min(step_in_bucket.unwrap_or(bad).max(first_step));
            // Recovery after the timeout counts as never: the drill would
            // have been declared failed by then.
            let recovered = scan.recovered.filter(|&r| {
                i128::from(r) - i128::from(t_fault) <= i128::from(slo.recovery_timeout_us)
            });
            phases.recovered_s = recovered.map(|r| rel(r, t_fault));
            RtoFigures {
                achieved_s: recovered.map(|r| rel(r, t_incident)),
                incident_s: Some(rel(t_incident, t_fault)),
                phases,
            }
        }
    };
    let mut a = Analysis {
        t_fault_us: Some(t_fault),
        t_fault_done_us: Some(t_fault_done),
        rpo,
        rto,
        ops: ops_counts,
        buckets: scan.buckets,
        restore: None,
        verify_failed: crate::verify_failure(&timeline.commands),
        consumer: None,
        by_home: Vec::new(),
        latency_before: None,
        capability: None,
    };
    // A wipe that no restore followed is a failover: the store's own
    // replication may have kept everything.
    if let Some(damage) = timeline
        .damage
        .as_ref()
        .filter(|d| !(d.is_wipe() && timeline.restore.is_none()))
    {
        data_disaster(&mut a, ops, timeline, audit, damage, slo);
    } else if let Some(m) = &timeline.restore {
        // A lost node recovered by a restore (a cold standby): the usual
        // failover figures, and the restore's own beside them.
        let (f, _) = crate::restore::figures(
            ops,
            audit,
            &crate::Damage::default(),
            Some(m),
            None,
            t_fault,
        );
        a.restore = Some(f);
    }
    a
}

/// A data disaster's figures replace the failover ones: the RPO is the
/// window of `lost_before` (what came after the fault and was rolled back
/// is the restore's documented price, reported beside it; a wipe keeps
/// the failover's loss), and the RTO counts from t_fault, since the data
/// was wrong from then on; with no restore that reached its target, the
/// service never recovered.
fn data_disaster(
    a: &mut Analysis,
    ops: &[Op],
    timeline: &Timeline,
    audit: &AuditSet,
    damage: &crate::Damage,
    slo: &Slo,
) {
    let t_fault = a.t_fault_us.unwrap_or_default();
    let marks = timeline.restore.as_ref();
    let (mut f, lost) =
        crate::restore::figures(ops, audit, damage, marks, timeline.discovered, t_fault);
    predicted_restore_rpo(a, ops, timeline, damage, t_fault);
    restore_rto(a, ops, timeline, slo, &mut f);
    // A wipe's loss stays the failover's: every acknowledged write missing,
    // the window to when the wipe was in effect (nothing after it is a
    // trade the restore chose).
    if !damage.is_wipe() {
        a.rpo.lost = f.lost_before;
        a.rpo.zombie_lost = 0;
        a.rpo.achieved_s = lost.iter().min().map_or(0.0, |&t| rel(t_fault, t).max(0.0));
        a.rpo.loss_span_s = match (lost.iter().min(), lost.iter().max()) {
            (Some(x), Some(y)) => Some([rel(*x, t_fault), rel(*y, t_fault)]),
            _ => None,
        };
    }
    a.restore = Some(f);
}

/// What a restore can bring back at best, as the timeline knew it at the
/// fault: nothing past a flushed archive; else the archive's age, or the
/// age of the newest backup step (an etcd snapshot), capped at the run's
/// first acknowledged write.
fn predicted_restore_rpo(
    a: &mut Analysis,
    ops: &[Op],
    timeline: &Timeline,
    damage: &crate::Damage,
    t_fault: Micros,
) {
    // Without a flush the restore can bring back only what the archive
    // held at the fault; with one, nothing acknowledged is beyond it.
    // The window is the writes the archive lacks: those after its last
    // segment, or all of this run's if it had written none by then.
    let first_ok = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.t_done)
        .min();
    let backup_age = timeline
        .backups
        .iter()
        .filter(|b| b.t_start <= t_fault)
        .map(|b| rel(t_fault, b.t_start))
        .reduce(f64::min);
    a.rpo.predicted_s = match timeline.restore.as_ref() {
        Some(m) if m.flushed.is_some() => Some(0.0),
        _ => damage
            .archive_age_s
            .or(backup_age)
            .map(|age| match first_ok {
                Some(f) if f < t_fault => age.min(rel(t_fault, f)),
                _ => age,
            }),
    };
}

/// The RTO of a restore: from t_fault, and only once a restore reached its
/// target; the first write is the restored server's.
fn restore_rto(
    a: &mut Analysis,
    ops: &[Op],
    timeline: &Timeline,
    slo: &Slo,
    f: &mut crate::RestoreFigures,
) {
    let t_fault = a.t_fault_us.unwrap_or_default();
    // The first write that the restored server acknowledged: invoked after
    // the backup was fetched, when the old server was surely gone; into a
    // new node, after the clients were moved to it (the damaged primary
    // may have served them until that moment).
    if let Some(m) = timeline.restore.as_ref() {
        let down = match &m.node {
            Some(_) => m.moved.or(m.promoted).unwrap_or(m.start),
            None => m.fetched.unwrap_or(m.start),
        };
        a.rto.phases.first_write_s = ops
            .iter()
            .filter(|o| o.outcome == Outcome::Ok && o.t_invoke >= down)
            .map(|o| o.t_done)
            .min()
            .map(|t| rel(t, t_fault));
    }
    // The data was wrong from the fault until the restored server took
    // writes: never before its first write, even when the damaged primary
    // kept every bucket healthy (a restore into a new node). Counted from
    // that write, a recovery still needs stable_for of workload after it.
    // (A bucket's start may precede its first write by up to a bucket.)
    let end_s = rel(timeline.workload_end, t_fault);
    let stable_s = slo.stable_for_us as f64 / 1e6;
    let bucket_s = slo.bucket_us as f64 / 1e6;
    let recovered = match (
        f.reached,
        a.rto.phases.recovered_s,
        a.rto.phases.first_write_s,
    ) {
        (false, _, _) => None,
        (true, Some(r), Some(w)) if r + bucket_s >= w => Some(r),
        (true, _, Some(w)) => (w + stable_s <= end_s).then_some(w),
        // Nothing written to the restored server yet: whatever the buckets
        // say (the damaged primary may have served them), not recovered.
        (true, _, None) => None,
    };
    a.rto.achieved_s = recovered;
    a.rto.phases.recovered_s = recovered;
    a.rto.incident_s = Some(0.0);
    a.rto.phases.detected_s = f.discovered_s;
    f.rto_from_discovery_s = match (recovered, f.discovered_s) {
        (Some(r), Some(d)) => Some(r - d),
        _ => None,
    };
}

/// A restore test: no fault, the backups restored into a scratch node
/// beside the healthy primary. t_fault is the restore's start; `lost` (and
/// `lost_before`) are the writes acknowledged before it that the restored
/// node lacks, the RPO their window; the RTO is the restore's duration,
/// from its start until the restored server accepted writes. The clients
/// stay on the primary, so the buckets say nothing about it.
fn restore_test(
    ops: &[Op],
    timeline: &Timeline,
    audit: &AuditSet,
    slo: &Slo,
    m: &crate::RestoreMarks,
) -> Analysis {
    let mut a = analyze_without_fault(ops, timeline, audit, slo);
    let t0 = m.start;
    let (mut f, lost) =
        crate::restore::figures(ops, audit, &crate::Damage::default(), Some(m), None, t0);
    f.test = true;
    a.t_fault_us = Some(t0);
    a.t_fault_done_us = Some(t0);
    a.rpo.lost = f.lost_before;
    a.rpo.zombie_lost = 0;
    a.rpo.achieved_s = lost.iter().min().map_or(0.0, |&t| rel(t0, t).max(0.0));
    a.rpo.loss_span_s = match (lost.iter().min(), lost.iter().max()) {
        (Some(x), Some(y)) => Some([rel(*x, t0), rel(*y, t0)]),
        _ => None,
    };
    // Flushed first, every write acknowledged before the start is archived.
    a.rpo.predicted_s = m.flushed.map(|_| 0.0);
    let duration = f.duration_s.filter(|_| f.reached);
    a.rto = RtoFigures {
        achieved_s: duration,
        incident_s: Some(0.0),
        phases: Phases {
            recovered_s: duration,
            ..Phases::default()
        },
    };
    a.restore = Some(f);
    a
}

/// A trial whose schedule injected nothing (a baseline run): losses are
/// still counted, against the end of the workload, and there is no
/// outage to time.
fn analyze_without_fault(ops: &[Op], timeline: &Timeline, audit: &AuditSet, slo: &Slo) -> Analysis {
    let end = timeline.workload_end;
    let (mut rpo, ops_counts) = rpo::achieved(ops, audit, end, end);
    rpo.predicted_s = rpo::predicted(timeline, end);
    let scan = rto::scan(
        ops,
        slo,
        timeline.measure_start,
        end,
        timeline.measure_start,
    );
    Analysis {
        t_fault_us: None,
        t_fault_done_us: None,
        rpo,
        rto: RtoFigures {
            achieved_s: Some(0.0),
            incident_s: None,
            phases: Phases::default(),
        },
        ops: ops_counts,
        buckets: scan.buckets,
        restore: None,
        verify_failed: crate::verify_failure(&timeline.commands),
        consumer: None,
        by_home: Vec::new(),
        latency_before: None,
        capability: None,
    }
}

/// The step marked `disaster` (the first, if several are), else the last
/// step by start time that is not a heal (`resume`). A schedule of only
/// heals still has a last step, which is the best guess left.
fn disaster_step(faults: &[FaultRecord]) -> Option<&FaultRecord> {
    faults
        .iter()
        .find(|f| f.disaster)
        .or_else(|| {
            faults
                .iter()
                .filter(|f| f.action != "resume" && f.action != "backup")
                .max_by_key(|f| f.t_start)
        })
        .or_else(|| faults.iter().max_by_key(|f| f.t_start))
}

/// Checks one trial against the objectives: a trial passes when
/// achieved_rpo ≤ rpo, zombie_lost == 0, (rpo == 0 ⇒ lost == 0), and
/// achieved_rto ≤ rto (a service that never recovered fails any rto).
/// Phantoms mean the audit read something firedrill never wrote: the
/// measurement cannot be trusted, so the verdict is inconclusive.
pub fn check(a: &Analysis, o: &Objectives) -> (ObjectiveCheck, Verdict) {
    let mut c = ObjectiveCheck::default();
    if let Some(rpo) = o.rpo_us {
        let rpo_s = rpo as f64 / 1e6;
        let mut met = true;
        if a.rpo.achieved_s > rpo_s + 1e-9 {
            met = false;
            c.reasons.push(format!(
                "achieved RPO {:.3} s exceeds the objective {:.3} s",
                a.rpo.achieved_s, rpo_s
            ));
        }
        if a.rpo.zombie_lost > 0 {
            met = false;
            c.reasons.push(format!(
                "{} writes acknowledged after the fault were lost (zombie writes)",
                a.rpo.zombie_lost
            ));
        }
        if rpo == 0 && a.rpo.lost > 0 {
            met = false;
            c.reasons.push(format!(
                "RPO objective is 0 but {} acknowledged writes were lost",
                a.rpo.lost
            ));
        }
        c.rpo_met = Some(met);
    }
    if let Some(rto) = o.rto_us {
        let rto_s = rto as f64 / 1e6;
        let met = match a.rto.achieved_s {
            Some(v) if v <= rto_s + 1e-9 => true,
            Some(v) => {
                c.reasons.push(format!(
                    "achieved RTO {v:.3} s exceeds the objective {rto_s:.3} s"
                ));
                false
            }
            None => {
                c.reasons
                    .push("the service never met its SLO again within recovery_timeout".into());
                false
            }
        };
        c.rto_met = Some(met);
    }
    let restore_failed = a.restore.as_ref().is_some_and(|r| {
        if !r.reached {
            c.reasons.push(format!(
                "the restore did not reach its target: {}",
                r.detail
            ));
        }
        if r.damaged_left > 0 {
            c.reasons.push(format!(
                "{} of the {} rows the fault destroyed are still missing after the restore",
                r.damaged_left, r.damaged
            ));
        }
        let off_point = r.point.is_some_and(|p| {
            if p.kept_past > 0 {
                c.reasons.push(format!(
                    "{} acknowledged writes the store placed after the restore point ({}) are present: the restore is not the point it reports",
                    p.kept_past, p.index
                ));
            }
            if p.lost_at_or_before > 0 {
                c.reasons.push(format!(
                    "{} acknowledged writes at or before the restore point ({}) are missing: the restore did not bring back what its backup held",
                    p.lost_at_or_before, p.index
                ));
            }
            p.kept_past > 0 || p.lost_at_or_before > 0
        });
        !r.reached || r.damaged_left > 0 || off_point
    });
    let verdict = if a.rpo.phantoms > 0 {
        c.reasons.push(format!(
            "{} ids in the store were never written by this trial: the audit is not trustworthy",
            a.rpo.phantoms
        ));
        Verdict::Inconclusive
    } else if let Some(why) = &a.verify_failed {
        c.reasons.push(why.clone());
        Verdict::Fail
    } else if c.rpo_met == Some(false) || c.rto_met == Some(false) || restore_failed {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    (c, verdict)
}

/// Nearest-rank percentiles; None for no values.
pub fn aggregate(values: &[f64]) -> Option<Percentiles> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| {
        let r = (p * v.len() as f64).ceil() as usize;
        v[r.clamp(1, v.len()) - 1]
    };
    Some(Percentiles {
        p50: rank(0.50),
        p95: rank(0.95),
        max: v[v.len() - 1],
    })
}
