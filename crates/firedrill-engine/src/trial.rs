//! One trial: workload, schedule, recovery, audit, analysis.

use crate::plan::{Mode, NodeLink, NodeRef, NodeSpec, Plan, ProcSource, RecoveryPlan, StepPlan};
use crate::EngineError;
use firedrill_faults::{apply_process_fault, HealAction, HealEntry, HealJournal, ProcessAction};
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{
    analyze, check, AuditSet, FaultRecord, LagSample, Micros, Op, Outcome, Timeline, Verdict,
};
use firedrill_proc::ProcHandle;
use firedrill_spec::{FaultAction, LinkScope, NodeRole};
use firedrill_targets::{LiveRole, Target, TargetNode};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const ROLE_TIMEOUT: Duration = Duration::from_millis(1000);
const HEARTBEAT_EVERY: Duration = Duration::from_millis(50);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A heal that is owed.
struct Owed {
    id: String,
    /// Index into the timeline's fault records.
    record: usize,
    action: HealAction,
}

struct Shared {
    t0: Instant,
    trial: u32,
    tx: UnboundedSender<DrillEvent>,
    target: Box<dyn Target>,
    /// Opens the store again for a heal (the same opener the trial used).
    opener: Arc<dyn firedrill_targets::TargetOpener>,
    nodes: Vec<NodeSpec>,
    /// From the environment or a file; heals that reconnect need it.
    password: Option<String>,
    ledger: Mutex<Vec<Op>>,
    ok: AtomicU64,
    fail: AtomicU64,
    unknown: AtomicU64,
    next_seq: AtomicU64,
    stop: AtomicBool,
    /// Lag sampling runs until the disaster starts.
    sampling: AtomicBool,
    timeline: Mutex<Timeline>,
    owed: Mutex<Vec<Owed>>,
    journal: HealJournal,
    /// (heartbeat value, observer time its update was acknowledged).
    heartbeats: Mutex<Vec<(i64, Micros)>>,
    watchdog_ttl: Duration,
    /// Every task the trial spawned, so none outlives it on any exit path.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Ledger length when the first fault step started: every op invoked
    /// after it sits at or past this index, so the online recovery check
    /// reads only the tail instead of copying the whole ledger.
    fault_index: std::sync::atomic::AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop heals from running.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn spawn<F>(&self, f: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let h = tokio::spawn(f);
        lock(&self.tasks).push(h.abort_handle());
        h
    }
    fn abort_tasks(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
    fn now(&self) -> Micros {
        self.t0.elapsed().as_micros() as Micros
    }
    fn emit(&self, ev: DrillEvent) {
        let _ = self.tx.send(ev);
    }
    fn phase(&self, p: &str) {
        self.emit(DrillEvent::Phase {
            trial: self.trial,
            t_us: self.now(),
            phase: p.into(),
        });
    }
    fn warn(&self, m: String) {
        self.emit(DrillEvent::Warning {
            trial: Some(self.trial),
            message: m,
        });
    }
    fn record(&self, op: Op) {
        match op.outcome {
            Outcome::Ok => &self.ok,
            Outcome::Fail => &self.fail,
            Outcome::Unknown => &self.unknown,
        }
        .fetch_add(1, Ordering::Relaxed);
        lock(&self.ledger).push(op);
    }
}

/// Files a trial leaves in the run directory, so `firedrill report` can
/// re-analyse without the store.
pub struct TrialFiles;

impl TrialFiles {
    pub fn dir(run_dir: &Path, trial: u32) -> PathBuf {
        run_dir.join(format!("trial-{trial}"))
    }

    fn save(
        run_dir: &Path,
        trial: u32,
        ops: &[Op],
        audit: &AuditSet,
        tl: &Timeline,
    ) -> std::io::Result<()> {
        let d = Self::dir(run_dir, trial);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("ledger.bin"), firedrill_ledger::codec::encode(ops))?;
        std::fs::write(
            d.join("audit.bin"),
            firedrill_ledger::codec::encode_ids(audit.ids()),
        )?;
        let tl = serde_json::to_vec_pretty(tl).map_err(std::io::Error::other)?;
        std::fs::write(d.join("timeline.json"), tl)
    }
}

