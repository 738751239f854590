//! A capability trial (DESIGN.md, "Capabilities"): several domains, each
//! with its own target, schedule, recovery and audit exactly as if it were
//! drilled alone, on one observer clock, under one workload whose
//! operation writes one entry per domain in the declared order.
//!
//! Each domain runs on a [`Shared`] of its own, so every fault, heal,
//! watchdog TTL and audit path is the single-store one. What is new here
//! is the operation that spans them, the end of the trial (every domain
//! recovered), and the capability's figures from the domains' ledgers.

use crate::heal::heal_all;
use crate::plan::{NodeSpec, Plan, WorkloadPlan};
use crate::trial::{lock, Shared};
use crate::{audit, schedule, trial, workload, EngineError, Environment, Mode};
use firedrill_ledger::capability::{capability_analysis, DomainLedger};
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{check, Micros, Objectives, Op, Slo, Timeline, Verdict};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One domain of a capability drill: its own plan (steps, recovery,
/// objectives, run directory) and environment.
pub struct Domain {
    pub name: String,
    pub plan: Plan,
    pub env: Box<dyn Environment>,
    /// The domain has objectives of its own: its verdict counts.
    pub judged: bool,
    /// The operation writes it (an outbox's log and projection are
    /// written by Debezium and the consumer instead).
    pub written: bool,
}

/// What the capability adds to its domains' plans.
#[derive(Debug, Clone)]
pub struct CapabilityPlan {
    pub drill: String,
    pub capability: String,
    /// Human description of the targets.
    pub target: String,
    pub workload: WorkloadPlan,
    pub slo: Slo,
    /// The capability's objectives.
    pub objectives: Objectives,
    pub trials: u32,
    pub run_dir: PathBuf,
    /// The outbox variant's pipeline.
    pub outbox: Option<crate::OutboxPlan>,
}

/// A domain's event, as the capability's stream carries it: its nodes
/// named `domain/node`, its messages and recovery prefixed with the
/// domain, its trial end as `DomainFinished`. The trial's own progress
/// and phases are the capability's, so the domain's are dropped.
pub(crate) fn in_domain(d: &str, judged: bool, ev: DrillEvent) -> Option<DrillEvent> {
    let node = |n: String| {
        if n.is_empty() {
            n
        } else {
            format!("{d}/{n}")
        }
    };
    Some(match ev {
        DrillEvent::TrialStarted { .. }
        | DrillEvent::Phase { .. }
        | DrillEvent::Progress { .. }
        | DrillEvent::DrillStarted { .. }
        | DrillEvent::DrillFinished { .. }
        | DrillEvent::DomainFinished { .. } => return None,
        DrillEvent::FaultInjected {
            trial,
            step,
            action,
            node: n,
            t_start,
            t_done,
            error,
            detail,
        } => DrillEvent::FaultInjected {
            trial,
            step,
            action,
            node: node(n),
            t_start,
            t_done,
            error,
            detail,
        },
        DrillEvent::FaultHealed {
            trial,
            step,
            action,
            node: n,
            t_start,
            t_done,
            error,
        } => DrillEvent::FaultHealed {
            trial,
            step,
            action,
            node: node(n),
            t_start,
            t_done,
            error,
        },
        DrillEvent::Recovery {
            trial,
            action,
            node: n,
            t_start,
            t_done,
            error,
        } => DrillEvent::Recovery {
            trial,
            action: format!("{d}: {action}"),
            node: n.map(node),
            t_start,
            t_done,
            error,
        },
        DrillEvent::Detected { trial, t_us, how } => DrillEvent::Detected {
            trial,
            t_us,
            how: format!("{d}: {how}"),
        },
        DrillEvent::LagSample {
            trial,
            t_us,
            node: n,
            lag_us,
        } => DrillEvent::LagSample {
            trial,
            t_us,
            node: node(n),
            lag_us,
        },
        DrillEvent::Audit {
            trial,
            node: n,
            rows,
        } => DrillEvent::Audit {
            trial,
            node: node(n),
            rows,
        },
        DrillEvent::Warning { trial, message } => DrillEvent::Warning {
            trial,
            message: format!("{d}: {message}"),
        },
        DrillEvent::Command { trial, run } => DrillEvent::Command { trial, run },
        DrillEvent::TrialFinished {
            trial,
            analysis,
            check,
            verdict,
        } => DrillEvent::DomainFinished {
            trial,
            domain: d.to_string(),
            analysis,
            check,
            verdict,
            judged,
        },
    })
}

/// Runs every trial of a capability drill; returns the overall verdict.
pub async fn run_capability(
    cap: &CapabilityPlan,
    domains: &mut [Domain],
    tx: UnboundedSender<DrillEvent>,
) -> Result<Verdict, EngineError> {
    crate::drill_started(&tx, &cap.drill, cap.trials, &cap.target);
    let interrupted = Arc::new(AtomicBool::new(false));
    let listener = tokio::spawn(crate::listen_for_interrupts(interrupted.clone()));
    let mut verdicts = Vec::new();
    let mut res = Ok(());
    for t in 1..=cap.trials {
        if interrupted.load(Ordering::SeqCst) {
            res = Err(EngineError::Aborted("interrupted".into()));
            break;
        }
        let mut nodes = Vec::new();
        for d in domains.iter_mut() {
            let mut logs = Vec::new();
            let n = d.env.prepare(t, &mut |m| logs.push(m));
            for m in logs {
                let _ = tx.send(DrillEvent::Warning {
                    trial: Some(t),
                    message: format!("{}: {m}", d.name),
                });
            }
            if let Some(o) = d.env.opener() {
                d.plan.store = o;
            }
            match n {
                Ok(n) => nodes.push(n),
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        if res.is_err() {
            break;
        }
        match run_guarded(cap, domains, t, nodes, tx.clone()).await {
            Ok(v) => verdicts.push(v),
            Err(e) => {
                res = Err(e);
                break;
            }
        }
    }
    listener.abort();
    res?;
    let verdict = crate::worst(&verdicts);
    let _ = tx.send(DrillEvent::DrillFinished { verdict });
    Ok(verdict)
}

/// One capability trial with every exit path covered, as a single store's
/// (`trial::run_guarded`): whatever ends it, every domain's faults heal.
async fn run_guarded(
    cap: &CapabilityPlan,
    domains: &[Domain],
    trial_no: u32,
    nodes: Vec<Vec<NodeSpec>>,
    tx: UnboundedSender<DrillEvent>,
) -> Result<Verdict, EngineError> {
    let t0 = Instant::now();
    let mut shs = Vec::new();
    for (d, n) in domains.iter().zip(nodes) {
        let sh = trial::open_trial(
            &d.plan,
            trial_no,
            n,
            tx.clone(),
            t0,
            Some((d.name.clone(), d.judged)),
        )?;
        crate::journal::spawn_flusher(&sh);
        shs.push(sh);
    }
    let _ = tx.send(DrillEvent::TrialStarted { trial: trial_no });
    let plans: Vec<(String, Plan, bool)> = domains
        .iter()
        .map(|d| (d.name.clone(), d.plan.clone(), d.judged))
        .collect();
    let limit = plans
        .iter()
        .map(|(_, p, _)| p.max_trial_time())
        .max()
        .unwrap_or_default()
        + cap.workload.op_timeout * plans.len() as u32
        + Duration::from_secs(60);
    let written: Vec<bool> = domains.iter().map(|d| d.written).collect();
    let task = tokio::spawn(run_trial(
        cap.clone(),
        plans.clone(),
        written,
        shs.clone(),
        tx,
    ));
    let result = trial::until_done(task, limit).await;
    for sh in &shs {
        sh.stop.store(true, Ordering::SeqCst);
        sh.sampling.store(false, Ordering::SeqCst);
    }
    if result.is_err() {
        futures_util::future::join_all(shs.iter().map(|sh| heal_all(sh))).await;
    }
    for ((_, plan, _), sh) in plans.iter().zip(&shs) {
        crate::restore::discard_scratch(plan, sh).await;
        sh.abort_tasks();
        crate::journal::flush(sh).await;
    }
    result
}

/// The trial: every domain's preflight and samplers, the capability's
/// clients, every domain's schedule, the wait for every domain to
/// recover, the heals, every domain's audit, then the capability's figures.
async fn run_trial(
    cap: CapabilityPlan,
    plans: Vec<(String, Plan, bool)>,
    written: Vec<bool>,
    shs: Vec<Arc<Shared>>,
    tx: UnboundedSender<DrillEvent>,
) -> Result<Verdict, EngineError> {
    let trial_no = shs[0].trial;
    let phase = |p: &str| {
        // Each domain's journal marks carry the phase: a dead run's
        // report says how far the capability got.
        for sh in &shs {
            *lock(&sh.phase_now) = p.to_string();
        }
        let _ = tx.send(DrillEvent::Phase {
            trial: trial_no,
            t_us: shs[0].now(),
            phase: p.into(),
        });
    };
    let mut primaries = Vec::new();
    let mut aux = Vec::new();
    for sh in &shs {
        let (primary, standbys) = trial::preflight(sh).await?;
        if let Some(fw) = sh.target.failover_watch().await {
            aux.push(workload::spawn_failover_watch(sh, fw));
        }
        crate::consumer::start(sh)?;
        aux.extend(trial::start_samplers(sh, &primary, &standbys)?);
        primaries.push(primary);
    }
    if let Some(o) = &cap.outbox {
        o.pipeline
            .start(shs[o.source].target.run_id())
            .await
            .map_err(|e| EngineError::Preflight(format!("outbox consumer: {e}")))?;
    }
    phase("warmup");
    // The operation writes the written domains, in order.
    let (wshs, wprim): (Vec<Arc<Shared>>, Vec<String>) = shs
        .iter()
        .zip(&primaries)
        .zip(&written)
        .filter(|(_, w)| **w)
        .map(|((sh, p), _)| (sh.clone(), p.clone()))
        .unzip();
    let workers = spawn_clients(&cap.workload, &wshs, &wprim)?;
    aux.push(spawn_progress(&wshs, tx.clone()));
    let last = wshs
        .last()
        .ok_or_else(|| EngineError::Internal("no domain".into()))?;
    let first_ack = trial::wait_first_ack(last, plans[0].1.first_ack_timeout()).await?;
    let warmup_end = first_ack + cap.workload.warmup;
    tokio::time::sleep_until(warmup_end).await;
    for sh in &shs {
        lock(&sh.timeline).measure_start = (warmup_end - sh.t0).as_micros() as Micros;
    }
    phase("steady");
    let mut scheds = Vec::new();
    for ((_, plan, _), sh) in plans.iter().zip(&shs) {
        let (p, s) = (plan.clone(), sh.clone());
        scheds.push(Some(sh.spawn(async move {
            schedule::run_schedule(&p, &s, warmup_end).await
        })));
    }
    let recoveries = wait_for_end(&cap, &plans, &written, &shs, warmup_end, scheds).await?;
    phase("audit");
    let workload_end = shs[0].now();
    for sh in &shs {
        sh.stop.store(true, Ordering::SeqCst);
        sh.sampling.store(false, Ordering::SeqCst);
    }
    for h in workers {
        let _ = h.await;
    }
    for h in aux {
        h.abort();
    }
    for (r, sh) in recoveries.into_iter().zip(&shs) {
        if let Some(r) = r.filter(|r| !r.is_finished()) {
            sh.warn(
                "the recovery action was still running at the end of the trial; it was abandoned"
                    .into(),
            );
            r.abort();
        }
    }
    futures_util::future::join_all(shs.iter().map(|sh| heal_all(sh))).await;
    let mut audited = Vec::new();
    for ((_, plan, _), sh) in plans.iter().zip(&shs) {
        audited.push(audit::audit(plan, sh, workload_end).await?);
    }
    let outbox = match &cap.outbox {
        Some(o) => crate::outbox::audit(o, &audited[o.source], &shs[o.source], workload_end).await,
        None => None,
    };
    let verdict = judge(&cap, &plans, &written, &audited, outbox, trial_no, &tx);
    phase("done");
    Ok(verdict)
}

/// The capability's figures from the domains' audits, its check against
/// the capability's objectives, and the trial's verdict: the capability's,
/// and every judged domain's.
fn judge(
    cap: &CapabilityPlan,
    plans: &[(String, Plan, bool)],
    written: &[bool],
    audited: &[audit::Audited],
    outbox: Option<firedrill_ledger::outbox::OutboxFigures>,
    trial_no: u32,
    tx: &UnboundedSender<DrillEvent>,
) -> Verdict {
    let tl = merged_timeline(plans, audited);
    let ledgers: Vec<DomainLedger<'_>> = plans
        .iter()
        .zip(audited)
        .zip(written)
        .filter(|(_, w)| **w)
        .map(|(d, _)| d)
        .map(|((name, _, _), a)| DomainLedger {
            name,
            ops: &a.ops,
            audit: &a.audit,
        })
        .collect();
    let (mut analysis, _, e2e, whole) = capability_analysis(&ledgers, &tl, &cap.slo);
    // The capability's predicted RPO is its worst domain's: each domain
    // predicts its own loss from its own replication lag.
    analysis.rpo.predicted_s = audited
        .iter()
        .filter_map(|a| a.predicted_s)
        .reduce(f64::max);
    if let (Some(c), Some(o), Some(p)) = (analysis.capability.as_mut(), &outbox, &cap.outbox) {
        c.orphans
            .extend(o.orphans(&plans[p.source].0, &plans[p.log].0, &plans[p.projection].0));
        c.outbox = Some(o.clone());
    }
    let (mut chk, mut verdict) = check(&analysis, &cap.objectives);
    match &outbox {
        Some(o) if !o.reasons().is_empty() => {
            chk.reasons.extend(o.reasons());
            verdict = crate::worst(&[verdict, Verdict::Fail]);
        }
        None if cap.outbox.is_some() => {
            chk.reasons
                .push("outbox: the log and the projection could not be audited".into());
            verdict = crate::worst(&[verdict, Verdict::Inconclusive]);
        }
        _ => {}
    }
    for ((name, _, judged), a) in plans.iter().zip(audited) {
        if *judged && a.verdict != Verdict::Pass {
            chk.reasons.push(
                format!(
                    "domain {name} did not meet its own objectives ({:?})",
                    a.verdict
                )
                .to_lowercase(),
            );
            verdict = crate::worst(&[verdict, a.verdict]);
        }
    }
    if let Err(e) = audit::TrialFiles::save(&cap.run_dir, trial_no, &e2e, &whole, &tl) {
        let _ = tx.send(DrillEvent::Warning {
            trial: Some(trial_no),
            message: format!("could not save the capability's ledger: {e}"),
        });
    }
    let _ = tx.send(DrillEvent::TrialFinished {
        trial: trial_no,
        analysis: Box::new(analysis),
        check: chk,
        verdict,
    });
    verdict
}

/// The capability's timeline: every domain's fault steps (nodes named
/// `domain/node`), the earliest detection and recovery start, the latest
/// recovery end. Lag is per domain, so the capability predicts none.
fn merged_timeline(plans: &[(String, Plan, bool)], audited: &[audit::Audited]) -> Timeline {
    let mut tl = Timeline::default();
    if let Some(a) = audited.first() {
        tl.measure_start = a.timeline.measure_start;
        tl.workload_end = a.timeline.workload_end;
    }
    let min = |a: Option<Micros>, b: Option<Micros>| match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    for ((name, _, _), a) in plans.iter().zip(audited) {
        for f in &a.timeline.faults {
            let mut f = f.clone();
            f.node = format!("{name}/{}", f.node);
            tl.faults.push(f);
        }
        tl.nodes
            .extend(a.timeline.nodes.iter().map(|n| format!("{name}/{n}")));
        tl.detected = min(tl.detected, a.timeline.detected);
        tl.recovery_start = min(tl.recovery_start, a.timeline.recovery_start);
        tl.recovery_done = tl.recovery_done.max(a.timeline.recovery_done);
        tl.commands.extend(a.timeline.commands.iter().cloned());
    }
    tl.faults.sort_by_key(|f| f.t_start);
    tl
}

/// A domain's schedule task: it returns the recovery task it started.
type Schedule = JoinHandle<Result<Option<JoinHandle<()>>, EngineError>>;

/// Waits until the workload's duration has passed, every schedule is done,
/// and every domain the disaster hit has met the SLO again for stable_for
/// (or passed its recovery timeout). Returns each domain's recovery task.
async fn wait_for_end(
    cap: &CapabilityPlan,
    plans: &[(String, Plan, bool)],
    written: &[bool],
    shs: &[Arc<Shared>],
    warmup_end: Instant,
    mut scheds: Vec<Option<Schedule>>,
) -> Result<Vec<Option<JoinHandle<()>>>, EngineError> {
    let mut recoveries: Vec<Option<JoinHandle<()>>> = shs.iter().map(|_| None).collect();
    let min_end = warmup_end + cap.workload.duration;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        for (i, s) in scheds.iter_mut().enumerate() {
            if s.as_ref().is_some_and(|h| h.is_finished()) {
                let Some(h) = s.take() else { continue };
                match h.await {
                    Ok(Ok(rec)) => recoveries[i] = rec,
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(EngineError::Internal(format!("schedule task: {e}"))),
                }
            }
        }
        if Instant::now() < min_end || scheds.iter().any(Option::is_some) {
            continue;
        }
        let done = plans
            .iter()
            .zip(shs)
            .zip(written)
            .all(|(((_, plan, _), sh), w)| {
                let tl = lock(&sh.timeline).clone();
                let Some(t_fault) = trial::disaster(&tl).map(|r| r.t_start) else {
                    return true; // not hit
                };
                // A domain the operation does not write has no buckets of its
                // own: it is back when its recovery is done.
                if !*w {
                    return plan.recovery == crate::plan::RecoveryPlan::None
                        || tl.recovery_done.is_some()
                        || sh.now() >= t_fault + plan.slo.recovery_timeout_us;
                }
                let now = sh.now();
                let hard_end = t_fault
                    + plan.slo.recovery_timeout_us
                    + plan.slo.stable_for_us
                    + cap.workload.op_timeout.as_micros() as Micros * plans.len() as Micros;
                now >= hard_end || trial::recovered(plan, sh, tl, now)
            });
        if done {
            return Ok(recoveries);
        }
    }
}

/// The capability's clients (closed loop): each operation takes the next
/// seq and writes it to every domain in order, each write recorded in its
/// domain's ledger; a write that is not acknowledged ends the operation
/// (the later domains are never written), as a checkout would stop.
fn spawn_clients(
    w: &WorkloadPlan,
    shs: &[Arc<Shared>],
    primaries: &[String],
) -> Result<Vec<JoinHandle<()>>, EngineError> {
    let Mode::Closed { clients } = w.mode else {
        return Err(EngineError::Internal(
            "a capability workload is closed-loop".into(),
        ));
    };
    let seq = Arc::new(AtomicU64::new(1));
    let mut workers = Vec::new();
    for i in 0..clients {
        let mut cs = Vec::new();
        for (sh, p) in shs.iter().zip(primaries) {
            let c = sh
                .target
                .client(p, i as u64 + 1, w.payload_bytes, w.op_timeout)
                .map_err(|e| EngineError::Preflight(e.to_string()))?;
            cs.push((sh.clone(), c));
        }
        let (seq, op_timeout) = (seq.clone(), w.op_timeout);
        let stop = shs[0].clone();
        workers.push(shs[0].spawn(async move {
            while !stop.stop.load(Ordering::Relaxed) {
                let s = seq.fetch_add(1, Ordering::Relaxed);
                for (sh, c) in cs.iter_mut() {
                    c.ready().await;
                    let t_invoke = sh.now();
                    let outcome = c.write(s, Instant::now() + op_timeout).await;
                    let op = Op {
                        seq: s,
                        t_invoke,
                        t_done: sh.now(),
                        outcome,
                    };
                    let ok = outcome == firedrill_ledger::Outcome::Ok;
                    sh.record_from(op, c.acked_position(), c.home().as_ref());
                    if !ok {
                        break;
                    }
                }
            }
        }));
    }
    Ok(workers)
}

/// About every second: operations acknowledged end to end (the last
/// domain's acknowledgements) and every domain's failures.
fn spawn_progress(shs: &[Arc<Shared>], tx: UnboundedSender<DrillEvent>) -> JoinHandle<()> {
    let shs: Vec<Arc<Shared>> = shs.to_vec();
    let first = shs[0].clone();
    first.spawn(async move {
        let mut last = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(end) = shs.last() else { return };
            let ok = end.ok.load(Ordering::Relaxed);
            let sum = |f: fn(&Shared) -> &AtomicU64| {
                shs.iter()
                    .map(|s| f(s).load(Ordering::Relaxed))
                    .sum::<u64>()
            };
            let _ = tx.send(DrillEvent::Progress {
                trial: end.trial,
                t_us: end.now(),
                ops_per_s: (ok - last) as f64,
                ok,
                fail: sum(|s| &s.fail),
                unknown: sum(|s| &s.unknown),
            });
            last = ok;
        }
    })
}
