//! One trial: preflight, workload, the schedule, the wait for recovery,
//! then the audit. Every task it starts shares one [`Shared`].

use crate::heal::{heal_all, Owed};
use crate::plan::{NodeSpec, Plan};
use crate::{audit, schedule, workload, EngineError};
use firedrill_faults::HealJournal;
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{analyze, AuditSet, FaultRecord, Micros, Op, Outcome, Timeline, Verdict};
use firedrill_targets::{LiveRole, Target, TargetNode, TargetOpener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub(crate) const ROLE_TIMEOUT: Duration = Duration::from_millis(1000);

/// What every task of one trial shares: the clock, the target, the ledger,
/// the timeline and the heals owed.
pub(crate) struct Shared {
    pub(crate) t0: Instant,
    pub(crate) trial: u32,
    pub(crate) tx: UnboundedSender<DrillEvent>,
    pub(crate) target: Box<dyn Target>,
    pub(crate) nodes: Vec<NodeSpec>,
    /// Opens the store again: a replication heal reopens its target.
    pub(crate) store: Arc<dyn TargetOpener>,
    /// From the environment or a file; heals that reconnect need it.
    pub(crate) password: Option<String>,
    pub(crate) ledger: Mutex<Vec<Op>>,
    /// Where the store put each acknowledged write, for stores that say.
    pub(crate) positions: Mutex<Vec<(u64, firedrill_ledger::Position)>>,
    pub(crate) ok: AtomicU64,
    pub(crate) fail: AtomicU64,
    pub(crate) unknown: AtomicU64,
    pub(crate) next_seq: AtomicU64,
    pub(crate) stop: AtomicBool,
    /// Lag sampling runs until the disaster starts.
    pub(crate) sampling: AtomicBool,
    pub(crate) timeline: Mutex<Timeline>,
    pub(crate) owed: Mutex<Vec<Owed>>,
    pub(crate) journal: HealJournal,
    /// (heartbeat value, observer time its update was acknowledged).
    pub(crate) heartbeats: Mutex<Vec<(i64, Micros)>>,
    pub(crate) watchdog_ttl: Duration,
    /// Every task the trial spawned, so none outlives it on any exit path.
    pub(crate) tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Ledger length when the first fault step started: every op invoked
    /// after it sits at or past this index, so the online recovery check
    /// reads only the tail instead of copying the whole ledger.
    pub(crate) fault_index: std::sync::atomic::AtomicUsize,
    /// The primary the preflight found: an automatic recovery that finds
    /// it still primary after the disaster did not fail over.
    pub(crate) first_primary: Mutex<Option<String>>,
    /// Scratch nodes a restore started, each with the journal id of its
    /// teardown: torn down after the audit, on every exit path.
    pub(crate) scratch: Mutex<Vec<(String, String)>>,
    /// Set when the trial tears its scratch nodes down: a restore still
    /// waiting for the lab starts none after that.
    pub(crate) scratch_closed: AtomicBool,
    /// The crash-safe journal (`trial-<n>/journal.bin`).
    pub(crate) journal_writer: Mutex<Option<crate::journal::JournalWriter>>,
    /// The last phase announced, for the journal's liveness marks.
    pub(crate) phase_now: Mutex<String>,
    /// A stream's consumer group: what it delivered, and when.
    pub(crate) consumer: Mutex<Option<firedrill_ledger::ConsumerLog>>,
    pub(crate) consumer_stop: AtomicBool,
    /// The seqs each client home wrote (`WorkloadClient::home`).
    pub(crate) homes: Mutex<std::collections::BTreeMap<String, Vec<u64>>>,
    /// A capability trial's domain, and whether its own objectives count:
    /// its events name it.
    pub(crate) domain: Option<(String, bool)>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop heals from running.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn spawn<F>(&self, f: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let h = tokio::spawn(f);
        lock(&self.tasks).push(h.abort_handle());
        h
    }
    pub(crate) fn abort_tasks(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
    pub(crate) fn now(&self) -> Micros {
        self.t0.elapsed().as_micros() as Micros
    }
    pub(crate) fn emit(&self, ev: DrillEvent) {
        let ev = match &self.domain {
            Some((d, judged)) => match crate::capability::in_domain(d, *judged, ev) {
                Some(ev) => ev,
                None => return,
            },
            None => ev,
        };
        let _ = self.tx.send(ev);
    }
    pub(crate) fn phase(&self, p: &str) {
        *lock(&self.phase_now) = p.to_string();
        self.emit(DrillEvent::Phase {
            trial: self.trial,
            t_us: self.now(),
            phase: p.into(),
        });
    }
    /// Records a user command's run on the timeline and in the events.
    pub(crate) fn record_command(&self, ran: &firedrill_faults::exec::Ran) {
        let run = ran.record(self.t0.into_std());
        lock(&self.timeline).commands.push(run.clone());
        self.emit(DrillEvent::Command {
            trial: self.trial,
            run,
        });
    }
    pub(crate) fn warn(&self, m: String) {
        self.emit(DrillEvent::Warning {
            trial: Some(self.trial),
            message: m,
        });
    }
    pub(crate) fn record(&self, op: Op) {
        match op.outcome {
            Outcome::Ok => &self.ok,
            Outcome::Fail => &self.fail,
            Outcome::Unknown => &self.unknown,
        }
        .fetch_add(1, Ordering::Relaxed);
        lock(&self.ledger).push(op);
    }
    /// Records an op written from `home`, and where the store put it.
    pub(crate) fn record_from(
        &self,
        op: Op,
        at: Option<firedrill_ledger::Position>,
        home: Option<&String>,
    ) {
        if let Some(h) = home {
            lock(&self.homes).entry(h.clone()).or_default().push(op.seq);
        }
        self.record_at(op, at);
    }
    /// Records an op and, when acknowledged, where the store put it.
    pub(crate) fn record_at(&self, op: Op, at: Option<firedrill_ledger::Position>) {
        if let (Outcome::Ok, Some(p)) = (op.outcome, at) {
            lock(&self.positions).push((op.seq, p));
        }
        self.record(op);
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
    let sh = open_trial(plan, trial, nodes, tx, Instant::now(), None)?;
    sh.emit(DrillEvent::TrialStarted { trial });
    crate::journal::spawn_flusher(&sh);

    let task = tokio::spawn(run_trial(plan.clone(), sh.clone()));
    let result = until_done(task, plan.max_trial_time() + Duration::from_secs(60)).await;
    sh.stop.store(true, Ordering::SeqCst);
    sh.sampling.store(false, Ordering::SeqCst);
    if result.is_err() {
        heal_all(&sh).await;
    }
    // After the audit (or whatever ended the trial early): a restore's
    // scratch node does not outlive its trial.
    crate::restore::discard_scratch(plan, &sh).await;
    sh.abort_tasks();
    // The last word: the heals and how the trial ended.
    crate::journal::flush(&sh).await;
    result
}

/// Waits for a trial's task, or stops it on Ctrl-C, SIGTERM or the safety
/// timeout `limit`; a panic is an internal error. The caller heals.
pub(crate) async fn until_done(
    mut task: JoinHandle<Result<Verdict, EngineError>>,
    limit: Duration,
) -> Result<Verdict, EngineError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    tokio::select! {
        r = &mut task => match r {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(EngineError::Internal(format!("the trial panicked: {e}"))),
            Err(e) => Err(EngineError::Internal(e.to_string())),
        },
        _ = tokio::signal::ctrl_c() => { task.abort(); Err(EngineError::Aborted("interrupted (Ctrl-C)".into())) }
        _ = term.recv() => { task.abort(); Err(EngineError::Aborted("terminated (SIGTERM)".into())) }
        _ = tokio::time::sleep(limit) => { task.abort(); Err(EngineError::Aborted(format!("safety timeout: the trial ran longer than {limit:?}"))) }
    }
}

/// Opens the trial's target and heal journal: nothing is touched yet. `t0`
/// is the observer clock's zero (shared by a capability's domains).
pub(crate) fn open_trial(
    plan: &Plan,
    trial: u32,
    nodes: Vec<NodeSpec>,
    tx: UnboundedSender<DrillEvent>,
    t0: Instant,
    domain: Option<(String, bool)>,
) -> Result<Arc<Shared>, EngineError> {
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
    let t0_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let writer = crate::journal::JournalWriter::create(
        &plan.run_dir,
        firedrill_ledger::journal::StartInfo {
            trial,
            run_id: target.run_id().to_string(),
            t0_unix_ms,
        },
    )
    .map_err(|e| EngineError::Preflight(format!("trial journal: {e}")))?;
    Ok(Arc::new(Shared {
        t0,
        trial,
        tx,
        target,
        nodes,
        store: plan.store.clone(),
        password: plan.password.clone(),
        ledger: Mutex::new(Vec::with_capacity(1 << 16)),
        positions: Mutex::new(Vec::new()),
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
        consumer: Mutex::new(None),
        consumer_stop: AtomicBool::new(false),
        homes: Mutex::new(Default::default()),
        domain,
        watchdog_ttl: plan.max_trial_time() + Duration::from_secs(60),
        tasks: Mutex::new(Vec::new()),
        fault_index: std::sync::atomic::AtomicUsize::new(usize::MAX),
        first_primary: Mutex::new(None),
        scratch: Mutex::new(Vec::new()),
        scratch_closed: AtomicBool::new(false),
        journal_writer: Mutex::new(Some(writer)),
        phase_now: Mutex::new("preflight".into()),
    }))
}

/// The trial itself: preflight, workload, schedule, the wait for recovery,
/// then the audit. Its faults are healed before the audit.
async fn run_trial(plan: Plan, sh: Arc<Shared>) -> Result<Verdict, EngineError> {
    let (primary, standbys) = preflight(&sh).await?;
    let w = &plan.workload;
    let running = start_workload(&plan, &sh, &primary, &standbys).await?;

    // Warmup counts from the first acknowledged write, not from the
    // trial's start: preflight (a topic created, replicas caught up) and a
    // client's first connect take what they take, and a fault fired
    // before the store took any write would measure nothing.
    let first_ack = wait_first_ack(&sh, plan.first_ack_timeout()).await?;
    let warmup_end = first_ack + w.warmup;
    tokio::time::sleep_until(warmup_end).await;
    lock(&sh.timeline).measure_start = (warmup_end - sh.t0).as_micros() as Micros;
    sh.phase("steady");

    // The schedule runs in its own task, so steps after the disaster and
    // the recovery run while this task watches for the end of the trial.
    let sched = {
        let task_sh = sh.clone();
        let plan = plan.clone();
        sh.spawn(async move { schedule::run_schedule(&plan, &task_sh, warmup_end).await })
    };
    let recovery = wait_for_end(&plan, &sh, warmup_end, sched).await?;

    // Stop the workload; in-flight ops finish within op_timeout.
    sh.phase("audit");
    let workload_end = sh.now();
    stop_workload(&sh, running, recovery).await;
    heal_all(&sh).await;
    if let Some((cmd, timeout)) = &plan.verify {
        crate::recover::verify(&sh, cmd, *timeout).await;
    }
    audit::audit(&plan, &sh, workload_end)
        .await
        .map(|a| a.verdict)
}

/// Waits until the workload has one write acknowledged; returns when.
pub(crate) async fn wait_first_ack(sh: &Shared, timeout: Duration) -> Result<Instant, EngineError> {
    let started = Instant::now();
    while sh.ok.load(Ordering::Relaxed) == 0 {
        if started.elapsed() >= timeout {
            return Err(EngineError::Preflight(format!(
                "the workload got no write acknowledged in {:.0} s ({} failed, {} unknown): \
                 the store is not taking writes, so there is no steady state to drill",
                timeout.as_secs_f64(),
                sh.fail.load(Ordering::Relaxed),
                sh.unknown.load(Ordering::Relaxed)
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Instant::now())
}

/// Checks the store is fit to drill: one primary, the run's schema set
/// up, every standby caught up. Returns the primary and the standbys.
pub(crate) async fn preflight(sh: &Shared) -> Result<(String, Vec<String>), EngineError> {
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
    *lock(&sh.first_primary) = Some(primary.clone());
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
    lock(&sh.timeline).nodes = sh.target.node_names();
    Ok((primary, standbys))
}

/// The tasks the workload runs on: its clients, which finish their
/// in-flight op when stopped, and helpers that are simply aborted.
struct Running {
    workers: Vec<JoinHandle<()>>,
    aux: Vec<JoinHandle<()>>,
}

/// Starts the failover watch, the clients, progress, the heartbeat and the
/// lag samplers, in that order.
async fn start_workload(
    plan: &Plan,
    sh: &Arc<Shared>,
    primary: &str,
    standbys: &[String],
) -> Result<Running, EngineError> {
    let failover = sh
        .target
        .failover_watch()
        .await
        .map(|fw| workload::spawn_failover_watch(sh, fw));
    crate::consumer::start(sh)?;
    sh.phase("warmup");
    let workers = workload::spawn_clients(sh, primary, &plan.workload)?;
    let mut aux = vec![workload::spawn_progress(sh, plan.trials)];
    aux.extend(failover);
    aux.extend(start_samplers(sh, primary, standbys)?);
    Ok(Running { workers, aux })
}

/// The heartbeat and the lag samplers behind predicted RPO.
pub(crate) fn start_samplers(
    sh: &Arc<Shared>,
    primary: &str,
    standbys: &[String],
) -> Result<Vec<JoinHandle<()>>, EngineError> {
    let mut aux = Vec::new();
    if let Some(hb) = sh
        .target
        .heartbeat(primary)
        .map_err(|e| EngineError::Preflight(e.to_string()))?
    {
        aux.push(workload::spawn_heartbeat(sh, hb));
    }
    for s in standbys {
        if let Some(r) = sh
            .target
            .heartbeat_reader(s)
            .map_err(|e| EngineError::Preflight(e.to_string()))?
        {
            aux.push(workload::spawn_sampler(sh, s.clone(), r));
        }
        if let Some(r) = sh
            .target
            .reported_lag(s)
            .map_err(|e| EngineError::Preflight(e.to_string()))?
        {
            aux.push(workload::spawn_reported_sampler(sh, s.clone(), r));
        }
    }
    Ok(aux)
}

/// Waits for the end: duration passed, schedule done, and either the SLO
/// met again for stable_for, or recovery_timeout passed. Returns the
/// recovery task, if the disaster started one.
async fn wait_for_end(
    plan: &Plan,
    sh: &Shared,
    warmup_end: Instant,
    sched: JoinHandle<Result<Option<JoinHandle<()>>, EngineError>>,
) -> Result<Option<JoinHandle<()>>, EngineError> {
    let w = &plan.workload;
    let mut sched = Some(sched);
    let mut recovery: Option<JoinHandle<()>> = None;
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
            if recovered(plan, sh, tl, now) {
                break;
            }
        }
    }
    Ok(recovery)
}

/// The online recovery check: the SLO has been met again, and for
/// stable_for past the last fault step's injection.
pub(crate) fn recovered(plan: &Plan, sh: &Shared, mut tl: Timeline, now: Micros) -> bool {
    let from = sh.fault_index.load(Ordering::SeqCst);
    let ops: Vec<Op> = {
        let l = lock(&sh.ledger);
        l.get(from.min(l.len())..).unwrap_or_default().to_vec()
    };
    tl.workload_end = now.saturating_sub(plan.workload.op_timeout.as_micros() as Micros);
    let a = analyze(&ops, &tl, &AuditSet::default(), &plan.slo);
    let settled = tl.workload_end
        >= tl
            .faults
            .iter()
            .map(|f| f.t_done.unwrap_or(f.t_start))
            .max()
            .unwrap_or(0)
            + plan.slo.stable_for_us;
    a.rto.achieved_s.is_some() && settled
}

/// Stops the clients (they finish their in-flight op), the helpers, and a
/// recovery action still running.
async fn stop_workload(sh: &Shared, running: Running, recovery: Option<JoinHandle<()>>) {
    sh.stop.store(true, Ordering::SeqCst);
    sh.sampling.store(false, Ordering::SeqCst);
    for h in running.workers {
        let _ = h.await;
    }
    for h in running.aux {
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
}

/// Names of the nodes that currently have `role`.
pub(crate) fn with_role(roles: &[(String, LiveRole)], role: LiveRole) -> Vec<&String> {
    roles
        .iter()
        .filter(|(_, r)| *r == role)
        .map(|(n, _)| n)
        .collect()
}

pub(crate) fn disaster(tl: &Timeline) -> Option<&FaultRecord> {
    tl.faults.iter().find(|f| f.disaster).or_else(|| {
        tl.faults
            .iter()
            .filter(|f| f.action != "resume" && f.action != "backup")
            .max_by_key(|f| f.t_start)
    })
}