/// Runs one trial with every exit path covered: the trial runs in its own
/// task, and whatever ends it (its own error, a panic, Ctrl-C, SIGTERM, the
/// safety timeout), the faults it left are healed before this returns.
pub async fn run_guarded(
    plan: &Plan,
    trial: u32,
    nodes: Vec<NodeSpec>,
    tx: UnboundedSender<DrillEvent>,
) -> Result<Verdict, EngineError> {
    let run_id = format!(
        "{}-{}-t{trial}",
        plan.drill,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let target_nodes: Vec<TargetNode> = nodes
        .iter()
        .map(|n| TargetNode {
            name: n.name.clone(),
            control: n.conninfo.clone(),
            client: n
                .client_conninfo
                .clone()
                .unwrap_or_else(|| n.conninfo.clone()),
        })
        .collect();
    let target = plan
        .store
        .open(&target_nodes, plan.password.as_deref(), &run_id)
        .map_err(|e| EngineError::Preflight(e.to_string()))?;
    let journal = HealJournal::open(&plan.run_dir.join("heal"))
        .map_err(|e| EngineError::Preflight(e.to_string()))?;
    let sh = Arc::new(Shared {
        t0: Instant::now(),
        trial,
        tx,
        target,
        opener: plan.store.clone(),
        nodes,
        password: plan.password.clone(),
        ledger: Mutex::new(Vec::with_capacity(1 << 16)),
        ok: AtomicU64::new(0),
        fail: AtomicU64::new(0),
        unknown: AtomicU64::new(0),
        next_seq: AtomicU64::new(1),
        stop: AtomicBool::new(false),
        sampling: AtomicBool::new(true),
        timeline: Mutex::new(Timeline::default()),
        owed: Mutex::new(Vec::new()),
        journal,
        heartbeats: Mutex::new(Vec::new()),
        watchdog_ttl: plan.max_trial_time() + Duration::from_secs(60),
        tasks: Mutex::new(Vec::new()),
        fault_index: std::sync::atomic::AtomicUsize::new(usize::MAX),
    });
    sh.emit(DrillEvent::TrialStarted { trial });

    let mut task = tokio::spawn(run_trial(plan.clone(), sh.clone()));
    let limit = plan.max_trial_time() + Duration::from_secs(60);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    let result = tokio::select! {
        r = &mut task => match r {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(EngineError::Internal(format!("the trial panicked: {e}"))),
            Err(e) => Err(EngineError::Internal(e.to_string())),
        },
        _ = tokio::signal::ctrl_c() => { task.abort(); Err(EngineError::Aborted("interrupted (Ctrl-C)".into())) }
        _ = term.recv() => { task.abort(); Err(EngineError::Aborted("terminated (SIGTERM)".into())) }
        _ = tokio::time::sleep(limit) => { task.abort(); Err(EngineError::Aborted(format!("safety timeout: the trial ran longer than {limit:?}"))) }
    };
    sh.stop.store(true, Ordering::SeqCst);
    sh.sampling.store(false, Ordering::SeqCst);
    if result.is_err() {
        heal_all(&sh).await;
    }
    sh.abort_tasks();
    result
}

async fn run_trial(plan: Plan, sh: Arc<Shared>) -> Result<Verdict, EngineError> {
    // ---- preflight: roles, schema, standbys caught up
    let roles = sh.target.roles(Duration::from_secs(3)).await;
    let primaries = with_role(&roles, LiveRole::Primary);
    if primaries.len() != 1 {
        let desc: Vec<String> = roles.iter().map(|(n, r)| format!("{n}: {r:?}")).collect();
        return Err(EngineError::Preflight(format!(
            "expected exactly one primary, found {} ({})",
            primaries.len(),
            desc.join(", ")
        )));
    }
    let primary = primaries[0].clone();
    sh.target
        .setup(&primary)
        .await
        .map_err(|e| EngineError::Preflight(e.to_string()))?;
    let standbys: Vec<String> = with_role(&roles, LiveRole::Standby)
        .into_iter()
        .cloned()
        .collect();
    for s in &standbys {
        sh.target
            .wait_replicated(s, Duration::from_secs(15))
            .await
            .map_err(|e| EngineError::Preflight(e.to_string()))?;
    }
    {
        let mut tl = lock(&sh.timeline);
        tl.nodes = sh.target.node_names();
    }

    // ---- workload
    let w = &plan.workload;
    let mut failover = sh
        .target
        .failover_watch()
        .await
        .map(|fw| spawn_failover_watch(&sh, fw));
    sh.phase("warmup");
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    match w.mode {
        Mode::Closed { clients } => {
            for i in 0..clients {
                let mut c = sh
                    .target
                    .client(&primary, i as u64 + 1, w.payload_bytes, w.op_timeout)
                    .map_err(|e| EngineError::Preflight(e.to_string()))?;
                let sh2 = sh.clone();
                let op_timeout = w.op_timeout;
                workers.push(sh.spawn(async move {
                    while !sh2.stop.load(Ordering::Relaxed) {
                        c.ready().await;
                        if sh2.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let seq = sh2.next_seq.fetch_add(1, Ordering::Relaxed);
                        let t_invoke = sh2.now();
                        let outcome = c.write(seq, Instant::now() + op_timeout).await;
                        sh2.record(Op {
                            seq,
                            t_invoke,
                            t_done: sh2.now(),
                            outcome,
                        });
                    }
                }));
            }
        }
        Mode::Rate {
            rate,
            max_in_flight,
        } => {
            workers.extend(spawn_rate(
                &sh,
                &primary,
                rate,
                max_in_flight,
                w.op_timeout,
                w.payload_bytes,
            )?);
        }
    }
    let mut aux = vec![spawn_progress(&sh, plan.trials)];
    if let Some(hb) = sh
        .target
        .heartbeat(&primary)
        .map_err(|e| EngineError::Preflight(e.to_string()))?
    {
        aux.push(spawn_heartbeat(&sh, hb));
    }
    aux.extend(failover.take());
    let mut samplers: Vec<JoinHandle<()>> = Vec::new();
    for s in &standbys {
        if let Some(r) = sh
            .target
            .heartbeat_reader(s)
            .map_err(|e| EngineError::Preflight(e.to_string()))?
        {
            samplers.push(spawn_sampler(&sh, s.clone(), r));
        }
    }

    let warmup_end = sh.t0 + w.warmup;
    tokio::time::sleep_until(warmup_end).await;
    lock(&sh.timeline).measure_start = w.warmup.as_micros() as Micros;
    sh.phase("steady");

    // ---- schedule (its own task, so steps after the disaster and the
    // recovery run while this task watches for the end of the trial)
    let sched = {
        let task_sh = sh.clone();
        let plan = plan.clone();
        sh.spawn(async move { run_schedule(&plan, &task_sh, warmup_end).await })
    };
    let mut sched = Some(sched);
    let mut recovery: Option<JoinHandle<()>> = None;

    // ---- wait for the end: duration passed, schedule done, and either the
    // SLO met again for stable_for, or recovery_timeout passed.
    let min_end = warmup_end + w.duration;
    let mut last_check = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(h) = &sched {
            if h.is_finished() {
                let Some(h) = sched.take() else { continue };
                match h.await {
                    Ok(Ok(rec)) => recovery = rec,
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(EngineError::Internal(format!("schedule task: {e}"))),
                }
            }
        }
        if Instant::now() < min_end || sched.is_some() {
            continue;
        }
        let tl = lock(&sh.timeline).clone();
        let Some(t_fault) = disaster(&tl).map(|r| r.t_start) else {
            break; // no fault at all: a baseline run
        };
        let now = sh.now();
        let hard_end = t_fault
            + plan.slo.recovery_timeout_us
            + plan.slo.stable_for_us
            + w.op_timeout.as_micros() as Micros;
        if now >= hard_end {
            break;
        }
        if last_check.elapsed() >= Duration::from_millis(250) {
            last_check = Instant::now();
            let from = sh.fault_index.load(Ordering::SeqCst);
            let ops: Vec<Op> = {
                let l = lock(&sh.ledger);
                l.get(from.min(l.len())..).unwrap_or_default().to_vec()
            };
            let mut tl = tl;
            tl.workload_end = now.saturating_sub(w.op_timeout.as_micros() as Micros);
            let a = analyze(&ops, &tl, &AuditSet::default(), &plan.slo);
            let settled = tl.workload_end
                >= tl
                    .faults
                    .iter()
                    .map(|f| f.t_done.unwrap_or(f.t_start))
                    .max()
                    .unwrap_or(0)
                    + plan.slo.stable_for_us;
            if a.rto.achieved_s.is_some() && settled {
                break;
            }
        }
    }

    // ---- stop the workload; in-flight ops finish within op_timeout
    sh.phase("audit");
    let workload_end = sh.now();
    sh.stop.store(true, Ordering::SeqCst);
    sh.sampling.store(false, Ordering::SeqCst);
    for h in workers {
        let _ = h.await;
    }
    for h in aux.into_iter().chain(samplers) {
        h.abort();
    }
    if let Some(r) = recovery {
        if !r.is_finished() {
            sh.warn(
                "the recovery action was still running at the end of the trial; it was abandoned"
                    .into(),
            );
            r.abort();
        }
    }
    heal_all(&sh).await;

    // ---- audit
    let mut tl = lock(&sh.timeline).clone();
    tl.workload_end = workload_end;
    let (audit_node, note) = pick_audit_node(&sh, &tl).await?;
    if let Some(n) = note {
        sh.warn(n);
    }
    let ids = sh
        .target
        .audit(&audit_node)
        .await
        .map_err(|e| EngineError::Preflight(format!("audit failed: {e}")))?;
    sh.emit(DrillEvent::Audit {
        trial: sh.trial,
        node: audit_node.clone(),
        rows: ids.len() as u64,
    });
    if plan.cleanup_rows {
        if let Err(e) = sh.target.cleanup(&audit_node).await {
            sh.warn(format!("could not remove this run's rows: {e}"));
        }
    }
    let audit = AuditSet::new(ids);
    let ops = std::mem::take(&mut *lock(&sh.ledger));
    let analysis = analyze(&ops, &tl, &audit, &plan.slo);
    let (chk, verdict) = check(&analysis, &plan.objectives);
    if let Err(e) = TrialFiles::save(&plan.run_dir, sh.trial, &ops, &audit, &tl) {
        sh.warn(format!("could not save the trial's ledger: {e}"));
    }
    sh.phase("done");
    sh.emit(DrillEvent::TrialFinished {
        trial: sh.trial,
        analysis: Box::new(analysis),
        check: chk,
        verdict,
    });
    Ok(verdict)
}

/// Names of the nodes that currently have `role`.
fn with_role(roles: &[(String, LiveRole)], role: LiveRole) -> Vec<&String> {
    roles
        .iter()
        .filter(|(_, r)| *r == role)
        .map(|(n, _)| n)
        .collect()
}

fn disaster(tl: &Timeline) -> Option<&FaultRecord> {
    tl.faults.iter().find(|f| f.disaster).or_else(|| {
        tl.faults
            .iter()
            .filter(|f| f.action != "resume")
            .max_by_key(|f| f.t_start)
    })
}

/// Open loop: operations are due at a fixed rate whatever the store does;
/// `max_in_flight` clients take them. An operation that finds every client
/// busy is skipped (and warned about): the store could not keep up.
fn spawn_rate(
    sh: &Arc<Shared>,
    primary: &str,
    rate: f64,
    max_in_flight: u32,
    op_timeout: Duration,
    payload: usize,
) -> Result<Vec<JoinHandle<()>>, EngineError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<(u64, Micros)>(max_in_flight as usize);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut out = Vec::new();
    for i in 0..max_in_flight {
        let rx = rx.clone();
        let sh2 = sh.clone();
        let mut c = sh
            .target
            .client(primary, i as u64 + 1, payload, op_timeout)
            .map_err(|e| EngineError::Preflight(e.to_string()))?;
        out.push(sh.spawn(async move {
            loop {
                c.ready().await;
                let job = { rx.lock().await.recv().await };
                let Some((seq, t_invoke)) = job else { break };
                let outcome = c.write(seq, Instant::now() + op_timeout).await;
                sh2.record(Op {
                    seq,
                    t_invoke,
                    t_done: sh2.now(),
                    outcome,
                });
            }
        }));
    }
    let sh2 = sh.clone();
    out.push(sh.spawn(async move {
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        let mut k: u64 = 0;
        let mut skipped: u64 = 0;
        while !sh2.stop.load(Ordering::Relaxed) {
            let due = start + interval.mul_f64(k as f64);
            tokio::time::sleep_until(due).await;
            k += 1;
            let t_invoke = (due - sh2.t0).as_micros() as Micros;
            let seq = sh2.next_seq.fetch_add(1, Ordering::Relaxed);
            if tx.try_send((seq, t_invoke)).is_err() {
                // Not sent: record as failed so the bucket shows the outage.
                skipped += 1;
                sh2.record(Op { seq, t_invoke, t_done: t_invoke, outcome: Outcome::Fail });
            }
        }
        if skipped > 0 {
            sh2.warn(format!("{skipped} operations found all {max_in_flight} clients busy and were counted as failed (max_in_flight)"));
        }
    }));
    Ok(out)
}

fn spawn_heartbeat(
    sh: &Arc<Shared>,
    mut hb: Box<dyn firedrill_targets::Heartbeat>,
) -> JoinHandle<()> {
    let task_sh = sh.clone();
    sh.spawn(async move {
        let sh = task_sh;
        let mut n: i64 = 0;
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while sh.sampling.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            if hb.beat(n, Duration::from_secs(1)).await {
                lock(&sh.heartbeats).push((n, sh.now()));
            }
        }
    })
}

/// Lag if this standby were promoted now: 0 when it has the latest
/// acknowledged heartbeat, else the time since the first heartbeat it
/// lacks was acknowledged (everything acknowledged after that may be lost).
fn lag_from(heartbeats: &[(i64, Micros)], seen: i64, now: Micros) -> Micros {
    match heartbeats.iter().find(|(n, t)| *n > seen && *t <= now) {
        Some((_, t)) => now - t,
        None => 0,
    }
}

fn spawn_sampler(
    sh: &Arc<Shared>,
    name: String,
    mut r: Box<dyn firedrill_targets::HeartbeatReader>,
) -> JoinHandle<()> {
    let task_sh = sh.clone();
    sh.spawn(async move {
        let sh = task_sh;
        let idx = sh
            .target
            .node_names()
            .iter()
            .position(|n| *n == name)
            .unwrap_or(0) as u16;
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut k = 0u64;
        let mut last_seen: Option<i64> = None;
        while sh.sampling.load(Ordering::Relaxed) {
            tick.tick().await;
            // A standby firedrill cannot reach (partitioned, paused) may
            // still be receiving nothing: count its lag from what it had at
            // the last observation. It is an upper bound, and exact for a
            // partitioned standby, where a stale 0 would be wrong.
            let seen = match r.read(Duration::from_millis(500)).await {
                Some(v) => {
                    last_seen = Some(v);
                    v
                }
                None => match last_seen {
                    Some(v) => v,
                    None => continue,
                },
            };
            let t = sh.now();
            if !sh.sampling.load(Ordering::Relaxed) {
                break;
            }
            let lag = lag_from(&lock(&sh.heartbeats), seen, t);
            lock(&sh.timeline).lag_samples.push(LagSample {
                t,
                node: idx,
                lag_us: lag,
            });
            k += 1;
            if k.is_multiple_of(5) {
                sh.emit(DrillEvent::LagSample {
                    trial: sh.trial,
                    t_us: t,
                    node: name.clone(),
                    lag_us: lag,
                });
            }
        }
    })
}

/// Reads the store's own failover signals. The first one at or after the
/// disaster is the `detected` phase; earlier ones are only reported.
fn spawn_failover_watch(
    sh: &Arc<Shared>,
    mut fw: Box<dyn firedrill_targets::FailoverWatch>,
) -> JoinHandle<()> {
    let task_sh = sh.clone();
    sh.spawn(async move {
        let sh = task_sh;
        while let Some(sig) = fw.next().await {
            let t = sh.now();
            let first = {
                let mut tl = lock(&sh.timeline);
                let after = tl.faults.iter().any(|f| f.disaster && f.t_start <= t);
                let first = after && tl.detected.is_none();
                if first {
                    tl.detected = Some(t);
                }
                first
            };
            if first {
                sh.emit(DrillEvent::Detected {
                    trial: sh.trial,
                    t_us: t,
                    how: sig.how,
                });
            } else {
                sh.warn(format!(
                    "failover signal at {:.2} s: {}",
                    t as f64 / 1e6,
                    sig.how
                ));
            }
        }
    })
}

fn spawn_progress(sh: &Arc<Shared>, _trials: u32) -> JoinHandle<()> {
    let task_sh = sh.clone();
    sh.spawn(async move {
        let sh = task_sh;
        let mut last = 0u64;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let ok = sh.ok.load(Ordering::Relaxed);
            let fail = sh.fail.load(Ordering::Relaxed);
            let unknown = sh.unknown.load(Ordering::Relaxed);
            let total = ok + fail + unknown;
            sh.emit(DrillEvent::Progress {
                trial: sh.trial,
                t_us: sh.now(),
                ops_per_s: (total - last) as f64,
                ok,
                fail,
                unknown,
            });
            last = total;
        }
    })
}

/// Runs the fault steps at their offsets. Returns the recovery task, if
/// the disaster started one.
async fn run_schedule(
    plan: &Plan,
    sh: &Arc<Shared>,
    warmup_end: Instant,
) -> Result<Option<JoinHandle<()>>, EngineError> {
    let mut recovery = None;
    for step in &plan.steps {
        tokio::time::sleep_until(warmup_end + step.at).await;
        if step.disaster {
            sh.sampling.store(false, Ordering::SeqCst);
            sh.phase("fault");
        }
        let node = resolve(sh, &step.node).await?;
        inject(sh, step, &node).await?;
        if step.disaster {
            sh.phase("recovering");
            let sh2 = sh.clone();
            let plan2 = plan.clone();
            let hit = node.clone();
            recovery = Some(sh.spawn(async move { recover(&plan2, &sh2, &hit).await }));
        }
    }
    Ok(recovery)
}

/// Resolves a role to a node name at the moment the step runs.
async fn resolve(sh: &Shared, r: &NodeRef) -> Result<String, EngineError> {
    let role = match r {
        NodeRef::Name(n) => return Ok(n.clone()),
        NodeRef::Role(role) => *role,
    };
    let roles = sh.target.roles(ROLE_TIMEOUT).await;
    let find = |want: LiveRole| {
        roles
            .iter()
            .find(|(_, r)| *r == want)
            .map(|(n, _)| n.clone())
    };
    match role {
        NodeRole::Primary => find(LiveRole::Primary)
            .ok_or_else(|| EngineError::Fault("no node is primary right now".into())),
        NodeRole::Standby => find(LiveRole::Standby)
            .ok_or_else(|| EngineError::Fault("no node is a standby right now".into())),
        NodeRole::SyncStandby => {
            let p = find(LiveRole::Primary)
                .ok_or_else(|| EngineError::Fault("no node is primary right now".into()))?;
            let s = sh
                .target
                .sync_standbys(&p)
                .await
                .map_err(|e| EngineError::Fault(e.to_string()))?;
            s.into_iter().next().ok_or_else(|| {
                EngineError::Fault("the primary has no synchronous standby right now".into())
            })
        }
    }
}

/// The processes a process fault on `node` signals, in order: a managed
/// node's manager first (so it cannot restart its server in between), then
/// its postmaster as it runs now.
fn procs_of(
    sh: &Shared,
    node: &str,
    process: Option<&str>,
) -> Result<Vec<ProcHandle>, EngineError> {
    let n = sh
        .nodes
        .iter()
        .find(|n| n.name == node)
        .ok_or_else(|| EngineError::Fault(format!("no node named {node}")))?;
    match &n.proc {
        ProcSource::Handle(h) => Ok(vec![*h]),
        ProcSource::PidFile(p) => ProcHandle::from_pid_file(p)
            .map(|h| vec![h])
            .map_err(|e| EngineError::Fault(e.to_string())),
        ProcSource::Managed { manager, data_dir } => {
            let post = ProcHandle::from_postmaster_pid(data_dir)
                .ok()
                .filter(|h| h.is_alive());
            match (process, post) {
                (Some(_), Some(p)) => Ok(vec![p]),
                (Some(_), None) => Err(EngineError::Fault(format!(
                    "{node} has no running postmaster (postmaster.pid in {})",
                    data_dir.display()
                ))),
                (None, p) => Ok(std::iter::once(*manager).chain(p).collect()),
            }
        }
        ProcSource::None => Err(EngineError::Fault(format!("no pid known for {node}"))),
    }
}

async fn inject(sh: &Arc<Shared>, step: &StepPlan, node: &str) -> Result<(), EngineError> {
    if sh.fault_index.load(Ordering::SeqCst) == usize::MAX {
        let len = lock(&sh.ledger).len();
        sh.fault_index.store(len, Ordering::SeqCst);
    }
    let t_start = sh.now();
    let idx = {
        let mut tl = lock(&sh.timeline);
        tl.faults.push(FaultRecord {
            step: step.index,
            action: step.action.as_str().into(),
            node: node.into(),
            disaster: step.disaster,
            t_start,
            t_done: None,
            heal_start: None,
            heal_done: None,
            error: None,
        });
        tl.faults.len() - 1
    };
    let heal_id = format!("t{}-s{}", sh.trial, step.index);
    let res: Result<(), String> = async {
        match step.action {
            FaultAction::Kill | FaultAction::Stop | FaultAction::Pause => {
                let hs = procs_of(sh, node, step.process.as_deref()).map_err(|e| e.to_string())?;
                let action = match step.action {
                    FaultAction::Kill => ProcessAction::Kill,
                    FaultAction::Stop => ProcessAction::Stop,
                    _ => ProcessAction::Pause,
                };
                if action == ProcessAction::Pause {
                    // One heal per process: each is resumed on its own.
                    for (i, h) in hs.iter().enumerate() {
                        owe(
                            sh,
                            &sub_heal_id(&heal_id, i),
                            idx,
                            step.for_,
                            HealAction::Continue {
                                node: node.into(),
                                proc: *h,
                            },
                        )?;
                    }
                }
                tokio::task::spawn_blocking(move || {
                    for h in &hs {
                        apply_process_fault(h, action)?;
                    }
                    Ok::<(), firedrill_faults::FaultError>(())
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
            FaultAction::Resume => {
                let hs = procs_of(sh, node, step.process.as_deref()).map_err(|e| e.to_string())?;
                // A resume is the heal of the pause it ends.
                let owed: Vec<String> = lock(&sh.owed)
                    .iter()
                    .filter(
                        |o| matches!(&o.action, HealAction::Continue { node: n, .. } if n == node),
                    )
                    .map(|o| o.id.clone())
                    .collect();
                for id in owed {
                    heal_one(sh, &id).await;
                }
                tokio::task::spawn_blocking(move || {
                    for h in &hs {
                        apply_process_fault(h, ProcessAction::Resume)?;
                    }
                    Ok::<(), firedrill_faults::FaultError>(())
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
            FaultAction::Partition if step.link == LinkScope::All && veth_of(&sh.nodes, node).is_some() => {
                let dev = veth_of(&sh.nodes, node).unwrap_or_default();
                owe(sh, &heal_id, idx, step.for_, HealAction::LinkUp { node: node.into(), dev: dev.clone() })?;
                tokio::task::spawn_blocking(move || firedrill_faults::link::set_link(&dev, false))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            FaultAction::Partition | FaultAction::Latency | FaultAction::Bandwidth | FaultAction::Reset => {
                let links = select_links(&sh.nodes, node, step.link);
                let Some(api) = links.first().map(|l| l.api) else {
                    return Err(format!(
                        "{node} has no proxied {:?} link: network faults need a lab with links = \"proxied\"",
                        step.link
                    ));
                };
                let tag = format!("t{}s{}", sh.trial, step.index);
                let toxics = firedrill_faults::proxy::toxics_for(step.action.as_str(), &step.attrs, &tag);
                let pairs: Vec<(String, String)> = links
                    .iter()
                    .flat_map(|l| toxics.iter().map(move |t| (l.proxy.clone(), t["name"].as_str().unwrap_or_default().to_string())))
                    .collect();
                owe(sh, &heal_id, idx, step.for_, HealAction::RemoveToxics { node: node.into(), api, toxics: pairs })?;
                let proxies: Vec<String> = links.iter().map(|l| l.proxy.clone()).collect();
                tokio::task::spawn_blocking(move || {
                    let api = firedrill_faults::proxy::ProxyApi::new(api);
                    for p in &proxies {
                        for t in &toxics {
                            api.add_toxic(p, t).map_err(|e| e.to_string())?;
                        }
                    }
                    Ok::<(), String>(())
                })
                .await
                .map_err(|e| e.to_string())?
            }
            FaultAction::CutReplication => {
                let saved = sh
                    .target
                    .replication_source(node)
                    .await
                    .map_err(|e| e.to_string())?;
                let conninfo = sh
                    .nodes
                    .iter()
                    .find(|n| n.name == node)
                    .map(|n| n.conninfo.clone())
                    .unwrap_or_default();
                owe(
                    sh,
                    &heal_id,
                    idx,
                    step.for_,
                    HealAction::RestorePrimaryConninfo {
                        node: node.into(),
                        conninfo,
                        primary_conninfo: saved,
                    },
                )?;
                sh.target
                    .cut_replication(node)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
    .await;
    let t_done = sh.now();
    let error = res.as_ref().err().cloned();
    {
        let mut tl = lock(&sh.timeline);
        tl.faults[idx].t_done = error.is_none().then_some(t_done);
        tl.faults[idx].error = error.clone();
    }
    sh.emit(DrillEvent::FaultInjected {
        trial: sh.trial,
        step: step.index,
        action: step.action.as_str().into(),
        node: node.into(),
        t_start,
        t_done: error.is_none().then_some(t_done),
        error: error.clone(),
    });
    if let Some(e) = error {
        return Err(EngineError::Fault(format!(
            "step {} ({} {node}): {e}",
            step.index + 1,
            step.action.as_str()
        )));
    }
    if let Some(d) = step.for_ {
        let sh2 = sh.clone();
        sh.spawn(async move {
            tokio::time::sleep(d).await;
            // The step's heal, or each of its per-process heals: all owed
            // against this step's fault record.
            let ids: Vec<String> = lock(&sh2.owed)
                .iter()
                .filter(|o| o.record == idx)
                .map(|o| o.id.clone())
                .collect();
            for id in ids {
                heal_one(&sh2, &id).await;
            }
        });
    }
    Ok(())
}

/// The heal id of the `i`th process a step signals: the step's own id for
/// the first, so single-process nodes keep the ids they always had.
fn sub_heal_id(id: &str, i: usize) -> String {
    if i == 0 {
        id.to_string()
    } else {
        format!("{id}.{i}")
    }
}

/// The host-side veth of a node of a netns lab.
fn veth_of(nodes: &[NodeSpec], node: &str) -> Option<String> {
    nodes
        .iter()
        .find(|n| n.name == node)
        .and_then(|n| n.veth.clone())
}

/// The proxied links a network fault on `node` hits: its clients' link,
/// its own replication link, or (all) both and every replication link
/// whose other end is `node`; `peers` is all but the clients' link.
fn select_links(nodes: &[NodeSpec], node: &str, scope: LinkScope) -> Vec<NodeLink> {
    let mut out = Vec::new();
    for n in nodes {
        for l in &n.links {
            let own = n.name == node;
            let hit = match scope {
                LinkScope::Clients => own && l.kind == LinkScope::Clients,
                LinkScope::Replication => own && l.kind == LinkScope::Replication,
                LinkScope::All => own || l.peer.as_deref() == Some(node),
                LinkScope::Peers => {
                    (own && l.kind != LinkScope::Clients) || l.peer.as_deref() == Some(node)
                }
            };
            if hit {
                out.push(l.clone());
            }
        }
    }
    out
}

/// Journals a heal before its fault is injected, and starts the watchdog
/// that carries it out if firedrill dies first.
fn owe(
    sh: &Shared,
    id: &str,
    record: usize,
    for_: Option<Duration>,
    action: HealAction,
) -> Result<(), String> {
    let ttl = for_
        .map(|f| f + Duration::from_secs(5))
        .unwrap_or(sh.watchdog_ttl);
    sh.journal
        .record(id, ttl.as_secs().max(1), action.clone())
        .map_err(|e| e.to_string())?;
    spawn_watchdog(sh.journal.dir(), id);
    lock(&sh.owed).push(Owed {
        id: id.into(),
        record,
        action,
    });
    Ok(())
}

fn spawn_watchdog(dir: &Path, id: &str) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // Only the firedrill binary has the watchdog; tests running the engine
    // in-process heal through the guarded paths alone.
    if exe.file_name().and_then(|n| n.to_str()) != Some("firedrill") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(exe)
        .arg("__heal")
        .arg(dir)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    if let Ok(mut c) = child {
        std::thread::spawn(move || {
            let _ = c.wait();
        });
    }
}

/// Carries out one journaled heal (a journal entry read back by the
/// watchdog, or an owed heal in the engine). Idempotent.
pub async fn heal_entry(
    entry: &HealEntry,
    password: Option<&str>,
    opener: &dyn firedrill_targets::TargetOpener,
) -> Result<(), String> {
    match &entry.action {
        HealAction::Continue { proc, .. } => {
            let h = *proc;
            tokio::task::spawn_blocking(move || apply_process_fault(&h, ProcessAction::Resume))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        }
        HealAction::RemoveToxics { api, toxics, .. } => {
            let api = firedrill_faults::proxy::ProxyApi::new(*api);
            let toxics = toxics.clone();
            tokio::task::spawn_blocking(move || {
                for (p, t) in &toxics {
                    api.remove_toxic(p, t).map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            })
            .await
            .map_err(|e| e.to_string())?
        }
        HealAction::LinkUp { dev, .. } => {
            let dev = dev.clone();
            tokio::task::spawn_blocking(move || firedrill_faults::link::set_link(&dev, true))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        }
        HealAction::RestorePrimaryConninfo {
            node,
            conninfo,
            primary_conninfo,
        } => {
            let n = TargetNode {
                name: node.clone(),
                control: conninfo.clone(),
                client: conninfo.clone(),
            };
            let t = opener.open(&[n], password, "").map_err(|e| e.to_string())?;
            t.restore_replication(node, primary_conninfo)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn heal_one(sh: &Shared, id: &str) {
    // `more`: other heals of the same step are still owed (a managed node's
    // pause owes one per process); the step counts as healed after the last.
    let (owed, more) = {
        let mut o = lock(&sh.owed);
        let Some(i) = o.iter().position(|x| x.id == id) else {
            return;
        };
        let owed = o.remove(i);
        let more = o.iter().any(|x| x.record == owed.record);
        (owed, more)
    };
    let heal_start = sh.now();
    let entry = HealEntry {
        id: owed.id.clone(),
        expires_at: 0,
        action: owed.action.clone(),
    };
    let pw = sh.password.clone();
    let mut res = heal_entry(&entry, pw.as_deref(), sh.opener.as_ref()).await;
    if res.is_err() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        res = heal_entry(&entry, pw.as_deref(), sh.opener.as_ref()).await;
    }
    let heal_done = sh.now();
    let (step, action, node, first_start, earlier_error) = {
        let mut tl = lock(&sh.timeline);
        let f = &mut tl.faults[owed.record];
        let first_start = *f.heal_start.get_or_insert(heal_start);
        let earlier_error = f.error.clone().filter(|e| e.starts_with("heal failed"));
        if !more {
            f.heal_done = Some(heal_done);
        }
        if let Err(e) = &res {
            f.error = Some(format!("heal failed: {e}"));
        }
        (
            f.step,
            f.action.clone(),
            f.node.clone(),
            first_start,
            earlier_error,
        )
    };
    match &res {
        Ok(()) => sh.journal.remove(id),
        Err(e) => sh.warn(format!(
            "heal of step {} ({action} {node}) failed: {e}; the watchdog will retry at its TTL",
            step + 1
        )),
    }
    if more {
        return;
    }
    sh.emit(DrillEvent::FaultHealed {
        trial: sh.trial,
        step,
        action,
        node,
        t_start: first_start,
        t_done: heal_done,
        error: res.err().or(earlier_error),
    });
}

async fn heal_all(sh: &Shared) {
    let ids: Vec<String> = lock(&sh.owed).iter().map(|o| o.id.clone()).collect();
    for id in ids {
        heal_one(sh, &id).await;
    }
}

async fn recover(plan: &Plan, sh: &Arc<Shared>, hit: &str) {
    if plan.recovery == RecoveryPlan::None {
        return;
    }
    tokio::time::sleep(plan.recovery_delay).await;
    let t_start = sh.now();
    let (action, node, res): (&str, Option<String>, Result<(), String>) = match &plan.recovery {
        RecoveryPlan::None => return,
        RecoveryPlan::Promote(n) => {
            lock(&sh.timeline).detected = Some(t_start);
            (
                "promote",
                Some(n.clone()),
                sh.target.promote(n).await.map_err(|e| e.to_string()),
            )
        }
        RecoveryPlan::MostAdvanced => {
            lock(&sh.timeline).detected = Some(t_start);
            let mut best: Option<(u64, String)> = None;
            for n in sh.target.node_names().into_iter().filter(|n| n != hit) {
                if sh.target.role(&n, ROLE_TIMEOUT).await != LiveRole::Standby {
                    continue;
                }
                if let Some(lsn) = sh.target.position(&n).await {
                    if best.as_ref().is_none_or(|(b, _)| lsn > *b) {
                        best = Some((lsn, n.clone()));
                    }
                }
            }
            match best {
                Some((_, n)) => (
                    "promote",
                    Some(n.clone()),
                    sh.target.promote(&n).await.map_err(|e| e.to_string()),
                ),
                None => (
                    "promote",
                    None,
                    Err("no reachable standby to promote".into()),
                ),
            }
        }
        RecoveryPlan::Command(cmd) => {
            lock(&sh.timeline).detected = Some(t_start);
            let cmd = cmd.clone();
            let nodes: Vec<String> = sh
                .nodes
                .iter()
                .map(|n| format!("{}={}", n.name, n.conninfo))
                .collect();
            let hit = hit.to_string();
            let out = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .env("FIREDRILL_FAILED_NODE", &hit)
                .env("FIREDRILL_NODES", nodes.join("\n"))
                .output()
                .await;
            let res = match out {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "recovery command exited with {}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Err(format!("recovery command could not start: {e}")),
            };
            ("command", None, res)
        }
        RecoveryPlan::Automatic => {
            let end = Instant::now() + Duration::from_micros(plan.slo.recovery_timeout_us);
            let mut found = None;
            while Instant::now() < end && !sh.stop.load(Ordering::Relaxed) {
                let roles = sh.target.roles(ROLE_TIMEOUT).await;
                if let Some((n, _)) = roles
                    .iter()
                    .find(|(n, r)| *r == LiveRole::Primary && n != hit)
                {
                    found = Some(n.clone());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match found {
                Some(n) => {
                    let t = sh.now();
                    // The store's own signal (failover watch) may have
                    // marked detection earlier; seeing the new primary is
                    // detection only when it had none.
                    let first = {
                        let mut tl = lock(&sh.timeline);
                        let first = tl.detected.is_none();
                        if first {
                            tl.detected = Some(t);
                        }
                        first
                    };
                    if first {
                        sh.emit(DrillEvent::Detected {
                            trial: sh.trial,
                            t_us: t,
                            how: format!("{n} became primary"),
                        });
                    }
                    ("automatic", Some(n), Ok(()))
                }
                None => (
                    "automatic",
                    None,
                    Err("no other node became primary within recovery_timeout".into()),
                ),
            }
        }
    };
    let t_done = sh.now();
    {
        let mut tl = lock(&sh.timeline);
        tl.recovery_start = Some(t_start);
        tl.recovery_done = Some(t_done);
        if res.is_ok() {
            tl.promoted = node.clone();
        }
    }
    if plan.recovery != RecoveryPlan::Automatic {
        sh.emit(DrillEvent::Detected {
            trial: sh.trial,
            t_us: t_start,
            how: format!("{action} issued by firedrill"),
        });
    }
    sh.emit(DrillEvent::Recovery {
        trial: sh.trial,
        action: action.into(),
        node,
        t_start,
        t_done,
        error: res.err(),
    });
}

/// The recovered authoritative store: the node the recovery promoted, else
/// the one primary, else (nothing recovered) the most advanced standby,
/// whose data is what a later failover would keep.
async fn pick_audit_node(
    sh: &Shared,
    tl: &Timeline,
) -> Result<(String, Option<String>), EngineError> {
    let hit = disaster(tl).map(|f| f.node.clone());
    let roles = sh.target.roles(Duration::from_secs(3)).await;
    let primaries = with_role(&roles, LiveRole::Primary);
    if let Some(p) = &tl.promoted {
        // The store may have failed over again after the recovery (Sentinel
        // can): the primary now is the authoritative store.
        return Ok(match primaries.as_slice() {
            [now] if *now != p => (
                (*now).clone(),
                Some(format!(
                    "{p} was promoted, but {now} is primary at the audit (a later failover): audited {now}"
                )),
            ),
            _ => (p.clone(), None),
        });
    }
    if primaries.len() == 1 {
        return Ok((primaries[0].clone(), None));
    }
    if primaries.len() > 1 {
        let pick = primaries
            .iter()
            .find(|n| Some(**n) != hit.as_ref())
            .unwrap_or(&primaries[0]);
        return Ok((
            (*pick).clone(),
            Some(format!(
                "{} nodes accept writes (split brain: {}); audited {pick}",
                primaries.len(),
                primaries
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ));
    }
    let mut best: Option<(u64, String)> = None;
    for (n, r) in &roles {
        if *r == LiveRole::Standby {
            if let Some(l) = sh.target.position(n).await {
                if best.as_ref().is_none_or(|(b, _)| l > *b) {
                    best = Some((l, n.clone()));
                }
            }
        }
    }
    match best {
        Some((_, n)) => Ok((
            n.clone(),
            Some(format!("no node accepts writes: audited standby {n} (read-only), the data a later failover would keep")),
        )),
        None => Err(EngineError::Preflight("no node is reachable for the audit".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::lag_from;

    #[test]
    fn lag_is_zero_when_caught_up() {
        let hb = vec![(1, 100), (2, 200), (3, 300)];
        assert_eq!(lag_from(&hb, 3, 350), 0);
    }

    #[test]
    fn lag_counts_from_first_missing_ack() {
        let hb = vec![(1, 100), (2, 200), (3, 300)];
        assert_eq!(lag_from(&hb, 1, 1_000), 800);
        // A heartbeat acknowledged after the sample does not count yet.
        assert_eq!(lag_from(&hb, 2, 250), 0);
    }
}
